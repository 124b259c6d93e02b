//! Message handlers of `ToolExecutor`.

use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};

use super::messages::{RunTool, ToolFinished};
use super::{PendingVerification, ToolExecutor};
use crate::domain::agents::ToolKind;
use crate::domain::effects::{
    self, ScheduleCallbackArgs, SendSmsArgs, VerifyCheckArgs, VerifySendArgs, VERIFIED_FOR_MS,
};
use crate::domain::identity::phone_number;
use crate::domain::outreach::{format_ms, ScheduledCall};
use crate::domain::records::mask_phone;
use crate::domain::records::{CustomerChange, VerifiedNumber};
use crate::domain::tools::{
    needs_verified_numbers, run_builtin, uses_bookings, ToolContext, ToolError, LOOKUP_ORDER,
    SCHEDULE_CALLBACK, SEND_SMS, VERIFY_CHECK, VERIFY_SEND,
};
use crate::engine::Shared;
use crate::outbound::{self, Destination};

impl Handler<RunTool> for ToolExecutor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: RunTool, _ctx: &mut Context<Self>) -> Self::Result {
        let timeout = Duration::from_millis(self.shared.config.voice.tool_timeout_ms);
        let args: Value = match serde_json::from_str(if msg.arguments.trim().is_empty() {
            "{}"
        } else {
            &msg.arguments
        }) {
            Ok(args) => args,
            Err(err) => {
                self.finish(&msg, Err(format!("arguments are not valid JSON: {err}")));
                return Box::pin(fut::ready(()));
            }
        };
        if msg.name == SCHEDULE_CALLBACK {
            let kept = actix_web::rt::time::timeout(timeout, self.schedule_callback(&msg));
            return Box::pin(kept.into_actor(self).map(move |result, act, _ctx| {
                let result = result.unwrap_or_else(|_| {
                    Err(
                        "the call back could not be confirmed in time; it may still be kept"
                            .to_owned(),
                    )
                });
                act.finish(&msg, result);
            }));
        }
        if msg.name == SEND_SMS {
            let text = actix_web::rt::time::timeout(timeout, self.send_sms(&msg.arguments));
            return Box::pin(text.into_actor(self).map(move |result, act, _ctx| {
                let result = result.unwrap_or_else(|_| {
                    Err("the text message service did not confirm in time; the text may still arrive".to_owned())
                });
                act.finish(&msg, result);
            }));
        }
        if msg.name == VERIFY_SEND || msg.name == VERIFY_CHECK {
            let run: std::pin::Pin<Box<dyn std::future::Future<Output = Verified>>> =
                if msg.name == VERIFY_SEND {
                    Box::pin(self.verify_send(&msg.arguments))
                } else {
                    Box::pin(self.verify_check(&msg.arguments))
                };
            let run = actix_web::rt::time::timeout(timeout, run);
            return Box::pin(run.into_actor(self).map(move |result, act, _ctx| {
                let result = result.unwrap_or_else(|_| {
                    Err("the verification service did not answer in time".to_owned())
                });
                let result = result.map(|(value, pending)| {
                    if let Some(pending) = pending {
                        act.pending_verification = pending;
                    }
                    value
                });
                act.finish(&msg, result);
            }));
        }
        let kind = self
            .shared
            .agents
            .tools
            .iter()
            .find(|tool| tool.name == msg.name)
            .map(|tool| tool.kind.clone());
        match kind {
            None => {
                self.finish(&msg, Err(format!("unknown tool '{}'", msg.name)));
                Box::pin(fut::ready(()))
            }
            Some(ToolKind::Builtin) => {
                // The bookings' tools on the blocking pool: bookings are durable before the tool
                // answers (an fsync, or a round trip to a shared store), and no actor thread may
                // wait for that. The catalog's run here, in memory — no thread to wake.
                let shared = self.shared.clone();
                let customer = self.customer.clone();
                let name = msg.name.clone();
                let run = async move {
                    // Orders placed from a number the customer proved to own are theirs:
                    // the customer's record is read only when the answer depends on it.
                    let verified = if needs_verified_numbers(
                        &name,
                        &args,
                        &shared.catalog,
                        customer.as_deref(),
                    ) {
                        verified_numbers(&shared, customer.as_deref()).await
                    } else {
                        Vec::new()
                    };
                    let blocking = uses_bookings(&name);
                    let run = move || {
                        let mut ctx = ToolContext {
                            catalog: &shared.catalog,
                            customer: customer.as_deref(),
                            bookings: shared.store.bookings(),
                            verified: &verified,
                            verification: shared.config.verification_available(),
                        };
                        run_builtin(&name, &args, &mut ctx).map_err(Failure::from)
                    };
                    if blocking {
                        actix_web::rt::task::spawn_blocking(run)
                            .await
                            .map_err(|join| Failure::broken(format!("the tool failed: {join}")))?
                    } else {
                        run()
                    }
                };
                let run = actix_web::rt::time::timeout(timeout, run);
                Box::pin(run.into_actor(self).map(move |result, act, _ctx| {
                    let result = match result {
                        Ok(result) => result,
                        Err(_) => Err(Failure::broken("the tool did not answer in time")),
                    };
                    act.finish(&msg, result);
                }))
            }
            Some(ToolKind::Http {
                url,
                timeout_ms,
                secret_env,
            }) => {
                let deadline = timeout_ms.map(Duration::from_millis).unwrap_or(timeout);
                let secret = secret_env.and_then(|name| std::env::var(name).ok());
                let call = async move { post_json(&url, secret.as_deref(), &args, deadline).await };
                Box::pin(call.into_actor(self).map(move |result, act, _ctx| {
                    act.finish(&msg, result);
                }))
            }
        }
    }
}

impl ToolExecutor {
    /// `send_sms`: a text to the customer's own number through the Messages API. The model
    /// hears whether it was sent, so it never promises a text that did not go out.
    fn send_sms(
        &self,
        arguments: &str,
    ) -> impl std::future::Future<Output = Result<Value, String>> {
        let checked = SendSmsArgs::parse(arguments)
            .map_err(|err| err.to_string())
            .and_then(|args| {
                let to = self
                    .customer
                    .as_deref()
                    .and_then(|c| phone_number(c))
                    .ok_or_else(|| {
                        "the customer's phone number is unknown (withheld or not a phone), so no \
                         text can be sent"
                            .to_owned()
                    })?;
                Ok((to.to_owned(), args.message))
            });
        let shared = self.shared.clone();
        async move {
            let (to, message) = checked?;
            let destination = Destination::Message {
                to: to.clone(),
                from: None,
            };
            outbound::deliver(&shared.config, &destination, &message)
                .await
                .map_err(|err| format!("the text could not be sent: {err}"))?;
            Ok(json!({ "status": "sent", "to": mask_phone(&to) }))
        }
    }

    /// `verify_send`: a one-time code to the number an order was placed from, or to the
    /// customer's own. The number comes from the catalog or the caller id, never from the
    /// model, so no code goes to a number nobody connected to the conversation.
    fn verify_send(&self, arguments: &str) -> impl std::future::Future<Output = Verified> {
        let target = VerifySendArgs::parse(arguments)
            .map_err(|err| err.to_string())
            .and_then(|args| self.verification_target(args.order_id));
        let shared = self.shared.clone();
        async move {
            let (number, order_id) = target?;
            let sent = crate::numbers::verify_send(&shared.config, &number, "sms").await;
            let verification = sent.map_err(|err| {
                crate::metrics::verification("send", "failed");
                tracing::warn!(error = %err, "verification code not sent");
                match err {
                    crate::numbers::NumbersError::Refused { code, .. } => {
                        effects::verify_error_words(code, "send a code")
                    }
                    other => format!("the code could not be sent: {other}"),
                }
            })?;
            crate::metrics::verification("send", "pending");
            let masked = mask_phone(&number);
            let ending: String = number
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Ok((
                json!({
                    "status": verification.status,
                    "to": masked,
                    "summary": format!(
                        "I've sent a code by text message to the number ending in {ending}.                          Please tell me the code when it arrives."
                    ),
                }),
                Some(Some(PendingVerification { number, order_id })),
            ))
        }
    }

    /// `verify_check`: the code the customer read back, for the number the last code went
    /// to. Approved, the number is remembered as theirs (the customer's record), and the
    /// order being verified is given.
    fn verify_check(&self, arguments: &str) -> impl std::future::Future<Output = Verified> {
        let args = VerifyCheckArgs::parse(arguments).map_err(|err| err.to_string());
        let target = args.and_then(|args| {
            let pending = match (&self.pending_verification, args.order_id) {
                (Some(pending), None) => pending.clone(),
                (Some(pending), Some(order)) if pending.order_id.as_ref() == Some(&order) => {
                    pending.clone()
                }
                (_, order_id) => {
                    let (number, order_id) = self.verification_target(order_id)?;
                    PendingVerification { number, order_id }
                }
            };
            Ok((pending, args.code))
        });
        let shared = self.shared.clone();
        let customer = self.customer.clone();
        async move {
            let (pending, code) = target?;
            let checked = crate::numbers::verify_check(&shared.config, &pending.number, &code)
                .await
                .map_err(|err| {
                    crate::metrics::verification("check", "failed");
                    tracing::warn!(error = %err, "verification not checked");
                    match err {
                        crate::numbers::NumbersError::Refused { code, .. } => {
                            effects::verify_error_words(code, "check the code")
                        }
                        other => format!("the code could not be checked: {other}"),
                    }
                })?;
            if let Err(why) = effects::verify_check_verdict(&checked.status) {
                crate::metrics::verification("check", "rejected");
                return Err(why);
            }
            crate::metrics::verification("check", "approved");
            let at_ms = crate::clock::wall_clock_ms();
            if let Some(customer) = &customer {
                let change = CustomerChange::Verified(VerifiedNumber {
                    number: pending.number.clone(),
                    at_ms,
                });
                if let Err(err) = shared.store.update_customer(customer, &change).await {
                    tracing::error!(error = %err, "verified number not remembered");
                }
            }
            let mut answer = json!({
                "status": "approved",
                "summary": "Thank you, that's confirmed.",
            });
            if let Some(order_id) = &pending.order_id {
                let verified = vec![pending.number.clone()];
                let mut ctx = ToolContext {
                    catalog: &shared.catalog,
                    customer: customer.as_deref(),
                    bookings: shared.store.bookings(),
                    verified: &verified,
                    verification: true,
                };
                if let Ok(order) =
                    run_builtin(LOOKUP_ORDER, &json!({ "order_id": order_id }), &mut ctx)
                {
                    let summary = order["summary"].as_str().unwrap_or_default().to_owned();
                    answer["summary"] = json!(format!("Thank you, that's confirmed. {summary}"));
                    answer["order"] = order;
                }
            }
            // The code is used: nothing is pending any more.
            Ok((answer, Some(None)))
        }
    }

    /// The number a code goes to: the one `order_id` was placed from, else the customer's.
    fn verification_target(
        &self,
        order_id: Option<String>,
    ) -> Result<(String, Option<String>), String> {
        match order_id {
            Some(id) => {
                let order = self
                    .shared
                    .catalog
                    .order(&id)
                    .ok_or_else(|| format!("no order with number {id} exists"))?;
                Ok((order.customer.clone(), Some(id)))
            }
            None => self
                .customer
                .as_deref()
                .and_then(phone_number)
                .map(|n| (n.to_owned(), None))
                .ok_or_else(|| {
                    "the customer's phone number is unknown; ask for the order number whose                      phone should get the code"
                        .to_owned()
                }),
        }
    }

    /// `schedule_callback`: the promise is kept in the store — durable before the model
    /// hears it was — and placed when due by the engine's scheduler (`crate::calling`),
    /// with the agent that promised it.
    fn schedule_callback(
        &self,
        msg: &RunTool,
    ) -> impl std::future::Future<Output = Result<Value, String>> {
        let now = crate::clock::wall_clock_ms();
        let shared = self.shared.clone();
        let twilio = &shared.config.twilio;
        let checked = ScheduleCallbackArgs::parse(&msg.arguments, now)
            .map_err(|err| err.to_string())
            .and_then(|args| {
                if twilio.credentials().is_none() || twilio.phone_number.is_none() {
                    return Err("calls cannot be placed from here (no Twilio number or                                 credentials), so no call back can be promised"
                        .to_owned());
                }
                let to = self
                    .customer
                    .as_deref()
                    .and_then(|c| phone_number(c))
                    .ok_or_else(|| {
                        "the customer's phone number is unknown (withheld or not a phone), so                          no call back can be promised"
                            .to_owned()
                    })?;
                Ok((to.to_owned(), args))
            });
        let agent = msg
            .agent
            .clone()
            .filter(|agent| shared.agents.agent(agent).is_some())
            .unwrap_or_else(|| shared.agents.default_agent.clone());
        async move {
            let (to, args) = checked?;
            let call = ScheduledCall::new(&to, &agent, &args.reason, args.due_at_ms, now);
            let unkept = |err: crate::store::StoreError| {
                tracing::error!(error = %err, "a call back could not be kept");
                "the call back could not be saved; do not promise it".to_owned()
            };
            shared.store.schedule_call(&call).await.map_err(unkept)?;
            shared.store.flush().await.map_err(unkept)?;
            tracing::info!(id = %call.id, to = %mask_phone(&to), due = %format_ms(call.due_at_ms), "call back promised");
            Ok(json!({
                "status": "scheduled",
                "when": format_ms(call.due_at_ms),
                "to": mask_phone(&to),
            }))
        }
    }

    fn finish(&self, msg: &RunTool, result: Result<Value, impl Into<Failure>>) {
        let ok = result.is_ok();
        let output = match result.map_err(Into::into) {
            Ok(value) => value.to_string(),
            Err(Failure { error, declined }) => {
                if declined {
                    // The tool worked and said no (nothing found, not theirs, bad arguments):
                    // the model hears why; nothing for an operator to look at.
                    tracing::debug!(tool = %msg.name, %error, "tool declined");
                } else {
                    tracing::warn!(tool = %msg.name, %error, "tool failed");
                }
                json!({ "error": error }).to_string()
            }
        };
        self.owner.do_send(ToolFinished {
            call_id: msg.call_id.clone(),
            name: msg.name.clone(),
            output,
            ok,
        });
    }
}

/// Why a tool gave no result; the model hears `error` either way.
struct Failure {
    error: String,
    /// The tool worked and declined — a refusal, nothing found, arguments it cannot use —
    /// rather than failing (a timeout, a store or service down).
    declined: bool,
}

impl Failure {
    fn broken(error: impl Into<String>) -> Self {
        Failure {
            error: error.into(),
            declined: false,
        }
    }
}

/// A failure the tool's own words describe (the HTTP tools' and the effects' errors).
impl From<String> for Failure {
    fn from(error: String) -> Self {
        Failure::broken(error)
    }
}

impl From<ToolError> for Failure {
    fn from(err: ToolError) -> Self {
        let declined = matches!(
            err,
            ToolError::NotFound(_) | ToolError::Refused(_) | ToolError::BadArguments(_)
        );
        Failure {
            error: err.to_string(),
            declined,
        }
    }
}

/// POSTs the arguments as JSON; the JSON response is the tool's output.
async fn post_json(
    url: &str,
    bearer: Option<&str>,
    args: &Value,
    deadline: Duration,
) -> Result<Value, String> {
    let mut request = crate::http::client().post(url).timeout(deadline);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send_json(args)
        .await
        .map_err(|err| format!("tool endpoint unreachable or too slow: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("tool endpoint answered {}", response.status()));
    }
    let body = response
        .body()
        .limit(256 * 1024)
        .await
        .map_err(|err| format!("tool endpoint body unreadable: {err}"))?;
    serde_json::from_slice(&body).map_err(|err| format!("tool endpoint did not answer JSON: {err}"))
}

/// A verification tool's answer, and what becomes of the pending code (`None`: unchanged;
/// `Some(None)`: nothing pending any more).
type Verified = Result<(Value, Option<Option<PendingVerification>>), String>;

/// Numbers the customer proved to own within [`VERIFIED_FOR_MS`].
async fn verified_numbers(shared: &Shared, customer: Option<&str>) -> Vec<String> {
    let Some(customer) = customer else {
        return Vec::new();
    };
    let since = crate::clock::wall_clock_ms().saturating_sub(VERIFIED_FOR_MS);
    match shared.store.customer(customer).await {
        Ok(Some(record)) => record
            .verified
            .into_iter()
            .filter(|v| v.at_ms >= since)
            .map(|v| v.number)
            .collect(),
        Ok(None) => Vec::new(),
        Err(err) => {
            tracing::warn!(error = %err, "verified numbers unreadable");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_says_no_declined_one_that_could_not_answer_failed() {
        let declined = [
            ToolError::Refused("order 1002 was placed from a different phone number".into()),
            ToolError::NotFound("no order with number 9 exists".into()),
            ToolError::BadArguments("order_id is missing".into()),
        ];
        for err in declined {
            let failure = Failure::from(err);
            assert!(failure.declined, "{}", failure.error);
        }
        for failure in [
            Failure::from(ToolError::NotBuiltin("weather".into())),
            Failure::from("the tool did not answer in time".to_owned()),
            Failure::broken("the tool failed: cancelled"),
        ] {
            assert!(!failure.declined, "{}", failure.error);
        }
        assert_eq!(
            Failure::from(ToolError::Refused("not yours".into())).error,
            "not yours",
            "the model hears the reason as it was given"
        );
    }
}
