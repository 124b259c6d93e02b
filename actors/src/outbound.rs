//! The Twilio REST calls the engine makes on its own: Messages (SMS and WhatsApp replies,
//! `send_sms`) and Conversations messages. Basic auth with the account's credentials; a
//! failed send is retried a few times, then reported — the reply is already in the store.

use std::time::Duration;

use crate::config::{EngineConfig, TwilioConfig};
use crate::domain::sms::{split_body, MAX_BODY_CHARS};

const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("no Twilio credentials (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN) to send with")]
    NoCredentials,
    #[error("no sender: set TWILIO_PHONE_NUMBER or TWILIO_MESSAGING_SERVICE_SID")]
    NoSender,
    #[error("Twilio answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("Twilio unreachable: {0}")]
    Unreachable(String),
}

/// Where a text reply goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A Messages API reply: `to` the customer's address, `from` the number they wrote to
    /// (`whatsapp:` prefixes kept on both).
    Message { to: String, from: Option<String> },
    /// A Twilio Conversations conversation.
    Conversation { sid: String },
}

/// Sends `text` to `destination`, split into bodies Twilio accepts.
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
            Destination::Conversation { sid: conversation } => (
                format!(
                    "{}/v1/Conversations/{conversation}/Messages",
                    twilio.conversations_api_base.trim_end_matches('/')
                ),
                vec![
                    ("Author", config.messaging.bot_identity.clone()),
                    ("Body", body),
                ],
            ),
        };
        post_form(&url, sid, token.expose(), &form).await?;
    }
    Ok(())
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

async fn post_form(
    url: &str,
    user: &str,
    password: &str,
    form: &[(&'static str, String)],
) -> Result<(), OutboundError> {
    let client = crate::http::client();
    let mut last = OutboundError::Unreachable("not attempted".into());
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(400 * u64::from(attempt))).await;
        }
        let sent = client
            .post(url)
            .timeout(TIMEOUT)
            .basic_auth(user, password)
            .insert_header(("Accept", "application/json"))
            .send_form(&form)
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .limit(16 * 1024)
                    .await
                    .map(|b| String::from_utf8_lossy(&b).chars().take(300).collect())
                    .unwrap_or_default();
                last = OutboundError::Refused { status, body };
                // Only throttling and server trouble are worth another try.
                if status != 429 && status < 500 {
                    break;
                }
            }
            Err(err) => last = OutboundError::Unreachable(err.to_string()),
        }
    }
    Err(last)
}
