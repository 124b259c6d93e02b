//! Twilio Lookup v2 and Verify v2, the REST calls of "numbers and identity"
//! (protocols-more.md §9, §10): a number's line type at its first contact, cached on the
//! customer's record, and one-time codes that let a customer prove they own a number.
//! Basic auth with the account's credentials, like the Messages client (`outbound`).
//!
//! Lookup never stands in a customer's way: it is asked with a short deadline, and a
//! failure is logged and leaves nothing cached, so the next contact asks again.

use std::time::Duration;

use tracing::Instrument as _;

use crate::config::EngineConfig;
use crate::domain::identity;
use crate::domain::records::{CustomerChange, CustomerRecord, LineInfo};
use crate::engine::Shared;
use crate::protocol::twilio::identity::{PhoneNumberLookup, TwilioError, Verification};

/// How long a first contact waits for Lookup before going on without it.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(3);
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from either API.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NumbersError {
    #[error("no Twilio credentials (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)")]
    NoCredentials,
    #[error("verification is not set up (TWILIO_VERIFY_SERVICE_SID)")]
    NoVerifyService,
    #[error("Twilio unreachable: {0}")]
    Unreachable(String),
    /// Twilio answered with an error; `code` is Twilio's (e.g. 60200, 60202, 20404).
    #[error("Twilio answered {status}: {message}")]
    Refused {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    #[error("Twilio's answer could not be read: {0}")]
    BadAnswer(String),
}

/// `%2B…`: the number as one path segment (the docs' own examples encode the `+`).
fn path_segment(number: &str) -> String {
    url::form_urlencoded::byte_serialize(number.as_bytes()).collect()
}

/// Twilio Lookup v2 with Line Type Intelligence for `number` (E.164).
pub async fn lookup_line(
    config: &EngineConfig,
    number: &str,
    at_ms: u64,
) -> Result<LineInfo, NumbersError> {
    let (sid, token) = config
        .twilio
        .credentials()
        .ok_or(NumbersError::NoCredentials)?;
    let url = format!(
        "{}/v2/PhoneNumbers/{}?Fields=line_type_intelligence",
        config.twilio.lookup_api_base.trim_end_matches('/'),
        path_segment(number)
    );
    let request = crate::http::client()
        .get(&url)
        .timeout(LOOKUP_WAIT)
        .basic_auth(sid, token.expose())
        .insert_header(("Accept", "application/json"));
    let span = crate::trace::twilio_rest("lookups");
    let sent = request.send().instrument(span.clone()).await;
    let mut response = sent.map_err(|err| NumbersError::Unreachable(err.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .body()
        .limit(MAX_ANSWER)
        .await
        .map_err(|err| NumbersError::BadAnswer(err.to_string()))?;
    span.record("ok", (200..300).contains(&status));
    match status {
        200..=299 => {
            let answer: PhoneNumberLookup = serde_json::from_slice(&body)
                .map_err(|err| NumbersError::BadAnswer(err.to_string()))?;
            Ok(LineInfo::from_lookup(&answer, at_ms))
        }
        // protocols-more.md §9.3: a 404 is "invalid or unknown" — nothing can reach it.
        404 => Ok(LineInfo {
            line_type: "invalid".into(),
            carrier: None,
            checked_at_ms: at_ms,
        }),
        _ => Err(refusal(status, &body)),
    }
}

fn refusal(status: u16, body: &[u8]) -> NumbersError {
    let error: Option<TwilioError> = serde_json::from_slice(body).ok();
    NumbersError::Refused {
        status,
        code: error.as_ref().and_then(|e| e.code),
        message: error
            .and_then(|e| e.message)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect()),
    }
}

/// The line of the customer's number: cached on their record, else (with
/// `lookup.enabled`) asked of Lookup and cached. `None` when it is not known — Lookup off,
/// not a phone number, or Lookup failed this time (logged; asked again next contact).
pub async fn line_of(
    shared: &Shared,
    customer: &str,
    record: Option<&CustomerRecord>,
) -> Option<LineInfo> {
    if let Some(line) = record.and_then(|r| r.line.clone()) {
        return Some(line);
    }
    if !shared.config.lookup.enabled {
        return None;
    }
    let number = identity::phone_number(customer)?;
    let at_ms = crate::clock::wall_clock_ms();
    let asked =
        actix_web::rt::time::timeout(LOOKUP_WAIT, lookup_line(&shared.config, number, at_ms)).await;
    let line = match asked {
        Ok(Ok(line)) => line,
        Ok(Err(err)) => {
            crate::metrics::lookup("failed");
            tracing::warn!(error = %err, customer = %crate::domain::records::mask_phone(customer), "Lookup failed; going on without the line type");
            return None;
        }
        Err(_) => {
            crate::metrics::lookup("failed");
            tracing::warn!(customer = %crate::domain::records::mask_phone(customer), "Lookup too slow; going on without the line type");
            return None;
        }
    };
    crate::metrics::lookup(&line.line_type);
    if let Err(err) = shared
        .store
        .update_customer(customer, &CustomerChange::Line(line.clone()))
        .await
    {
        tracing::warn!(error = %err, "line type not cached; asked again next contact");
    }
    Some(line)
}

/// Verify v2: sends a one-time code to `to` (E.164) over `channel` (`sms`, `call`).
pub async fn verify_send(
    config: &EngineConfig,
    to: &str,
    channel: &str,
) -> Result<Verification, NumbersError> {
    verify_post(config, "Verifications", &[("To", to), ("Channel", channel)]).await
}

/// Verify v2: checks the code the customer read back for `to`. Approved only when the
/// answer's `status` is `approved`.
pub async fn verify_check(
    config: &EngineConfig,
    to: &str,
    code: &str,
) -> Result<Verification, NumbersError> {
    verify_post(config, "VerificationCheck", &[("To", to), ("Code", code)]).await
}

async fn verify_post(
    config: &EngineConfig,
    resource: &str,
    form: &[(&str, &str)],
) -> Result<Verification, NumbersError> {
    let (sid, token) = config
        .twilio
        .credentials()
        .ok_or(NumbersError::NoCredentials)?;
    let service = config
        .twilio
        .verify_service_sid
        .as_deref()
        .ok_or(NumbersError::NoVerifyService)?;
    // No `.json` suffix on Verify resources.
    let url = format!(
        "{}/v2/Services/{service}/{resource}",
        config.twilio.verify_api_base.trim_end_matches('/')
    );
    let span = crate::trace::twilio_rest("verify");
    // Not retried: a code sent twice is a confused customer, and Twilio counts attempts.
    let sent = crate::http::client()
        .post(&url)
        .timeout(VERIFY_TIMEOUT)
        .basic_auth(sid, token.expose())
        .insert_header(("Accept", "application/json"))
        .send_form(&form)
        .instrument(span.clone())
        .await;
    let mut response = sent.map_err(|err| NumbersError::Unreachable(err.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .body()
        .limit(MAX_ANSWER)
        .await
        .map_err(|err| NumbersError::BadAnswer(err.to_string()))?;
    span.record("ok", (200..300).contains(&status));
    if !(200..300).contains(&status) {
        return Err(refusal(status, &body));
    }
    serde_json::from_slice(&body).map_err(|err| NumbersError::BadAnswer(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_is_one_encoded_path_segment() {
        assert_eq!(path_segment("+14155550101"), "%2B14155550101");
    }
}
