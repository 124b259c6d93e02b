//! Calls the engine places (issue 10): `POST /calls`, and the call backs agents promise
//! (`schedule_callback`), both through [`Engine::place_call`] — one path, one set of checks.
//!
//! The call is created with the Calls API; Twilio fetches `/twilio/voice/outbound` (signed,
//! like every webhook) once it is answered, and the call then runs the normal Media Streams
//! path with the agent opening it. With machine detection, Twilio reports a machine on
//! `/twilio/voice/amd` after its greeting's beep; the engine then leaves the voicemail
//! ([`Engine::leave_voicemail`]).
//!
//! Promised call backs wait in the store ([`crate::store::ScheduleStore`]); every node's
//! [`Scheduler`] looks for due ones every `callbacks.poll_secs` and places those it claims
//! ([`Engine::place_due_calls`], which takes the time, so tests inject it).

use std::time::Duration;

use actix::prelude::*;

use crate::domain::outreach::{voicemail, CallRequest, PlacingOutcome};
use crate::engine::CallRefused;
use crate::engine::Engine;
use crate::outbound::{self, Destination, OutboundError};
use crate::protocol::twilio::calls::CreateCall;
use crate::protocol::twilio::twiml::{Response, Verb};
use crate::store::StoreError;

/// Call backs claimed per pass.
const BATCH: usize = 16;

/// What one pass over the promised call backs did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchedulePass {
    /// Created by Twilio (their SIDs).
    pub placed: Vec<String>,
    /// Put back for later (every line taken, shutting down).
    pub retried: usize,
    /// Refused; not tried again.
    pub failed: usize,
    /// Left half-placed by a node that stopped; given up as `unconfirmed`.
    pub abandoned: usize,
}

/// Why a call was not placed. [`PlaceError::status`] is the HTTP status `POST /calls`
/// answers with.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(
        "no Twilio credentials to place calls with: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    )]
    NoCredentials,
    #[error("no number to call from: set TWILIO_PHONE_NUMBER")]
    NoNumber,
    #[error("every line is taken (limits.max_calls); try again later")]
    AllLinesBusy,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Twilio said no; nothing was placed.
    #[error("Twilio refused the call: {0}")]
    Refused(String),
    /// Twilio may have placed it: not tried again, so nobody is rung twice.
    #[error("{0}")]
    Unconfirmed(String),
}

impl PlaceError {
    pub fn status(&self) -> u16 {
        match self {
            PlaceError::NoCredentials | PlaceError::NoNumber | PlaceError::ShuttingDown => 503,
            PlaceError::AllLinesBusy => 409,
            PlaceError::Refused(_) | PlaceError::Unconfirmed(_) => 502,
        }
    }

    /// Whether trying again later may place it (a scheduled call back waits, then retries).
    pub fn temporary(&self) -> bool {
        matches!(self, PlaceError::AllLinesBusy | PlaceError::ShuttingDown)
    }
}

/// A URL of ours with `agent` and `reason` in its query (Twilio signs the whole URL, so
/// they come back as they were sent).
fn url_with(engine: &Engine, path: &str, request: &CallRequest, with_to: bool) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("agent", &request.agent)
        .append_pair("reason", &request.reason);
    if with_to {
        // The AMD callback names the call, not whom it rings: the voicemail's text goes here.
        query.append_pair("to", &request.to);
    }
    let query = query.finish();
    engine
        .shared()
        .config
        .server
        .public_http_url(&format!("{path}?{query}"))
}

impl Engine {
    /// Places `request` with the Calls API and returns the call's SID. Refused before
    /// anything is sent when Twilio cannot be reached with credentials, no number is set,
    /// every line is taken or the server is draining.
    pub async fn place_call(&self, request: &CallRequest) -> Result<String, PlaceError> {
        let shared = self.shared();
        let twilio = &shared.config.twilio;
        if twilio.credentials().is_none() {
            return Err(PlaceError::NoCredentials);
        }
        let from = twilio.phone_number.clone().ok_or(PlaceError::NoNumber)?;
        self.admit_call().await.map_err(|refused| match refused {
            CallRefused::AllLinesBusy => PlaceError::AllLinesBusy,
            CallRefused::Draining | CallRefused::ShuttingDown => PlaceError::ShuttingDown,
        })?;
        let create = CreateCall {
            to: request.to.clone(),
            from,
            url: url_with(self, "/twilio/voice/outbound", request, false),
            status_callback: shared.config.server.public_http_url("/twilio/status"),
            amd_callback: request
                .machine_detection
                .then(|| url_with(self, "/twilio/voice/amd", request, true)),
        };
        match outbound::place_call(&shared.config, &create).await {
            Ok(call_sid) => {
                tracing::info!(%call_sid, agent = %request.agent, to = %crate::domain::records::mask_phone(&request.to), "call placed");
                Ok(call_sid)
            }
            Err(err @ (OutboundError::NoCredentials | OutboundError::NoSender)) => {
                Err(PlaceError::Refused(err.to_string()))
            }
            Err(err @ (OutboundError::Refused { .. } | OutboundError::Unreachable(_))) => {
                Err(PlaceError::Refused(err.to_string()))
            }
            Err(err @ OutboundError::Unconfirmed(_)) => {
                Err(PlaceError::Unconfirmed(err.to_string()))
            }
        }
    }

    /// A machine answered `call_sid` and its greeting is over: the call's TwiML is replaced
    /// by the voicemail (`<Say>`, then `<Hangup/>`; this ends the stream and the agent's
    /// session), and `to` gets the same words by SMS — where the number takes texts
    /// (Twilio refuses a landline; that is logged, not retried).
    pub async fn leave_voicemail(&self, call_sid: &str, to: Option<&str>, reason: &str) {
        let config = &self.shared().config;
        let message = voicemail(reason, config.twilio.phone_number.as_deref());
        let twiml = Response::new()
            .push(Verb::Pause(1))
            .push(Verb::Say(message.clone()))
            .push(Verb::Hangup)
            .render();
        match outbound::update_call(config, call_sid, &twiml).await {
            Ok(()) => tracing::info!(%call_sid, "voicemail left"),
            Err(err) => tracing::warn!(%call_sid, error = %err, "the voicemail could not be left"),
        }
        let Some(to) = to else { return };
        let destination = Destination::Message {
            to: to.to_owned(),
            from: None,
        };
        if let Err(err) = outbound::deliver(config, &destination, &message).await {
            tracing::info!(%call_sid, error = %err, "the voicemail's text was not sent");
        }
    }

    /// Texts the person calls are transferred to (`twilio.human_number`), when there is one
    /// and texts can be sent; a failure is logged (the transfer goes on without it).
    pub async fn tell_human(&self, text: &str) {
        let config = &self.shared().config;
        let Some(human) = config.twilio.human_number.clone() else {
            return;
        };
        let destination = Destination::Message {
            to: human,
            from: None,
        };
        if let Err(err) = outbound::deliver(config, &destination, text).await {
            tracing::info!(error = %err, "the person taking transfers was not texted");
        }
    }

    /// Where a person reads a call's transcript (the admin page; the token or dashboard
    /// sign-in opens it).
    pub fn transcript_url(&self, call_sid: &str) -> String {
        self.shared()
            .config
            .server
            .public_http_url(&format!("/actors/calls/{call_sid}"))
    }

    /// A fax answered: nothing to say to it.
    pub async fn hang_up_call(&self, call_sid: &str) {
        let twiml = Response::new().push(Verb::Hangup).render();
        if let Err(err) = outbound::update_call(&self.shared().config, call_sid, &twiml).await {
            tracing::warn!(%call_sid, error = %err, "the call could not be hung up");
        }
    }
}

impl Engine {
    /// Places the call backs due at `now_ms` that this node claims, and gives up those a
    /// stopped node left half-placed. Each claimed call back is placed at most once: the
    /// claim is in the store before the Calls API is asked, and an answer that was lost
    /// leaves it `unconfirmed`, not pending.
    pub async fn place_due_calls(&self, now_ms: u64) -> Result<SchedulePass, StoreError> {
        let shared = self.shared();
        let store = &shared.store;
        let config = &shared.config.callbacks;
        let node = &shared.node_id;
        let mut pass = SchedulePass {
            abandoned: store
                .abandon_stale_calls(
                    now_ms.saturating_sub(config.stale_after_secs.saturating_mul(1000)),
                    now_ms,
                )
                .await?,
            ..SchedulePass::default()
        };
        for call in store.claim_due_calls(now_ms, node, BATCH).await? {
            let request = CallRequest::check(
                &call.to,
                Some(&call.agent),
                &call.reason,
                true,
                &shared.agents,
            );
            let outcome = match request {
                Err(err) => PlacingOutcome::Failed {
                    reason: err.to_string(),
                },
                Ok(request) => match self.place_call(&request).await {
                    Ok(call_sid) => PlacingOutcome::Placed { call_sid },
                    Err(err) if err.temporary() => PlacingOutcome::Retry {
                        at_ms: now_ms.saturating_add(config.retry_secs.max(1).saturating_mul(1000)),
                        reason: err.to_string(),
                    },
                    Err(err @ PlaceError::Unconfirmed(_)) => PlacingOutcome::Unconfirmed {
                        reason: err.to_string(),
                    },
                    Err(err) => PlacingOutcome::Failed {
                        reason: err.to_string(),
                    },
                },
            };
            match &outcome {
                PlacingOutcome::Placed { call_sid } => {
                    tracing::info!(id = %call.id, %call_sid, "call back placed");
                    pass.placed.push(call_sid.clone());
                }
                PlacingOutcome::Retry { reason, .. } => {
                    tracing::info!(id = %call.id, %reason, "call back put back for later");
                    pass.retried += 1;
                }
                PlacingOutcome::Failed { reason } | PlacingOutcome::Unconfirmed { reason } => {
                    tracing::warn!(id = %call.id, %reason, "call back not placed");
                    pass.failed += 1;
                }
            }
            store.settle_call(&call.id, node, &outcome, now_ms).await?;
        }
        Ok(pass)
    }
}

/// Looks for due call backs every `callbacks.poll_secs` on the wall clock, one pass at a
/// time.
pub struct Scheduler {
    engine: Engine,
    busy: bool,
}

impl Scheduler {
    /// Starts the scheduler of `engine` (none when `callbacks.poll_secs` is 0).
    pub fn start_for(engine: &Engine) {
        if engine.shared().config.callbacks.poll_secs > 0 {
            Scheduler {
                engine: engine.clone(),
                busy: false,
            }
            .start();
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_secs(self.engine.shared().config.callbacks.poll_secs.max(1));
        ctx.run_interval(every, |act, ctx| {
            if act.busy {
                return;
            }
            act.busy = true;
            let engine = act.engine.clone();
            ctx.spawn(
                async move { engine.place_due_calls(crate::clock::wall_clock_ms()).await }
                    .into_actor(act)
                    .map(|pass, act, _ctx| {
                        act.busy = false;
                        if let Err(err) = pass {
                            tracing::warn!(error = %err, "due call backs could not be read");
                        }
                    }),
            );
        });
    }
}
