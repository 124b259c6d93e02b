//! The Twilio REST calls the engine makes on its own: Messages (SMS and WhatsApp replies,
//! `send_sms`), Conversations messages, and Calls (outbound calls and live-call updates). Basic auth with the account's credentials.
//!
//! Never texting someone twice (SPEC §14). Both APIs create a message per request and take
//! no idempotency key, so a request Twilio may have acted on is never sent again: a send is
//! retried only when it provably created nothing — the connection could not be made, or
//! Twilio answered `429` (throttled before doing anything). A `5xx`, a timeout or a
//! connection lost once the request went out leave the outcome unknown; that is reported
//! (the reply is already in the store), not retried. Both destinations follow this one rule:
//! a lost reply can be noticed and resent by a person, a doubled one cannot be taken back.

use std::time::Duration;
use tracing::Instrument as _;

use awc::error::{ConnectError, SendRequestError};

use crate::config::{EngineConfig, TwilioConfig};
use crate::domain::sms::{split_body, MAX_BODY_CHARS};
use crate::protocol::twilio::calls::{call_sid_of, calls_url, is_call_sid, CreateCall};

/// Attempts per message, counting the first.
const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured on a `429`; a longer one gives up instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("no Twilio credentials (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN) to send with")]
    NoCredentials,
    #[error("no sender: set TWILIO_PHONE_NUMBER or TWILIO_MESSAGING_SERVICE_SID")]
    NoSender,
    /// Twilio turned the request down; nothing was sent.
    #[error("Twilio answered {status}: {body}")]
    Refused { status: u16, body: String },
    /// The request never reached Twilio; nothing was sent.
    #[error("Twilio unreachable: {0}")]
    Unreachable(String),
    /// The request went out but no usable answer came back: Twilio may have sent the
    /// message. Not retried, so it is never sent twice.
    #[error("Twilio may or may not have sent it ({0}); not retried, so it is never sent twice")]
    Unconfirmed(String),
}

/// Where a text reply goes. Serializable: in a cluster it is stored with the message it
/// answers, for whichever node answers it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Destination {
    /// A Messages API reply: `to` the customer's address, `from` the number they wrote to
    /// (`whatsapp:` prefixes kept on both).
    Message { to: String, from: Option<String> },
    /// A Twilio Conversations conversation (`CH…`), in Conversation Service `service`
    /// (`IS…`, the webhook's `ChatServiceSid`) when it is known.
    Conversation {
        sid: String,
        service: Option<String>,
    },
}

/// Sends `text` to `destination`, split into bodies Twilio accepts; each request is a
/// `twilio.rest` span, a child of the caller's current span.
pub async fn deliver(
    config: &EngineConfig,
    destination: &Destination,
    text: &str,
) -> Result<(), OutboundError> {
    let twilio = &config.twilio;
    let (sid, token) = twilio.credentials().ok_or(OutboundError::NoCredentials)?;
    for body in split_body(text, MAX_BODY_CHARS) {
        let (url, form) = match destination {
            Destination::Message { to, from } => {
                message_request(twilio, sid, to, from.as_deref(), &body)?
            }
            // Posted without `X-Twilio-Webhook-Enabled`: Twilio then raises no
            // `onMessageAdded` for our own reply, so it cannot loop back to us.
            Destination::Conversation {
                sid: conversation,
                service,
            } => (
                conversation_messages_url(
                    &twilio.conversations_api_base,
                    conversation,
                    service.as_deref(),
                ),
                vec![
                    ("Author", config.messaging.bot_identity.clone()),
                    ("Body", body),
                ],
            ),
        };
        let api = match destination {
            Destination::Message { .. } => "messages",
            Destination::Conversation { .. } => "conversations",
        };
        let span = crate::trace::twilio_rest(api);
        let sent = post_form(&url, sid, token.expose(), &form)
            .instrument(span.clone())
            .await;
        span.record("ok", sent.is_ok());
        sent?;
    }
    Ok(())
}

/// Places an outbound call with the Calls API (protocols-more.md §1.1) and returns its SID.
/// Same rule as messages: a create request that may have reached Twilio is never sent
/// again, so a customer is never rung twice for one request.
pub async fn place_call(
    config: &EngineConfig,
    create: &CreateCall,
) -> Result<String, OutboundError> {
    let (sid, token) = config
        .twilio
        .credentials()
        .ok_or(OutboundError::NoCredentials)?;
    let url = calls_url(&config.twilio.api_base, sid, None);
    let span = crate::trace::twilio_rest("calls");
    let created = post_form(&url, sid, token.expose(), &create.form())
        .instrument(span.clone())
        .await;
    span.record("ok", created.is_ok());
    let body = created?;
    call_sid_of(body.as_bytes()).ok_or_else(|| {
        OutboundError::Unconfirmed(format!(
            "Twilio's answer names no call: {}",
            body.chars().take(200).collect::<String>()
        ))
    })
}

/// Replaces a live call's TwiML (protocols-more.md §1.5): what it does next — a voicemail,
/// a goodbye — ends its stream first.
pub async fn update_call(
    config: &EngineConfig,
    call_sid: &str,
    twiml: &str,
) -> Result<(), OutboundError> {
    let (sid, token) = config
        .twilio
        .credentials()
        .ok_or(OutboundError::NoCredentials)?;
    if !is_call_sid(call_sid) {
        return Err(OutboundError::Refused {
            status: 400,
            body: "not a call SID".into(),
        });
    }
    let url = calls_url(&config.twilio.api_base, sid, Some(call_sid));
    let span = crate::trace::twilio_rest("calls");
    let updated = post_form(&url, sid, token.expose(), &[("Twiml", twiml.to_owned())])
        .instrument(span.clone())
        .await;
    span.record("ok", updated.is_ok());
    updated.map(|_| ())
}

/// Where a conversation's messages are created: under its service when the service is
/// known (the only path that reaches a conversation of a non-default service), else the
/// account's default-service path.
fn conversation_messages_url(base: &str, conversation: &str, service: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    match service {
        Some(service) => {
            format!("{base}/v1/Services/{service}/Conversations/{conversation}/Messages")
        }
        None => format!("{base}/v1/Conversations/{conversation}/Messages"),
    }
}

/// A REST call: its URL and form fields.
type FormRequest = (String, Vec<(&'static str, String)>);

fn message_request(
    twilio: &TwilioConfig,
    account_sid: &str,
    to: &str,
    from: Option<&str>,
    body: &str,
) -> Result<FormRequest, OutboundError> {
    let url = format!(
        "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
        twilio.api_base.trim_end_matches('/')
    );
    let mut form = vec![("To", to.to_string())];
    // A WhatsApp reply must come from a WhatsApp sender: prefer the number written to.
    match (from, &twilio.messaging_service_sid, &twilio.phone_number) {
        (Some(from), _, _) => form.push(("From", from.to_string())),
        (None, Some(service), _) => form.push(("MessagingServiceSid", service.clone())),
        (None, None, Some(number)) => form.push(("From", number.clone())),
        (None, None, None) => return Err(OutboundError::NoSender),
    }
    form.push(("Body", body.to_string()));
    Ok((url, form))
}

/// What one attempt came to.
#[derive(Debug)]
enum Attempt {
    /// Created; the answer's body.
    Created(String),
    /// Provably nothing was created: the same request may go again, after `wait` when
    /// Twilio named one.
    NotCreated {
        error: OutboundError,
        wait: Option<Duration>,
    },
    /// Refused for good, or an outcome nobody knows: never sent again.
    Final(OutboundError),
}

/// Judges an answer by its status: `2xx` created it; `429` created nothing and may be
/// retried; any other `4xx` was refused; a `5xx` may have come after the message was
/// created, so it is not retried.
fn judge_status(status: u16, retry_after: Option<&str>, body: String) -> Attempt {
    match status {
        200..=299 => Attempt::Created(body),
        429 => Attempt::NotCreated {
            error: OutboundError::Refused { status, body },
            wait: retry_after.and_then(parse_retry_after),
        },
        500..=599 => Attempt::Final(OutboundError::Unconfirmed(format!(
            "Twilio answered {status}: {body}"
        ))),
        _ => Attempt::Final(OutboundError::Refused { status, body }),
    }
}

/// Judges a request that got no answer. Only a connection that was never made proves that
/// Twilio saw nothing; a request that could not even be built would fail the same way
/// again; anything else failed after the request may have gone out.
///
/// awc files one after-the-request failure under "connect": a connection closed before
/// the response head is `Connect(Disconnected)`, whether or not the request was read. So
/// that one, and HTTP/2 errors, count as unknown; only the failures of making the
/// connection (refused, unreachable, DNS, TLS, connect timeout) prove nothing was sent.
fn judge_send_error(err: &SendRequestError) -> Attempt {
    let not_created = Attempt::NotCreated {
        error: OutboundError::Unreachable(err.to_string()),
        wait: None,
    };
    match err {
        SendRequestError::Connect(connect) => match connect {
            ConnectError::Disconnected | ConnectError::H2(_) => {
                Attempt::Final(OutboundError::Unconfirmed(err.to_string()))
            }
            ConnectError::Io(_)
            | ConnectError::Timeout
            | ConnectError::Resolver(_)
            | ConnectError::NoRecords
            | ConnectError::Unresolved
            | ConnectError::SslIsNotSupported => not_created,
            // A kind awc adds later: assume the worst.
            _ => Attempt::Final(OutboundError::Unconfirmed(err.to_string())),
        },
        SendRequestError::Url(_) | SendRequestError::Http(_) => {
            Attempt::Final(OutboundError::Unreachable(err.to_string()))
        }
        _ => Attempt::Final(OutboundError::Unconfirmed(err.to_string())),
    }
}

/// `Retry-After` in seconds, within [`MAX_RETRY_AFTER`].
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs)).filter(|wait| *wait <= MAX_RETRY_AFTER)
}

async fn post_form(
    url: &str,
    user: &str,
    password: &str,
    form: &[(&'static str, String)],
) -> Result<String, OutboundError> {
    let client = crate::http::client();
    let mut attempt = 0;
    loop {
        attempt += 1;
        // A fresh connection per message: a pooled one that the server closes just as the
        // request goes out fails in a way that cannot be told from a lost answer.
        let sent = client
            .post(url)
            .force_close()
            .timeout(TIMEOUT)
            .basic_auth(user, password)
            .insert_header(("Accept", "application/json"))
            .send_form(&form)
            .await;
        let verdict = match sent {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = if response.status().is_success() {
                    // A created resource: its JSON (a call's SID is read from it).
                    response
                        .body()
                        .limit(64 * 1024)
                        .await
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                } else {
                    response
                        .body()
                        .limit(16 * 1024)
                        .await
                        .map(|b| String::from_utf8_lossy(&b).chars().take(300).collect())
                        .unwrap_or_default()
                };
                judge_status(status, retry_after.as_deref(), body)
            }
            Err(err) => judge_send_error(&err),
        };
        match verdict {
            Attempt::Created(body) => return Ok(body),
            Attempt::Final(error) => return Err(error),
            Attempt::NotCreated { error, .. } if attempt >= ATTEMPTS => return Err(error),
            Attempt::NotCreated { error, wait } => {
                let wait = wait.unwrap_or(Duration::from_millis(400 * u64::from(attempt)));
                tracing::info!(%error, ?wait, attempt, "Twilio did not take the message; sending it again");
                actix_web::rt::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retried(attempt: &Attempt) -> bool {
        matches!(attempt, Attempt::NotCreated { .. })
    }

    #[test]
    fn only_a_throttled_request_is_sent_again() {
        assert!(matches!(
            judge_status(201, None, String::new()),
            Attempt::Created(_)
        ));
        let throttled = judge_status(429, Some("2"), "{}".into());
        assert!(
            matches!(throttled, Attempt::NotCreated { wait: Some(w), .. } if w == Duration::from_secs(2))
        );
        assert!(retried(&judge_status(429, None, String::new())));
        // Too long a wait, or a date: our own backoff, then give up.
        assert!(matches!(
            judge_status(429, Some("600"), String::new()),
            Attempt::NotCreated { wait: None, .. }
        ));
        for status in [500, 502, 503, 504] {
            let verdict = judge_status(status, None, "oops".into());
            assert!(
                matches!(&verdict, Attempt::Final(OutboundError::Unconfirmed(reason)) if reason.contains(&status.to_string())),
                "{status}: {verdict:?}"
            );
        }
        assert!(matches!(
            judge_status(400, None, "{\"code\":21211}".into()),
            Attempt::Final(OutboundError::Refused { status: 400, .. })
        ));
    }

    #[test]
    fn a_connection_closed_before_the_answer_is_not_tried_again() {
        // What awc reports when the server read the request and hung up.
        assert!(matches!(
            judge_send_error(&SendRequestError::Connect(ConnectError::Disconnected)),
            Attempt::Final(OutboundError::Unconfirmed(_))
        ));
    }

    #[test]
    fn only_a_connection_never_made_is_tried_again() {
        assert!(retried(&judge_send_error(&SendRequestError::Connect(
            ConnectError::Timeout
        ))));
        assert!(retried(&judge_send_error(&SendRequestError::Connect(
            ConnectError::Io(std::io::ErrorKind::ConnectionRefused.into())
        ))));
        for after_sending in [
            SendRequestError::Timeout,
            SendRequestError::Send(std::io::ErrorKind::BrokenPipe.into()),
            SendRequestError::Response(actix_http::error::ParseError::Incomplete),
        ] {
            assert!(
                matches!(
                    judge_send_error(&after_sending),
                    Attempt::Final(OutboundError::Unconfirmed(_))
                ),
                "{after_sending}"
            );
        }
    }

    #[test]
    fn a_known_service_scopes_the_conversation_path() {
        assert_eq!(
            conversation_messages_url("https://conversations.twilio.com/", "CH1", Some("IS2")),
            "https://conversations.twilio.com/v1/Services/IS2/Conversations/CH1/Messages"
        );
        assert_eq!(
            conversation_messages_url("https://conversations.twilio.com", "CH1", None),
            "https://conversations.twilio.com/v1/Conversations/CH1/Messages"
        );
    }
}
