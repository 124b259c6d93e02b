//! Twilio's form-encoded webhooks: the incoming-call request, call status callbacks,
//! incoming messages (SMS, MMS, WhatsApp), Conversations `onMessageAdded` and Real-Time
//! Transcription callbacks.
//!
//! A body is parsed once into ordered `(name, value)` pairs with [`parse_form`]; the same
//! pairs feed signature validation (which needs *every* parameter, including ones Twilio adds
//! without notice) and the typed `from_form` constructors here, which pick the fields
//! switchboard uses and name the first missing one in the error (SPEC §12: `400` naming the
//! field).

use std::str::FromStr;

/// Why a webhook form could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("form body is not valid UTF-8")]
    NotUtf8,
    #[error("missing form field '{0}'")]
    MissingField(&'static str),
    #[error("invalid value in form field '{0}'")]
    InvalidField(&'static str),
}

/// Decodes an `application/x-www-form-urlencoded` body (or a GET query string), keeping
/// order and repeated names. Percent-escapes that decode to invalid UTF-8 are replaced with
/// U+FFFD, which then fails signature validation, as it should.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, WebhookError> {
    std::str::from_utf8(body).map_err(|_| WebhookError::NotUtf8)?;
    Ok(url::form_urlencoded::parse(body).into_owned().collect())
}

/// The first value of `key`, if present.
pub fn form_get<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// A present, non-empty field.
fn required(form: &[(String, String)], key: &'static str) -> Result<String, WebhookError> {
    match form_get(form, key) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Err(WebhookError::MissingField(key)),
    }
}

fn optional(form: &[(String, String)], key: &str) -> Option<String> {
    form_get(form, key).map(str::to_owned)
}

/// Whether `value` looks like a Twilio SID of the kind `prefix` names (`CH`, `IS`, …): the
/// prefix, then letters and digits only. SIDs go into REST paths, so nothing that could
/// change the path (`/`, `.`, `?`, `%`) gets through.
fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() > prefix.len()
        && value.len() <= 64
        && value.starts_with(prefix)
        && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A required SID with the given prefix.
fn required_sid(
    form: &[(String, String)],
    key: &'static str,
    prefix: &str,
) -> Result<String, WebhookError> {
    let value = required(form, key)?;
    if is_sid(&value, prefix) {
        Ok(value)
    } else {
        Err(WebhookError::InvalidField(key))
    }
}

/// An optional SID with the given prefix: absent or empty is `None`.
fn optional_sid(
    form: &[(String, String)],
    key: &'static str,
    prefix: &str,
) -> Result<Option<String>, WebhookError> {
    match form_get(form, key) {
        None | Some("") => Ok(None),
        Some(value) if is_sid(value, prefix) => Ok(Some(value.to_owned())),
        Some(_) => Err(WebhookError::InvalidField(key)),
    }
}

/// An optional number: absent or empty is `None`, anything unparseable is an error.
fn optional_number<T: FromStr>(
    form: &[(String, String)],
    key: &'static str,
) -> Result<Option<T>, WebhookError> {
    match form_get(form, key) {
        None | Some("") => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| WebhookError::InvalidField(key)),
    }
}

fn optional_bool(
    form: &[(String, String)],
    key: &'static str,
) -> Result<Option<bool>, WebhookError> {
    match form_get(form, key) {
        None | Some("") => Ok(None),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(WebhookError::InvalidField(key)),
    }
}

/// The incoming-call request (`POST /twilio/voice`) and the `<Connect action>` request
/// that follows a stream or relay session (`/twilio/voice/next`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceWebhook {
    pub call_sid: String,
    pub account_sid: Option<String>,
    /// E.164, `client:name`, or `anonymous`/`unknown` when caller ID is withheld.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `ringing`, `in-progress`, `completed`, …
    pub call_status: Option<String>,
    /// `inbound`, `outbound-api` or `outbound-dial`.
    pub direction: Option<String>,
}

impl VoiceWebhook {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        Ok(Self {
            call_sid: required(form, "CallSid")?,
            account_sid: optional(form, "AccountSid"),
            from: optional(form, "From"),
            to: optional(form, "To"),
            call_status: optional(form, "CallStatus"),
            direction: optional(form, "Direction"),
        })
    }
}

/// What became of a `<Dial>` (its `action` request, protocols-more.md §2.2): the standard
/// voice request plus the dialled leg's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialResult {
    pub call: VoiceWebhook,
    /// `completed`, `answered`, `busy`, `no-answer`, `failed`, `canceled` — or a value
    /// Twilio adds later, kept as it came.
    pub dial_call_status: Option<String>,
    pub dial_call_duration: Option<u64>,
}

impl DialResult {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        Ok(Self {
            call: VoiceWebhook::from_form(form)?,
            dial_call_status: optional(form, "DialCallStatus"),
            dial_call_duration: optional_number(form, "DialCallDuration")?,
        })
    }

    /// Whether the caller talked to the person: the call is then over.
    pub fn connected(&self) -> bool {
        matches!(
            self.dial_call_status.as_deref(),
            Some("completed" | "answered")
        )
    }
}

/// Twilio's `transcribeCallback` for a `<Record transcribe="true">` voicemail
/// (protocols-more.md §3.2): not a request for TwiML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailTranscription {
    pub call: VoiceWebhook,
    /// `completed` or `failed`.
    pub completed: bool,
    /// The text; `None` when the transcription failed (or came back empty).
    pub text: Option<String>,
    pub transcription_sid: Option<String>,
    pub recording_sid: Option<String>,
    /// An `http(s)` URL.
    pub recording_url: Option<String>,
}

impl VoicemailTranscription {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        let call = VoiceWebhook::from_form(form)?;
        let completed = match required(form, "TranscriptionStatus")?.as_str() {
            "completed" => true,
            "failed" => false,
            _ => return Err(WebhookError::InvalidField("TranscriptionStatus")),
        };
        let recording_url = match form_get(form, "RecordingUrl") {
            None | Some("") => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(url.to_owned())
            }
            Some(_) => return Err(WebhookError::InvalidField("RecordingUrl")),
        };
        let text = optional(form, "TranscriptionText")
            .map(|text| text.trim().to_owned())
            .filter(|text| completed && !text.is_empty());
        Ok(Self {
            call,
            completed,
            text,
            transcription_sid: optional_sid(form, "TranscriptionSid", "TR")?,
            recording_sid: optional_sid(form, "RecordingSid", "RE")?,
            recording_url,
        })
    }
}

/// A call status callback (`POST /twilio/status`). Callbacks are separate requests and may
/// arrive out of order; `sequence_number` orders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub call_sid: String,
    pub account_sid: Option<String>,
    pub call_status: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub direction: Option<String>,
    /// Seconds; on terminal events.
    pub call_duration: Option<u64>,
    /// e.g. 404 or 487; on terminal events.
    pub sip_response_code: Option<u16>,
    /// Starts at 0 for each call.
    pub sequence_number: Option<u64>,
    /// RFC 2822.
    pub timestamp: Option<String>,
    pub callback_source: Option<String>,
    pub recording_url: Option<String>,
}

impl StatusCallback {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        Ok(Self {
            call_sid: required(form, "CallSid")?,
            account_sid: optional(form, "AccountSid"),
            call_status: required(form, "CallStatus")?,
            from: optional(form, "From"),
            to: optional(form, "To"),
            direction: optional(form, "Direction"),
            call_duration: optional_number(form, "CallDuration")?,
            sip_response_code: optional_number(form, "SipResponseCode")?,
            sequence_number: optional_number(form, "SequenceNumber")?,
            timestamp: optional(form, "Timestamp"),
            callback_source: optional(form, "CallbackSource"),
            recording_url: optional(form, "RecordingUrl"),
        })
    }

    /// Whether the call is over: its record can be closed.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.call_status.as_str(),
            "completed" | "busy" | "failed" | "no-answer" | "canceled"
        )
    }
}

/// An incoming SMS, MMS or WhatsApp message (`POST /twilio/messaging`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingWebhook {
    /// `SM…`/`MM…`; the key that makes retried deliveries idempotent.
    pub message_sid: String,
    pub account_sid: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// `+14017122661` or a channel address such as `whatsapp:+14017122661`.
    pub from: String,
    pub to: String,
    /// Up to 1600 characters; empty for a media-only message.
    pub body: String,
    pub num_media: u32,
    /// `MediaUrl{N}` with `MediaContentType{N}`, in index order.
    pub media: Vec<MediaAttachment>,
    /// WhatsApp sender's profile name.
    pub profile_name: Option<String>,
    /// WhatsApp sender's id: the number without `+`.
    pub wa_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAttachment {
    pub url: String,
    pub content_type: Option<String>,
}

impl MessagingWebhook {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        Ok(Self {
            message_sid: required(form, "MessageSid")?,
            account_sid: optional(form, "AccountSid"),
            messaging_service_sid: optional(form, "MessagingServiceSid"),
            from: required(form, "From")?,
            to: required(form, "To")?,
            // Present but possibly empty (media-only messages).
            body: optional(form, "Body").ok_or(WebhookError::MissingField("Body"))?,
            num_media: optional_number(form, "NumMedia")?.unwrap_or(0),
            media: media_attachments(form),
            profile_name: optional(form, "ProfileName"),
            wa_id: optional(form, "WaId"),
        })
    }

    pub fn is_whatsapp(&self) -> bool {
        self.from.starts_with("whatsapp:")
    }
}

/// Collects `MediaUrl{N}` by scanning the form, so the work is bounded by the body's size
/// whatever `NumMedia` claims.
fn media_attachments(form: &[(String, String)]) -> Vec<MediaAttachment> {
    let mut indexed: Vec<(usize, &str)> = form
        .iter()
        .filter_map(|(name, url)| {
            let index = name.strip_prefix("MediaUrl")?;
            if !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((index.parse().ok()?, url.as_str()))
        })
        .collect();
    indexed.sort_by_key(|(index, _)| *index);
    indexed
        .into_iter()
        .map(|(index, url)| MediaAttachment {
            url: url.to_owned(),
            content_type: optional(form, &format!("MediaContentType{index}")),
        })
        .collect()
}

/// A Conversations `onMessageAdded` post-event webhook (`POST /twilio/conversations`).
///
/// Other event types lack `MessageSid` and `Author` and are rejected with
/// [`WebhookError::MissingField`]; a target that receives them should route on
/// `form_get(form, "EventType")` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationsWebhook {
    /// `onMessageAdded`.
    pub event_type: String,
    pub account_sid: Option<String>,
    /// `CH…`; it goes into the reply's REST path.
    pub conversation_sid: String,
    /// `IS…`, the Conversation Service: replies to a conversation of a non-default service
    /// must name it in the path. Not in the documented `onMessageAdded` fields, but sent in
    /// practice; optional.
    pub chat_service_sid: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// `IM…`; with `retry_count`, what makes redelivery idempotent.
    pub message_sid: String,
    /// An identity, or the participant's address (`+1…`, `whatsapp:+1…`). Replies posted
    /// with the bot's identity as author are how bot messages are told apart.
    pub author: String,
    /// Empty when the message only carries media.
    pub body: String,
    /// `SDK` or `API` per the docs; other values have been reported.
    pub source: Option<String>,
    pub participant_sid: Option<String>,
    pub client_identity: Option<String>,
    pub index: Option<u64>,
    pub retry_count: u32,
    /// Stringified JSON.
    pub attributes: Option<String>,
    /// Stringified JSON array, when the message has media.
    pub media: Option<String>,
    /// ISO 8601.
    pub date_created: Option<String>,
}

impl ConversationsWebhook {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        Ok(Self {
            event_type: required(form, "EventType")?,
            account_sid: optional(form, "AccountSid"),
            conversation_sid: required_sid(form, "ConversationSid", "CH")?,
            chat_service_sid: optional_sid(form, "ChatServiceSid", "IS")?,
            messaging_service_sid: optional(form, "MessagingServiceSid"),
            message_sid: required(form, "MessageSid")?,
            author: required(form, "Author")?,
            body: optional(form, "Body").unwrap_or_default(),
            source: optional(form, "Source"),
            participant_sid: optional(form, "ParticipantSid"),
            client_identity: optional(form, "ClientIdentity"),
            index: optional_number(form, "Index")?,
            retry_count: optional_number(form, "RetryCount")?.unwrap_or(0),
            attributes: optional(form, "Attributes"),
            media: optional(form, "Media"),
            date_created: optional(form, "DateCreated"),
        })
    }
}

/// A `<Gather>` action request (`POST /twilio/voice/menu`, protocols-more.md §8.2): the
/// standard voice request plus the keys pressed. With `actionOnEmptyResult`, `Digits` may
/// be absent or empty when nothing was pressed (§13.10); both read as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherResult {
    pub call: VoiceWebhook,
    pub digits: Option<String>,
}

impl GatherResult {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        Ok(Self {
            call: VoiceWebhook::from_form(form)?,
            digits: optional(form, "Digits").filter(|digits| !digits.is_empty()),
        })
    }
}

/// A recording status callback (`POST /twilio/recording`, protocols-more.md §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingCallback {
    /// Always the parent leg of a two-leg call.
    pub call_sid: String,
    pub account_sid: Option<String>,
    /// `RE…`; it keys the recording on the call's record.
    pub recording_sid: String,
    pub recording_url: Option<String>,
    /// `in-progress`, `completed`, `absent` or `failed`, or a value added later.
    pub recording_status: String,
    /// Seconds; only with `completed`.
    pub recording_duration: Option<u64>,
    /// `1` or `2`.
    pub recording_channels: Option<u8>,
    pub recording_source: Option<String>,
}

impl RecordingCallback {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        Ok(Self {
            call_sid: required(form, "CallSid")?,
            account_sid: optional(form, "AccountSid"),
            recording_sid: required_sid(form, "RecordingSid", "RE")?,
            recording_url: optional(form, "RecordingUrl").filter(|url| !url.is_empty()),
            recording_status: required(form, "RecordingStatus")?,
            recording_duration: optional_number(form, "RecordingDuration")?,
            recording_channels: optional_number(form, "RecordingChannels")?,
            recording_source: optional(form, "RecordingSource"),
        })
    }
}

/// Which Real-Time Transcription callback this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptionEvent {
    Started,
    Content,
    Stopped,
    Error,
    /// A value Twilio added later; kept so it can be logged.
    Other(String),
}

impl TranscriptionEvent {
    fn parse(value: &str) -> Self {
        match value {
            "transcription-started" => Self::Started,
            "transcription-content" => Self::Content,
            "transcription-stopped" => Self::Stopped,
            "transcription-error" => Self::Error,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A Real-Time Transcription callback (`POST /twilio/transcription`).
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionCallback {
    pub call_sid: String,
    pub account_sid: Option<String>,
    /// `GT…`.
    pub transcription_sid: Option<String>,
    pub event: TranscriptionEvent,
    /// Ordering is guaranteed per track only.
    pub sequence_id: Option<u64>,
    /// ISO 8601 UTC.
    pub timestamp: Option<String>,
    /// `inbound_track` or `outbound_track`.
    pub track: Option<String>,
    pub language_code: Option<String>,
    /// `Final`: whether this content is the final result for the utterance.
    pub is_final: Option<bool>,
    /// Only with partial results.
    pub stability: Option<f64>,
    /// From `TranscriptionData` (content events).
    pub transcript: Option<String>,
    /// From `TranscriptionData`; absent for partial results.
    pub confidence: Option<f64>,
    /// `TranscriptionErrorCode` (error events), e.g. `32655`.
    pub error_code: Option<String>,
    /// `TranscriptionError`, e.g. `Provider Unavailable`.
    pub error: Option<String>,
}

/// `TranscriptionData` is a JSON string inside the form.
#[derive(serde::Deserialize)]
struct TranscriptionData {
    transcript: String,
    confidence: Option<f64>,
}

impl TranscriptionCallback {
    pub fn from_form(form: &[(String, String)]) -> Result<Self, WebhookError> {
        let data = match form_get(form, "TranscriptionData") {
            None | Some("") => None,
            Some(json) => Some(
                serde_json::from_str::<TranscriptionData>(json)
                    .map_err(|_| WebhookError::InvalidField("TranscriptionData"))?,
            ),
        };
        let (transcript, confidence) = match data {
            Some(data) => (Some(data.transcript), data.confidence),
            None => (None, None),
        };
        Ok(Self {
            call_sid: required(form, "CallSid")?,
            account_sid: optional(form, "AccountSid"),
            transcription_sid: optional(form, "TranscriptionSid"),
            event: TranscriptionEvent::parse(&required(form, "TranscriptionEvent")?),
            sequence_id: optional_number(form, "SequenceId")?,
            timestamp: optional(form, "Timestamp"),
            track: optional(form, "Track"),
            language_code: optional(form, "LanguageCode"),
            is_final: optional_bool(form, "Final")?,
            stability: optional_number(form, "Stability")?,
            transcript,
            confidence,
            error_code: optional(form, "TranscriptionErrorCode"),
            error: optional(form, "TranscriptionError"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Vec<(String, String)> {
        parse_form(body.as_bytes()).unwrap()
    }

    #[test]
    fn a_voicemail_transcription_is_read_and_checked() {
        let base = "CallSid=CA1&From=%2B14155550101&RecordingSid=RE1\
                    &RecordingUrl=https%3A%2F%2Fapi.twilio.com%2FRecordings%2FRE1";
        let done = VoicemailTranscription::from_form(&form(&format!(
            "{base}&TranscriptionStatus=completed&TranscriptionText=+call+me+&TranscriptionSid=TR1"
        )))
        .unwrap();
        assert!(done.completed);
        assert_eq!(done.text.as_deref(), Some("call me"));
        assert_eq!(done.recording_sid.as_deref(), Some("RE1"));
        assert_eq!(done.transcription_sid.as_deref(), Some("TR1"));
        let failed = VoicemailTranscription::from_form(&form(&format!(
            "{base}&TranscriptionStatus=failed&TranscriptionText=noise"
        )))
        .unwrap();
        assert!(!failed.completed);
        assert_eq!(failed.text, None);
        for (body, field) in [
            (base.to_owned(), "TranscriptionStatus"),
            (
                format!("{base}&TranscriptionStatus=maybe"),
                "TranscriptionStatus",
            ),
            (
                "CallSid=CA1&TranscriptionStatus=completed&RecordingUrl=file%3A%2F%2Fx".to_owned(),
                "RecordingUrl",
            ),
            (
                "CallSid=CA1&TranscriptionStatus=completed&RecordingSid=RE%2F..".to_owned(),
                "RecordingSid",
            ),
        ] {
            let err = VoicemailTranscription::from_form(&form(&body)).unwrap_err();
            assert!(err.to_string().contains(field), "{body}: {err}");
        }
        assert_eq!(
            VoicemailTranscription::from_form(&form("TranscriptionStatus=completed")),
            Err(WebhookError::MissingField("CallSid"))
        );
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The captured WhatsApp payload quoted in twilio-protocols.md §4.1.
    const WHATSAPP: &str = "SmsMessageSid=SM01&NumMedia=0&ProfileName=Jhonata&SmsSid=SM01&WaId=558282136275\
        &SmsStatus=received&Body=Ol%C3%A1&To=whatsapp%3A%2B14155238886&NumSegments=1&ReferralNumMedia=0\
        &MessageSid=SM01&AccountSid=AC01&From=whatsapp%3A%2B558282136275&ApiVersion=2010-04-01";

    /// The captured Conversations payload quoted in §5.2.
    const CONVERSATIONS: &str = "EventType=onMessageAdded&Attributes=%7B%7D&DateCreated=2021-08-10T18%3A00%3A58.111Z\
        &Index=35&MessageSid=IM8d61&AccountSid=AC01&Source=SDK&ClientIdentity=dave&RetryCount=0&Author=dave\
        &ParticipantSid=MBc58b&Body=two&ConversationSid=CH6c25";

    #[test]
    fn parse_form_decodes_plus_percent_and_keeps_order_and_repeats() {
        assert_eq!(
            form("Body=Hello+world%21&Digits=1&Digits=2&Empty=&Caf%C3%A9=cr%C3%A8me"),
            pairs(&[
                ("Body", "Hello world!"),
                ("Digits", "1"),
                ("Digits", "2"),
                ("Empty", ""),
                ("Café", "crème")
            ])
        );
        assert_eq!(form(""), pairs(&[]));
        assert_eq!(parse_form(b"Body=\xff"), Err(WebhookError::NotUtf8));
    }

    #[test]
    fn form_get_returns_the_first_value() {
        let f = form("A=1&B=2&A=3");
        assert_eq!(form_get(&f, "A"), Some("1"));
        assert_eq!(form_get(&f, "C"), None);
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            WebhookError::MissingField("CallSid").to_string(),
            "missing form field 'CallSid'"
        );
        assert_eq!(
            VoiceWebhook::from_form(&form("From=%2B1555")),
            Err(WebhookError::MissingField("CallSid"))
        );
        assert_eq!(
            VoiceWebhook::from_form(&form("CallSid=")),
            Err(WebhookError::MissingField("CallSid"))
        );
        assert_eq!(
            MessagingWebhook::from_form(&form("MessageSid=SM1&To=%2B1")),
            Err(WebhookError::MissingField("From"))
        );
        assert_eq!(
            MessagingWebhook::from_form(&form("MessageSid=SM1&From=%2B2&To=%2B1")),
            Err(WebhookError::MissingField("Body"))
        );
    }

    #[test]
    fn voice_webhook() {
        let f = form(
            "CallSid=CA123&AccountSid=AC1&From=%2B14158675309&To=%2B18005551212&CallStatus=ringing\
             &Direction=inbound&ApiVersion=2010-04-01&FromCity=SF",
        );
        assert_eq!(
            VoiceWebhook::from_form(&f).unwrap(),
            VoiceWebhook {
                call_sid: "CA123".into(),
                account_sid: Some("AC1".into()),
                from: Some("+14158675309".into()),
                to: Some("+18005551212".into()),
                call_status: Some("ringing".into()),
                direction: Some("inbound".into()),
            }
        );
        let minimal = VoiceWebhook::from_form(&form("CallSid=CA1")).unwrap();
        assert_eq!((minimal.from, minimal.call_status), (None, None));
    }

    #[test]
    fn status_callback() {
        let f = form(
            "CallSid=CA1&CallStatus=completed&CallDuration=42&SipResponseCode=200&SequenceNumber=3\
             &Timestamp=Tue%2C+10+Aug+2021+18%3A00%3A58+%2B0000&CallbackSource=call-progress-events",
        );
        let status = StatusCallback::from_form(&f).unwrap();
        assert_eq!(status.call_duration, Some(42));
        assert_eq!(status.sip_response_code, Some(200));
        assert_eq!(status.sequence_number, Some(3));
        assert_eq!(
            status.timestamp.as_deref(),
            Some("Tue, 10 Aug 2021 18:00:58 +0000")
        );
        assert!(status.is_terminal());

        let ringing =
            StatusCallback::from_form(&form("CallSid=CA1&CallStatus=ringing&CallDuration="))
                .unwrap();
        assert!(!ringing.is_terminal());
        assert_eq!(ringing.call_duration, None);

        assert_eq!(
            StatusCallback::from_form(&form("CallSid=CA1&CallStatus=completed&CallDuration=ten")),
            Err(WebhookError::InvalidField("CallDuration"))
        );
        assert_eq!(
            StatusCallback::from_form(&form("CallSid=CA1")),
            Err(WebhookError::MissingField("CallStatus"))
        );
    }

    #[test]
    fn whatsapp_message() {
        let message = MessagingWebhook::from_form(&form(WHATSAPP)).unwrap();
        assert_eq!(message.message_sid, "SM01");
        assert_eq!(message.from, "whatsapp:+558282136275");
        assert_eq!(message.to, "whatsapp:+14155238886");
        assert_eq!(message.body, "Olá");
        assert_eq!(message.num_media, 0);
        assert!(message.media.is_empty());
        assert_eq!(message.profile_name.as_deref(), Some("Jhonata"));
        assert_eq!(message.wa_id.as_deref(), Some("558282136275"));
        assert!(message.is_whatsapp());
    }

    #[test]
    fn mms_media_in_index_order() {
        let f = pairs(&[
            ("MessageSid", "MM1"),
            ("From", "+15551234567"),
            ("To", "+15557654321"),
            ("Body", ""),
            ("NumMedia", "2"),
            ("MediaUrl1", "https://api.twilio.com/m/ME2"),
            ("MediaContentType1", "image/png"),
            ("MediaUrl0", "https://api.twilio.com/m/ME1"),
            ("MediaUrlX", "ignored"),
            ("MediaUrl", "ignored"),
            ("MediaUrl+1", "ignored"),
        ]);
        let message = MessagingWebhook::from_form(&f).unwrap();
        assert!(!message.is_whatsapp());
        assert_eq!((message.num_media, message.body.as_str()), (2, ""));
        assert_eq!(
            message.media,
            vec![
                MediaAttachment {
                    url: "https://api.twilio.com/m/ME1".into(),
                    content_type: None
                },
                MediaAttachment {
                    url: "https://api.twilio.com/m/ME2".into(),
                    content_type: Some("image/png".into())
                },
            ]
        );
        let mut bad = f.clone();
        bad[4].1 = "lots".into();
        assert_eq!(
            MessagingWebhook::from_form(&bad),
            Err(WebhookError::InvalidField("NumMedia"))
        );
    }

    #[test]
    fn conversations_message_added() {
        let event = ConversationsWebhook::from_form(&form(CONVERSATIONS)).unwrap();
        assert_eq!(event.event_type, "onMessageAdded");
        assert_eq!(event.conversation_sid, "CH6c25");
        assert_eq!(event.message_sid, "IM8d61");
        assert_eq!(event.author, "dave");
        assert_eq!(event.body, "two");
        assert_eq!(event.source.as_deref(), Some("SDK"));
        assert_eq!((event.index, event.retry_count), (Some(35), 0));
        assert_eq!(event.attributes.as_deref(), Some("{}"));
        assert_eq!(
            event.date_created.as_deref(),
            Some("2021-08-10T18:00:58.111Z")
        );

        assert_eq!(
            ConversationsWebhook::from_form(&form("EventType=onUserAdded&ConversationSid=CH1")),
            Err(WebhookError::MissingField("MessageSid"))
        );
        let retried = ConversationsWebhook::from_form(&form(
            &CONVERSATIONS.replace("RetryCount=0", "RetryCount=2"),
        ))
        .unwrap();
        assert_eq!(retried.retry_count, 2);
    }

    #[test]
    fn conversations_service_sid_is_kept_and_sids_are_checked() {
        assert_eq!(
            ConversationsWebhook::from_form(&form(CONVERSATIONS))
                .unwrap()
                .chat_service_sid,
            None
        );
        let scoped = ConversationsWebhook::from_form(&form(&format!(
            "{CONVERSATIONS}&ChatServiceSid=IS0123456789abcdef0123456789abcdef"
        )))
        .unwrap();
        assert_eq!(
            scoped.chat_service_sid.as_deref(),
            Some("IS0123456789abcdef0123456789abcdef")
        );
        let empty =
            ConversationsWebhook::from_form(&form(&format!("{CONVERSATIONS}&ChatServiceSid=")))
                .unwrap();
        assert_eq!(empty.chat_service_sid, None);
        // Anything that could bend the reply's REST path is refused, naming the field.
        for bad in ["IS..%2F..", "IS1%2FConversations", "MG123", "IS"] {
            assert_eq!(
                ConversationsWebhook::from_form(&form(&format!(
                    "{CONVERSATIONS}&ChatServiceSid={bad}"
                ))),
                Err(WebhookError::InvalidField("ChatServiceSid")),
                "{bad}"
            );
        }
        assert_eq!(
            ConversationsWebhook::from_form(&form(
                &CONVERSATIONS.replace("ConversationSid=CH6c25", "ConversationSid=CH6c25%3Fx%3D1")
            )),
            Err(WebhookError::InvalidField("ConversationSid"))
        );
    }

    #[test]
    fn transcription_content() {
        // §6's example, sent as form fields.
        let f = pairs(&[
            ("LanguageCode", "en-US"),
            ("TranscriptionSid", "GT8fbf72a043b98407a3ce68331cd0030a"),
            ("TranscriptionEvent", "transcription-content"),
            ("CallSid", "CA1"),
            (
                "TranscriptionData",
                r#"{"transcript":"Hello, this is Sam ...","confidence":0.9956335}"#,
            ),
            ("Timestamp", "2024-06-25T18:45:21.454203Z"),
            ("Final", "true"),
            ("AccountSid", "AC1"),
            ("Track", "outbound_track"),
            ("SequenceId", "2"),
        ]);
        let callback = TranscriptionCallback::from_form(&f).unwrap();
        assert_eq!(callback.event, TranscriptionEvent::Content);
        assert_eq!(
            callback.transcript.as_deref(),
            Some("Hello, this is Sam ...")
        );
        assert_eq!(callback.confidence, Some(0.9956335));
        assert_eq!(callback.is_final, Some(true));
        assert_eq!(callback.sequence_id, Some(2));
        assert_eq!(callback.track.as_deref(), Some("outbound_track"));
    }

    #[test]
    fn transcription_partial_error_and_other_events() {
        let partial = TranscriptionCallback::from_form(&pairs(&[
            ("CallSid", "CA1"),
            ("TranscriptionEvent", "transcription-content"),
            ("TranscriptionData", r#"{"transcript":"Hel"}"#),
            ("Final", "false"),
            ("Stability", "0.5"),
        ]))
        .unwrap();
        assert_eq!(
            (partial.confidence, partial.stability, partial.is_final),
            (None, Some(0.5), Some(false))
        );

        let error = TranscriptionCallback::from_form(&pairs(&[
            ("CallSid", "CA1"),
            ("TranscriptionEvent", "transcription-error"),
            ("TranscriptionErrorCode", "32655"),
            ("TranscriptionError", "Provider Unavailable"),
        ]))
        .unwrap();
        assert_eq!(error.event, TranscriptionEvent::Error);
        assert_eq!(error.error_code.as_deref(), Some("32655"));
        assert_eq!(error.transcript, None);

        let other = TranscriptionCallback::from_form(&pairs(&[
            ("CallSid", "CA1"),
            ("TranscriptionEvent", "new-thing"),
        ]));
        assert_eq!(
            other.unwrap().event,
            TranscriptionEvent::Other("new-thing".into())
        );

        for (field, value) in [
            ("TranscriptionData", "not json"),
            ("Final", "maybe"),
            ("SequenceId", "-1"),
        ] {
            let f = pairs(&[
                ("CallSid", "CA1"),
                ("TranscriptionEvent", "transcription-content"),
                (field, value),
            ]);
            assert_eq!(
                TranscriptionCallback::from_form(&f),
                Err(WebhookError::InvalidField(field))
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(f) = parse_form(&body) {
                let _ = VoiceWebhook::from_form(&f);
                let _ = StatusCallback::from_form(&f);
                let _ = MessagingWebhook::from_form(&f);
                let _ = ConversationsWebhook::from_form(&f);
                let _ = TranscriptionCallback::from_form(&f);
            }
        }

        #[test]
        fn arbitrary_field_values_never_panic(
            names in proptest::collection::vec(
                proptest::sample::select(vec![
                    "CallSid", "CallStatus", "MessageSid", "From", "To", "Body", "NumMedia", "MediaUrl0",
                    "MediaUrl99999999999999999999", "MediaContentType0", "EventType", "ConversationSid",
                    "Author", "RetryCount", "Index", "TranscriptionEvent", "TranscriptionData", "Final",
                    "Stability", "CallDuration", "SipResponseCode",
                ]),
                0..12,
            ),
            values in proptest::collection::vec(".*", 12),
        ) {
            let f: Vec<(String, String)> =
                names.iter().zip(&values).map(|(n, v)| (n.to_string(), v.clone())).collect();
            let _ = StatusCallback::from_form(&f);
            let _ = MessagingWebhook::from_form(&f);
            let _ = ConversationsWebhook::from_form(&f);
            let _ = TranscriptionCallback::from_form(&f);
        }
    }

    #[test]
    fn gather_results_and_recording_callbacks() {
        let pressed = GatherResult::from_form(&form("CallSid=CA1&Digits=2&From=%2B1555")).unwrap();
        assert_eq!(pressed.digits.as_deref(), Some("2"));
        for nothing in ["CallSid=CA1", "CallSid=CA1&Digits="] {
            assert_eq!(
                GatherResult::from_form(&form(nothing)).unwrap().digits,
                None
            );
        }
        assert_eq!(
            GatherResult::from_form(&form("Digits=1")),
            Err(WebhookError::MissingField("CallSid"))
        );
        let done = RecordingCallback::from_form(&form(
            "AccountSid=AC1&CallSid=CA1&RecordingSid=RE9&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2FRE9\
             &RecordingStatus=completed&RecordingDuration=14&RecordingChannels=2&RecordingSource=StartCallRecordingTwiML",
        ))
        .unwrap();
        assert_eq!(done.recording_sid, "RE9");
        assert_eq!(
            done.recording_url.as_deref(),
            Some("https://api.twilio.com/RE9")
        );
        assert_eq!(done.recording_duration, Some(14));
        assert_eq!(done.recording_channels, Some(2));
        assert_eq!(
            RecordingCallback::from_form(&form("CallSid=CA1&RecordingStatus=completed")),
            Err(WebhookError::MissingField("RecordingSid"))
        );
        assert_eq!(
            RecordingCallback::from_form(&form(
                "CallSid=CA1&RecordingSid=RE%2F..&RecordingStatus=x"
            )),
            Err(WebhookError::InvalidField("RecordingSid"))
        );
        assert_eq!(
            RecordingCallback::from_form(&form("CallSid=CA1&RecordingSid=RE1")),
            Err(WebhookError::MissingField("RecordingStatus"))
        );
        assert_eq!(
            RecordingCallback::from_form(&form(
                "CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed&RecordingDuration=long"
            )),
            Err(WebhookError::InvalidField("RecordingDuration"))
        );
    }
}
