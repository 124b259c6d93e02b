//! ConversationRelay messages: the JSON text frames of a `<Connect><ConversationRelay>`
//! socket. Twilio turns the caller's speech into text (`prompt`) and speaks the text we send
//! (`text`), so the socket carries words, never audio.
//!
//! Inbound (Twilio → server): `setup`, `prompt`, `interrupt`, `dtmf` and `error`. Any other
//! `type` is [`Inbound::Unknown`] and ignored — Twilio's debug messages have no documented
//! shape. Parsing is lenient where Twilio or compatible relays are loose: optional fields may
//! be missing or `null`, unknown fields are ignored, `durationUntilInterruptMs` may be a
//! decimal or a string, and `customParameters` values that are not strings are kept as their
//! JSON text. A known message missing what it is about (`callSid`, `digit`) is an error.
//!
//! Outbound (server → Twilio): `text`, `play`, `sendDigits`, `language` and `end`. Twilio
//! validates each one and silently drops a bad one (error 64107), so optional fields are
//! omitted rather than sent as `null`, and the constructors refuse what Twilio would.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Why a frame could not be read, or an outbound message not built.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The frame is not JSON at all (or is truncated).
    #[error("frame is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The frame is JSON, but it has no `type`, or a known message lacks a field or has
    /// one of the wrong type.
    #[error("malformed frame: {0}")]
    Malformed(#[source] serde_json::Error),
    /// `sendDigits` takes a non-empty string of `0-9`, `w`, `#` and `*`.
    #[error("digits may only be 0-9, w, # and *, and not empty: {0:?}")]
    InvalidDigits(String),
    /// `language` must change at least one of the two languages.
    #[error("a language message needs ttsLanguage or transcriptionLanguage")]
    NoLanguage,
}

impl RelayError {
    /// A short, fixed label for the `switchboard_bad_frames_total{reason}` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            RelayError::NotJson(_) => "not_json",
            RelayError::Malformed(_) => "malformed",
            RelayError::InvalidDigits(_) | RelayError::NoLanguage => "invalid",
        }
    }

    fn classify(err: serde_json::Error) -> Self {
        match err.classify() {
            serde_json::error::Category::Data => RelayError::Malformed(err),
            _ => RelayError::NotJson(err),
        }
    }
}

/// A message Twilio sends on the ConversationRelay socket. Serializes back to the wire
/// shape, so a fake Twilio can build frames from these types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Inbound {
    /// Boxed: it is by far the largest message, and arrives once per call.
    Setup(Box<Setup>),
    Prompt(Prompt),
    Interrupt(Interrupt),
    Dtmf(Dtmf),
    Error(ErrorNotice),
    /// A message this server does not know; ignored for forward compatibility.
    #[serde(other)]
    Unknown,
}

/// Sent once, right after the socket opens: who is calling whom.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Setup {
    /// `VX…`: the relay session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    /// May be `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_call_sid: Option<String>,
    pub call_sid: String,
    /// The caller: E.164, `client:name`, or `anonymous` when caller ID is withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<String>,
    /// e.g. `PSTN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_type: Option<String>,
    /// May be `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Upper-case, e.g. `RINGING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_status: Option<String>,
    /// The `<Parameter>`s of the TwiML: how the voice webhook hands context to the socket.
    #[serde(default, deserialize_with = "lenient_parameters")]
    pub custom_parameters: BTreeMap<String, String>,
}

/// What the caller said. Only `last: true` prompts are whole utterances; `last: false` ones
/// are partial results (sent only with `partialPrompts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prompt {
    #[serde(default)]
    pub voice_prompt: String,
    /// The detected language; only the primary tag (`en`) with STT language `multi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// A prompt that does not say is taken as whole: partial prompts are the opt-in case.
    #[serde(default = "whole")]
    pub last: bool,
}

fn whole() -> bool {
    true
}

/// The caller talked over our speech: Twilio stopped it after `utterance_until_interrupt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interrupt {
    /// The part of our text the caller heard.
    #[serde(default)]
    pub utterance_until_interrupt: String,
    #[serde(
        default,
        deserialize_with = "lenient_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_until_interrupt_ms: Option<u64>,
}

/// A key the caller pressed (with `dtmfDetection`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dtmf {
    pub digit: String,
}

/// Twilio reports a problem, e.g. a message of ours it could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorNotice {
    #[serde(default)]
    pub description: String,
}

/// Parses one text frame from Twilio. An unknown `type` is `Ok(Inbound::Unknown)`,
/// whatever its other fields look like.
pub fn parse_inbound(text: &str) -> Result<Inbound, RelayError> {
    serde_json::from_str(text).map_err(RelayError::classify)
}

/// A message the server sends to Twilio. Build it with the constructors and send
/// [`Outbound::to_json`]; a fake Twilio reads it back with [`parse_outbound`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Outbound {
    /// Text to speak. A reply is streamed as tokens with `last: false`, then closed with
    /// `last: true` (the official samples send an empty token for that).
    Text {
        /// Spoken as given: tokens carry their own spacing and must not be trimmed.
        token: String,
        #[serde(default)]
        last: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
        /// Overrides the TwiML `interruptible` for this text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruptible: Option<bool>,
        /// Whether the next talk cycle may cut this text short.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preemptible: Option<bool>,
    },
    /// Play an audio file.
    Play {
        source: String,
        /// Plays; `0` means 1,000.
        #[serde(rename = "loop", default, skip_serializing_if = "Option::is_none")]
        loop_count: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preemptible: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruptible: Option<bool>,
    },
    /// Send DTMF tones down the line.
    SendDigits { digits: String },
    /// Switch the speech languages mid-call.
    Language {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tts_language: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcription_language: Option<String>,
    },
    /// End the session; Twilio then requests the `<Connect action>` URL with `HandoffData`.
    End {
        /// A JSON document *as a string*, passed back verbatim in the action request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handoff_data: Option<String>,
    },
}

impl Outbound {
    /// One streamed piece of a reply (`last: false`).
    pub fn token(text: impl Into<String>) -> Self {
        Outbound::Text {
            token: text.into(),
            last: false,
            lang: None,
            interruptible: None,
            preemptible: None,
        }
    }

    /// Closes a streamed reply: `{"type":"text","token":"","last":true}`.
    pub fn end_of_reply() -> Self {
        Outbound::Text {
            token: String::new(),
            last: true,
            lang: None,
            interruptible: None,
            preemptible: None,
        }
    }

    /// Ends the session, handing `data` (JSON-encoded into a string) to the action URL.
    pub fn end(data: Option<&Value>) -> Self {
        Outbound::End {
            handoff_data: data.map(Value::to_string),
        }
    }

    /// `sendDigits`, refused unless `digits` is non-empty and only `0-9`, `w`, `#`, `*`.
    pub fn send_digits(digits: impl Into<String>) -> Result<Self, RelayError> {
        let digits = digits.into();
        let valid = !digits.is_empty()
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'w' | b'#' | b'*'));
        if valid {
            Ok(Outbound::SendDigits { digits })
        } else {
            Err(RelayError::InvalidDigits(digits))
        }
    }

    /// `language`, refused when it would change neither language.
    pub fn language(
        tts_language: Option<String>,
        transcription_language: Option<String>,
    ) -> Result<Self, RelayError> {
        if tts_language.is_none() && transcription_language.is_none() {
            return Err(RelayError::NoLanguage);
        }
        Ok(Outbound::Language {
            tts_language,
            transcription_language,
        })
    }

    /// The JSON text frame for this message.
    pub fn to_json(&self) -> String {
        // Only strings, bools and numbers inside: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Parses a frame the server sent (for a fake Twilio in tests and the load generator).
pub fn parse_outbound(text: &str) -> Result<Outbound, RelayError> {
    serde_json::from_str(text).map_err(RelayError::classify)
}

/// `customParameters` as strings: `null` is no parameters, a non-string value is kept as
/// its JSON text, and a null value is dropped.
fn lenient_parameters<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, Value>>::deserialize(deserializer)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::Null => None,
            Value::String(text) => Some((name, text)),
            other => Some((name, other.to_string())),
        })
        .collect())
}

/// Milliseconds as an integer, a decimal (rounded) or a numeric string; anything else,
/// negative or not finite, is `None` rather than an error: the number is informational.
fn lenient_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let number = match &value {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(float_ms)),
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().and_then(float_ms)),
        _ => None,
    };
    Ok(number)
}

fn float_ms(ms: f64) -> Option<u64> {
    // `as` saturates; the range check keeps negative and absurd values out.
    (ms.is_finite() && (0.0..1e15).contains(&ms)).then(|| ms.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The inbound samples of twilio-protocols.md §2.2, verbatim.
    const SETUP: &str = r#"{
      "type": "setup",
      "sessionId": "VX00000000000000000000000000000000",
      "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
      "parentCallSid": "",
      "callSid": "CA00000000000000000000000000000000",
      "from": "+18005550100",
      "to": "+18005550101",
      "forwardedFrom": "+18005550102",
      "callType": "PSTN",
      "callerName": "",
      "direction": "inbound",
      "callStatus": "RINGING",
      "customParameters" : { "callReference": "bar" }
    }"#;
    const PROMPT: &str = r#"{ "type": "prompt", "voicePrompt": "Hi! Can you tell me about life?", "lang": "en-US", "last": true }"#;
    const DTMF: &str = r#"{ "type": "dtmf", "digit": "1" }"#;
    const INTERRUPT: &str = r#"{ "type": "interrupt", "utteranceUntilInterrupt": "Life is a complex set of", "durationUntilInterruptMs": 460 }"#;
    const ERROR: &str =
        r#"{ "type": "error", "description": "Invalid message received: { \"foo\" : \"bar\" }" }"#;

    /// The outbound samples of §2.3, verbatim.
    const TEXT: &str = r#"{ "type": "text", "token": "Hello world!", "last": false, "interruptible": false, "preemptible": false }"#;
    const PLAY: &str = r#"{ "type": "play", "source": "https://api.twilio.com/cowbell.mp3", "loop": 1, "preemptible": false, "interruptible": true }"#;
    const SEND_DIGITS: &str = r#"{ "type": "sendDigits", "digits": "9www4085551212" }"#;
    const LANGUAGE: &str =
        r#"{ "type": "language", "ttsLanguage": "sv-SE", "transcriptionLanguage": "en-US" }"#;
    const END: &str = r#"{ "type": "end", "handoffData": "{\"reasonCode\":\"live-agent-handoff\", \"reason\": \"The caller wants to talk to a real person\"}" }"#;
    const LAST_TOKEN: &str = r#"{"type":"text","token":"","last":true}"#;

    fn value(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn inbound_samples_round_trip() {
        for sample in [SETUP, PROMPT, DTMF, INTERRUPT, ERROR] {
            let parsed = parse_inbound(sample).unwrap();
            assert_ne!(parsed, Inbound::Unknown, "{sample}");
            let written = serde_json::to_string(&parsed).unwrap();
            assert_eq!(value(&written), value(sample), "{sample}");
            assert_eq!(parse_inbound(&written).unwrap(), parsed);
        }
    }

    #[test]
    fn setup_fields_are_read() {
        let Inbound::Setup(setup) = parse_inbound(SETUP).unwrap() else {
            panic!("not a setup");
        };
        assert_eq!(setup.call_sid, "CA00000000000000000000000000000000");
        assert_eq!(
            setup.session_id.as_deref(),
            Some("VX00000000000000000000000000000000")
        );
        assert_eq!(setup.from.as_deref(), Some("+18005550100"));
        assert_eq!(setup.call_status.as_deref(), Some("RINGING"));
        assert_eq!(setup.caller_name.as_deref(), Some(""));
        assert_eq!(
            setup
                .custom_parameters
                .get("callReference")
                .map(String::as_str),
            Some("bar")
        );
    }

    #[test]
    fn prompt_interrupt_dtmf_and_error_fields_are_read() {
        assert_eq!(
            parse_inbound(PROMPT).unwrap(),
            Inbound::Prompt(Prompt {
                voice_prompt: "Hi! Can you tell me about life?".into(),
                lang: Some("en-US".into()),
                last: true,
            })
        );
        assert_eq!(
            parse_inbound(INTERRUPT).unwrap(),
            Inbound::Interrupt(Interrupt {
                utterance_until_interrupt: "Life is a complex set of".into(),
                duration_until_interrupt_ms: Some(460),
            })
        );
        assert_eq!(
            parse_inbound(DTMF).unwrap(),
            Inbound::Dtmf(Dtmf { digit: "1".into() })
        );
        assert!(matches!(
            parse_inbound(ERROR).unwrap(),
            Inbound::Error(ErrorNotice { description }) if description.starts_with("Invalid message")
        ));
    }

    #[test]
    fn inbound_parsing_is_lenient_where_relays_are_loose() {
        // A decimal or a string duration, non-string parameters, nulls, extra fields.
        let setup = parse_inbound(
            r#"{"type":"setup","callSid":"CA1","from":null,"extra":{"x":1},
                "customParameters":{"n":5,"b":true,"s":"x","gone":null}}"#,
        )
        .unwrap();
        let Inbound::Setup(setup) = setup else {
            panic!("{setup:?}")
        };
        assert_eq!(setup.from, None);
        let params: Vec<(&str, &str)> = setup
            .custom_parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(params, vec![("b", "true"), ("n", "5"), ("s", "x")]);
        let null_params =
            parse_inbound(r#"{"type":"setup","callSid":"CA1","customParameters":null}"#).unwrap();
        assert!(matches!(null_params, Inbound::Setup(s) if s.custom_parameters.is_empty()));

        for (duration, expected) in [
            ("460.6", Some(461)),
            ("\"460\"", Some(460)),
            ("\"12.4\"", Some(12)),
            ("-5", None),
            ("null", None),
            ("\"soon\"", None),
            ("1e300", None),
        ] {
            let text = format!(
                r#"{{"type":"interrupt","utteranceUntilInterrupt":"Hi","durationUntilInterruptMs":{duration}}}"#
            );
            let Inbound::Interrupt(interrupt) = parse_inbound(&text).unwrap() else {
                panic!("{text}");
            };
            assert_eq!(interrupt.duration_until_interrupt_ms, expected, "{text}");
        }
        // A prompt that does not say whether it is the last part is whole.
        let Inbound::Prompt(prompt) =
            parse_inbound(r#"{"type":"prompt","voicePrompt":"hi"}"#).unwrap()
        else {
            panic!("not a prompt");
        };
        assert!(prompt.last);
    }

    #[test]
    fn unknown_types_are_ignored_and_bad_frames_are_classified() {
        for unknown in [
            r#"{"type":"info","name":"tokensPlayed","value":"Hello"}"#,
            r#"{"type":"debug","setup":[1,2,3],"callSid":7}"#,
        ] {
            assert_eq!(
                parse_inbound(unknown).unwrap(),
                Inbound::Unknown,
                "{unknown}"
            );
        }
        for (bad, reason) in [
            ("not json", "not_json"),
            (r#"{"type":"prompt""#, "not_json"),
            (r#"{"voicePrompt":"no type"}"#, "malformed"),
            (r#"{"type":"setup"}"#, "malformed"),
            (r#"{"type":"dtmf","digit":5}"#, "malformed"),
            ("[1,2]", "malformed"),
            ("42", "malformed"),
        ] {
            let err = parse_inbound(bad).expect_err(bad);
            assert_eq!(err.reason(), reason, "{bad}: {err}");
        }
    }

    #[test]
    fn outbound_samples_round_trip() {
        for sample in [TEXT, PLAY, SEND_DIGITS, LANGUAGE, END, LAST_TOKEN] {
            let parsed = parse_outbound(sample).unwrap();
            assert_eq!(value(&parsed.to_json()), value(sample), "{sample}");
        }
    }

    #[test]
    fn outbound_constructors_write_the_documented_shapes() {
        assert_eq!(
            value(&Outbound::token("Hello ").to_json()),
            json!({"type": "text", "token": "Hello ", "last": false})
        );
        assert_eq!(Outbound::end_of_reply().to_json(), LAST_TOKEN);
        let handoff = json!({"reason": "asked for a person", "customer": "+14155550101"});
        let end = Outbound::end(Some(&handoff)).to_json();
        let written = value(&end);
        assert_eq!(written["type"], "end");
        let data = written["handoffData"]
            .as_str()
            .expect("handoffData is a string");
        assert_eq!(value(data), handoff);
        assert_eq!(Outbound::end(None).to_json(), r#"{"type":"end"}"#);
        assert_eq!(
            value(&Outbound::send_digits("9www4085551212").unwrap().to_json()),
            value(SEND_DIGITS)
        );
        for bad in ["", "12a", "1 2"] {
            assert_eq!(Outbound::send_digits(bad).unwrap_err().reason(), "invalid");
        }
        assert_eq!(
            value(
                &Outbound::language(Some("sv-SE".into()), Some("en-US".into()))
                    .unwrap()
                    .to_json()
            ),
            value(LANGUAGE)
        );
        assert_eq!(
            Outbound::language(None, Some("en-US".into()))
                .unwrap()
                .to_json(),
            r#"{"type":"language","transcriptionLanguage":"en-US"}"#
        );
        assert!(matches!(
            Outbound::language(None, None),
            Err(RelayError::NoLanguage)
        ));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,200}") {
            let _ = parse_inbound(&text);
            let _ = parse_outbound(&text);
        }

        #[test]
        fn known_types_with_random_fields_never_panic(
            kind in proptest::sample::select(vec![
                "setup", "prompt", "interrupt", "dtmf", "error", "text", "end", "other",
            ]),
            field in proptest::sample::select(vec![
                "callSid", "voicePrompt", "last", "utteranceUntilInterrupt",
                "durationUntilInterruptMs", "digit", "customParameters", "description",
            ]),
            raw in proptest::sample::select(vec![
                "null", "true", "-1", "1.5e308", "\"x\"", "[]", "{}", "{\"a\":[1]}", "18446744073709551616",
            ]),
        ) {
            let text = format!(r#"{{"type":"{kind}","{field}":{raw}}}"#);
            let _ = parse_inbound(&text);
            let _ = parse_outbound(&text);
        }

        #[test]
        fn tokens_survive_the_wire(token in ".{0,80}", last in proptest::bool::ANY) {
            let message = Outbound::Text {
                token,
                last,
                lang: None,
                interruptible: None,
                preemptible: None,
            };
            proptest::prop_assert_eq!(parse_outbound(&message.to_json()).unwrap(), message);
        }
    }
}
