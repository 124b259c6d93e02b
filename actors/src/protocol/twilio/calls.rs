//! The Calls API (protocols-more.md §1): the form that creates an outbound call, the Call
//! resource it answers with, the asynchronous answering-machine-detection callback, and the
//! update that replaces a live call's TwiML.

use super::webhook::{form_get, WebhookError};

/// `<Parameter>`s of our own on a call the engine placed: the agent that takes it, and why
/// it was placed (the agent opens with it).
pub const OUTBOUND_AGENT: &str = "OutboundAgent";
pub const OUTBOUND_REASON: &str = "OutboundReason";

/// Whether `value` is a call SID: `CA` then letters and digits (it goes into a REST path).
pub fn is_call_sid(value: &str) -> bool {
    value.len() > 2
        && value.len() <= 64
        && value.starts_with("CA")
        && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` (§1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCall {
    pub to: String,
    pub from: String,
    /// The TwiML Twilio fetches once the call is answered.
    pub url: String,
    pub status_callback: String,
    /// With answering-machine detection: where the asynchronous result goes. The call runs
    /// `url` at once and AMD listens in the background (`DetectMessageEnd`: a machine is
    /// reported after its greeting's beep, so a voicemail can be left then).
    pub amd_callback: Option<String>,
}

impl CreateCall {
    /// The form fields, in the order Twilio documents them.
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("To", self.to.clone()),
            ("From", self.from.clone()),
            ("Url", self.url.clone()),
            ("Method", "POST".to_owned()),
            ("StatusCallback", self.status_callback.clone()),
            ("StatusCallbackMethod", "POST".to_owned()),
        ];
        // One key per event (§1.1: repeated keys).
        for event in ["initiated", "answered", "completed"] {
            form.push(("StatusCallbackEvent", event.to_owned()));
        }
        if let Some(callback) = &self.amd_callback {
            form.push(("MachineDetection", "DetectMessageEnd".to_owned()));
            form.push(("AsyncAmd", "true".to_owned()));
            form.push(("AsyncAmdStatusCallback", callback.clone()));
            form.push(("AsyncAmdStatusCallbackMethod", "POST".to_owned()));
        }
        form
    }
}

/// Where calls are created, and where one call is updated.
pub fn calls_url(api_base: &str, account_sid: &str, call_sid: Option<&str>) -> String {
    let base = api_base.trim_end_matches('/');
    match call_sid {
        Some(call) => format!("{base}/2010-04-01/Accounts/{account_sid}/Calls/{call}.json"),
        None => format!("{base}/2010-04-01/Accounts/{account_sid}/Calls.json"),
    }
}

/// The `sid` of a Call resource (§1.2), if the body is one.
pub fn call_sid_of(resource: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(resource).ok()?;
    value["sid"]
        .as_str()
        .filter(|sid| is_call_sid(sid))
        .map(str::to_owned)
}

/// Who or what answered (§1.4), as AMD reports it. Anything unknown is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    Human,
    /// `machine_start`: a machine, reported before its greeting ended.
    MachineStart,
    /// `machine_end_beep`, `machine_end_silence`, `machine_end_other`: the greeting is over,
    /// a message can be left now.
    MachineEnd,
    Fax,
    Unknown,
}

impl AnsweredBy {
    pub fn parse(value: &str) -> Self {
        match value {
            "human" => AnsweredBy::Human,
            "machine_start" => AnsweredBy::MachineStart,
            "machine_end_beep" | "machine_end_silence" | "machine_end_other" => {
                AnsweredBy::MachineEnd
            }
            "fax" => AnsweredBy::Fax,
            _ => AnsweredBy::Unknown,
        }
    }
}

/// The asynchronous AMD callback (`AsyncAmdStatusCallback`, §1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdCallback {
    pub call_sid: String,
    pub answered_by: AnsweredBy,
    /// As Twilio sent it, for the logs.
    pub answered_by_raw: String,
    pub detection_ms: Option<u64>,
}

impl AmdCallback {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        let call_sid = form_get(form, "CallSid")
            .filter(|sid| is_call_sid(sid))
            .ok_or(WebhookError::MissingField("CallSid"))?
            .to_owned();
        let raw = form_get(form, "AnsweredBy")
            .filter(|v| !v.is_empty())
            .ok_or(WebhookError::MissingField("AnsweredBy"))?;
        let detection_ms = match form_get(form, "MachineDetectionDuration") {
            None | Some("") => None,
            Some(value) => Some(
                value
                    .parse()
                    .map_err(|_| WebhookError::InvalidField("MachineDetectionDuration"))?,
            ),
        };
        Ok(AmdCallback {
            call_sid,
            answered_by: AnsweredBy::parse(raw),
            answered_by_raw: raw.chars().take(40).collect(),
            detection_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_create_form_asks_for_async_detection_of_the_message_end() {
        let create = CreateCall {
            to: "+14155550101".into(),
            from: "+18005550100".into(),
            url: "https://sb.example/twilio/voice/outbound?agent=booking".into(),
            status_callback: "https://sb.example/twilio/status".into(),
            amd_callback: Some("https://sb.example/twilio/voice/amd".into()),
        };
        let form = create.form();
        let get = |k: &str| form.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MachineDetection"), Some("DetectMessageEnd"));
        assert_eq!(get("AsyncAmd"), Some("true"));
        assert_eq!(
            get("AsyncAmdStatusCallback"),
            Some("https://sb.example/twilio/voice/amd")
        );
        assert_eq!(
            form.iter()
                .filter(|(n, _)| *n == "StatusCallbackEvent")
                .count(),
            3
        );
        let plain = CreateCall {
            amd_callback: None,
            ..create
        };
        assert!(!plain
            .form()
            .iter()
            .any(|(n, _)| n.starts_with("MachineDetection") || n.starts_with("AsyncAmd")));
    }

    #[test]
    fn a_call_resource_gives_its_sid() {
        assert_eq!(
            call_sid_of(br#"{"sid":"CA123abc","status":"queued"}"#).as_deref(),
            Some("CA123abc")
        );
        assert_eq!(call_sid_of(br#"{"sid":"CA/../x"}"#), None);
        assert_eq!(call_sid_of(b"not json"), None);
        assert_eq!(
            calls_url("https://api.twilio.com/", "AC1", Some("CA2")),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls/CA2.json"
        );
    }

    #[test]
    fn amd_results_are_read_and_odd_ones_are_unknown() {
        let machine = AmdCallback::from_form(&form(&[
            ("CallSid", "CA1"),
            ("AnsweredBy", "machine_end_beep"),
            ("MachineDetectionDuration", "2400"),
        ]))
        .expect("parses");
        assert_eq!(machine.answered_by, AnsweredBy::MachineEnd);
        assert_eq!(machine.detection_ms, Some(2400));
        assert_eq!(AnsweredBy::parse("human"), AnsweredBy::Human);
        assert_eq!(AnsweredBy::parse("something_new"), AnsweredBy::Unknown);
        assert_eq!(
            AmdCallback::from_form(&form(&[("CallSid", "CA1")])),
            Err(WebhookError::MissingField("AnsweredBy"))
        );
        assert_eq!(
            AmdCallback::from_form(&form(&[
                ("CallSid", "CA1"),
                ("AnsweredBy", "human"),
                ("MachineDetectionDuration", "x")
            ])),
            Err(WebhookError::InvalidField("MachineDetectionDuration"))
        );
    }
}
