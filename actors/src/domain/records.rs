//! What is remembered about calls and customers (SPEC §7): the record of one
//! call, and the customer's memory shared by every channel. Plain serde data,
//! written by the store.

use serde::{Deserialize, Serialize};

use super::transcript::{Role, Transcript, Turn};
use crate::protocol::twilio::identity::PhoneNumberLookup;
use crate::protocol::twilio::webhook::{TranscriptionCallback, TranscriptionEvent};

/// How the call's audio was carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    /// Media Streams, μ-law forwarded untouched to the model.
    Pcmu,
    /// Media Streams, transcoded to PCM16 24 kHz.
    Pcm24k,
    /// ConversationRelay: Twilio does speech-to-text and text-to-speech.
    Relay,
    /// People talked (`voice.mode = "human"`); a one-way stream let us transcribe them.
    Listened,
    /// Nothing of the call reached our sockets: a record made by Twilio's callbacks alone
    /// (transcription, recording) for a call switchboard answered with TwiML only — a
    /// key-press menu, a `<Dial>` — or before its stream started.
    Unbridged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallOutcome {
    /// The conversation ended normally.
    Completed,
    /// Handed to a human (`<Dial>`).
    Escalated,
    /// The model was unavailable; the caller got the fallback.
    Fallback,
    Failed,
    /// A second socket for the same call took over.
    Replaced,
    /// A supervisor ended the call from the dashboard.
    Ended,
    /// Nobody spoke for `voice.idle_hangup_secs` after the agent asked whether the caller
    /// was still there: it said goodbye and hung up.
    Idle,
    /// The stream broke while the call went on (a network failure, a node that died):
    /// Twilio asks the `<Connect action>` URL, and the call resumes from its last snapshot.
    Dropped,
    /// Known only from Twilio's callbacks: no stream of ours carried the call (yet). A
    /// stream that starts later replaces it with its own (live) account.
    NotBridged,
    /// The caller chose to leave a message (`take_voicemail`): the stream ended for
    /// `<Record>`, whose transcription joins the customer's record.
    Voicemail,
}

impl CallOutcome {
    /// The metrics label (`switchboard_calls_total{outcome}`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Completed => "completed",
            CallOutcome::Escalated => "escalated",
            CallOutcome::Fallback => "fallback",
            CallOutcome::Failed => "failed",
            CallOutcome::Replaced => "replaced",
            CallOutcome::Ended => "ended",
            CallOutcome::Dropped => "dropped",
            CallOutcome::NotBridged => "not_bridged",
            CallOutcome::Idle => "idle",
            CallOutcome::Voicemail => "voicemail",
        }
    }
}

/// One phone call, snapshotted while live and final once `outcome` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_sid: String,
    pub stream_sid: String,
    /// The caller's E.164 number, when Twilio gave one.
    pub customer: Option<String>,
    /// The agent active at the end (or now, while live).
    pub agent: String,
    /// Wall-clock ms since the Unix epoch.
    pub started_at_ms: u64,
    /// `None` while the call is live.
    pub ended_at_ms: Option<u64>,
    pub transcript: Transcript,
    /// Tools called, in order, repeats included.
    #[serde(default)]
    pub tools_used: Vec<String>,
    /// `None` while the call is live.
    pub outcome: Option<CallOutcome>,
    #[serde(default)]
    pub model_reconnects: u32,
    pub audio_mode: AudioMode,
    /// Twilio Real-Time Transcription results (SPEC §5.6), kept apart from the
    /// model's own transcript: caller speech as `User`, ours as `Assistant`.
    #[serde(default)]
    pub transcriptions: Vec<Turn>,
    /// The node carrying the call (cluster mode): while the record is live, the call is
    /// resumed elsewhere if that node dies.
    #[serde(default)]
    pub node: Option<String>,
    /// Recordings of the call (`voice.record`), as Twilio's recording status callbacks
    /// report them; one entry per recording sid, at its latest status.
    #[serde(default)]
    pub recordings: Vec<RecordingEntry>,
}

/// One recording of a call, from Twilio's recording status callback
/// (protocols-more.md §4.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingEntry {
    /// `RE…`.
    pub sid: String,
    /// Where Twilio serves the audio (HTTP Basic auth; `.mp3` for MP3).
    pub url: Option<String>,
    /// `in-progress`, `completed`, `absent` or `failed` (the pages disagree; all kept).
    pub status: String,
    /// Seconds; only once `completed`.
    pub duration_secs: Option<u64>,
    pub channels: Option<u8>,
    /// `StartCallRecordingAPI`, `DialVerb`, … (`<Start><Recording>`'s value is not settled).
    pub source: Option<String>,
    /// When the latest status arrived, wall-clock ms.
    pub at_ms: u64,
}

impl CallRecord {
    pub fn new(
        call_sid: impl Into<String>,
        stream_sid: impl Into<String>,
        customer: Option<String>,
        agent: impl Into<String>,
        audio_mode: AudioMode,
        started_at_ms: u64,
    ) -> Self {
        CallRecord {
            call_sid: call_sid.into(),
            stream_sid: stream_sid.into(),
            customer,
            agent: agent.into(),
            started_at_ms,
            ended_at_ms: None,
            transcript: Transcript::new(),
            tools_used: Vec::new(),
            outcome: None,
            model_reconnects: 0,
            audio_mode,
            transcriptions: Vec::new(),
            node: None,
            recordings: Vec::new(),
        }
    }

    /// The record of a call only Twilio's callbacks told us about (a transcription or a
    /// recording of a call our sockets never carried, or not yet).
    pub fn unbridged(call_sid: impl Into<String>, at_ms: u64) -> Self {
        let mut record = CallRecord::new(call_sid, "", None, "", AudioMode::Unbridged, at_ms);
        record.outcome = Some(CallOutcome::NotBridged);
        record
    }

    /// Keeps what Twilio's callbacks wrote to the stored record (`stored`): those fields
    /// belong to the store, and a live call's snapshot must not undo them.
    pub fn keep_callbacks_of(&mut self, stored: CallRecord) {
        self.transcriptions = stored.transcriptions;
        self.recordings = stored.recordings;
    }

    /// Adds a recording's latest status (replacing the entry with the same sid).
    pub fn note_recording(&mut self, entry: RecordingEntry) {
        match self.recordings.iter_mut().find(|r| r.sid == entry.sid) {
            Some(existing) => {
                let url = existing.url.take();
                *existing = entry;
                if existing.url.is_none() {
                    existing.url = url;
                }
            }
            None => self.recordings.push(entry),
        }
    }

    pub fn finish(&mut self, outcome: CallOutcome, at_ms: u64) {
        self.outcome = Some(outcome);
        self.ended_at_ms = Some(at_ms.max(self.started_at_ms));
    }

    pub fn is_live(&self) -> bool {
        self.outcome.is_none()
    }

    /// What the customer's memory keeps of this call.
    pub fn summary(&self) -> CallSummary {
        let first = |role: Role| {
            self.transcript
                .turns()
                .iter()
                .find(|t| t.role == role && !t.text.trim().is_empty())
                .map(|t| clip(&t.text, SUMMARY_CHARS))
        };
        let last_assistant = self
            .transcript
            .turns()
            .iter()
            .rev()
            .find(|t| t.role == Role::Assistant && !t.text.trim().is_empty())
            .map(|t| clip(&t.text, SUMMARY_CHARS));
        let mut tools = self.tools_used.clone();
        tools.dedup();
        CallSummary {
            call_sid: self.call_sid.clone(),
            started_at_ms: self.started_at_ms,
            ended_at_ms: self.ended_at_ms,
            agent: self.agent.clone(),
            outcome: self.outcome,
            asked: first(Role::User),
            answered: last_assistant,
            tools_used: tools,
            summary: None,
        }
    }
}

/// What a Real-Time Transcription callback adds to the call's record (SPEC §5.6): a final
/// transcript as its speaker's turn — the caller's track as `User`, ours as `Assistant` —
/// and the transcription's start, stop and errors as `System` notes. Partial and empty
/// results, and events Twilio may add later, add nothing.
pub fn transcription_entry(callback: &TranscriptionCallback, at_ms: u64) -> Option<Turn> {
    let (role, text) = match &callback.event {
        TranscriptionEvent::Content => {
            let text = callback.transcript.as_deref()?.trim();
            if callback.is_final == Some(false) || text.is_empty() {
                return None;
            }
            let role = match callback.track.as_deref() {
                Some("outbound_track") => Role::Assistant,
                _ => Role::User,
            };
            (role, text.to_owned())
        }
        TranscriptionEvent::Started => (
            Role::System,
            match &callback.language_code {
                Some(language) => format!("transcription started ({language})"),
                None => "transcription started".to_owned(),
            },
        ),
        TranscriptionEvent::Stopped => (Role::System, "transcription stopped".to_owned()),
        TranscriptionEvent::Error => (
            Role::System,
            format!(
                "transcription error {}: {}",
                callback.error_code.as_deref().unwrap_or("(no code)"),
                callback.error.as_deref().unwrap_or("(no description)")
            ),
        ),
        TranscriptionEvent::Other(_) => return None,
    };
    Some(Turn { role, text, at_ms })
}

/// Longest text kept per summary field: enough for "what was this call about".
const SUMMARY_CHARS: usize = 200;

fn clip(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text).trim_end()),
    }
}

/// A call as the customer's memory keeps it: enough for the next agent (on any
/// channel) to know what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSummary {
    pub call_sid: String,
    pub started_at_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub agent: String,
    pub outcome: Option<CallOutcome>,
    /// The caller's first words.
    pub asked: Option<String>,
    /// The assistant's last words.
    pub answered: Option<String>,
    #[serde(default)]
    pub tools_used: Vec<String>,
    /// What was agreed, when someone wrote it down (a listened call's summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// One customer, keyed by E.164 number or web id, shared by every channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub id: String,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Most recent last, at most [`CustomerRecord::MAX_CALLS`].
    #[serde(default)]
    pub calls: Vec<CallSummary>,
    /// The agent the customer's text conversation is with: a customer handed to `booking`
    /// is still with `booking` after the conversation's actor retires or the server
    /// restarts. `None`: the default agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_agent: Option<String>,
    /// What Twilio Lookup said of the number (`lookup.enabled`), once it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<LineInfo>,
    /// Numbers this customer proved to own with a Verify code (e.g. the number an order
    /// was placed from), newest last, at most [`CustomerRecord::MAX_VERIFIED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<VerifiedNumber>,
    /// Messages the customer left (`<Record>`, transcribed), most recent last, at most
    /// [`CustomerRecord::MAX_VOICEMAILS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voicemails: Vec<Voicemail>,
}

/// Twilio Lookup v2 `line_type_intelligence` of a number, as cached on its customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineInfo {
    /// `landline`, `mobile`, `fixedVoip`, `nonFixedVoip`, `tollFree`, … or `unknown`;
    /// `invalid` when Lookup said the number is not valid.
    pub line_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    pub checked_at_ms: u64,
}

impl LineInfo {
    /// What a Lookup answer says of the line: `invalid` for a number Lookup calls invalid,
    /// else the line type (`unknown` when Lookup had none).
    pub fn from_lookup(answer: &PhoneNumberLookup, at_ms: u64) -> LineInfo {
        let lti = answer.line_type_intelligence.as_ref();
        let line_type = if answer.valid == Some(false) {
            "invalid".to_owned()
        } else {
            lti.and_then(|l| l.line_type.clone())
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        LineInfo {
            line_type,
            carrier: lti.and_then(|l| l.carrier_name.clone()),
            checked_at_ms: at_ms,
        }
    }

    /// Whether a text message can reach the number: not a landline (nor an invalid
    /// number). Any other type, `unknown` included, is given the benefit of the doubt.
    pub fn takes_sms(&self) -> bool {
        !matches!(self.line_type.as_str(), "landline" | "invalid")
    }
}

/// A number the customer proved to own, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedNumber {
    pub number: String,
    pub at_ms: u64,
}

/// A message a caller left after the beep, as Twilio transcribed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voicemail {
    pub call_sid: String,
    pub recording_sid: Option<String>,
    pub recording_url: Option<String>,
    /// `None` when Twilio could not transcribe it (`TranscriptionStatus=failed`).
    pub text: Option<String>,
    pub at_ms: u64,
}

/// One change to a customer's record, applied atomically by the store (read, apply,
/// write under the record's lock), creating the customer on first contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerChange {
    /// Their text conversation is now with `agent`.
    TextAgent { agent: String, at_ms: u64 },
    /// Lookup answered for their number.
    Line(LineInfo),
    /// They proved to own `number`.
    Verified(VerifiedNumber),
    /// Adds or replaces (same `call_sid`) a call summary.
    Call(CallSummary),
    /// Adds or replaces (same recording, or same call without one) a voicemail.
    Voicemail(Voicemail),
}

impl CustomerChange {
    /// When it happened: a new customer is first seen then.
    pub fn at_ms(&self) -> u64 {
        match self {
            CustomerChange::TextAgent { at_ms, .. } => *at_ms,
            CustomerChange::Line(line) => line.checked_at_ms,
            CustomerChange::Verified(verified) => verified.at_ms,
            CustomerChange::Call(summary) => summary.started_at_ms,
            CustomerChange::Voicemail(voicemail) => voicemail.at_ms,
        }
    }
}

impl CustomerRecord {
    /// Older call summaries are dropped: memory is for context, not an archive
    /// (full call records are kept separately, subject to retention).
    pub const MAX_CALLS: usize = 50;
    /// Verified numbers kept per customer.
    pub const MAX_VERIFIED: usize = 10;

    pub fn new(id: impl Into<String>, at_ms: u64) -> Self {
        CustomerRecord {
            id: id.into(),
            first_seen_ms: at_ms,
            last_seen_ms: at_ms,
            calls: Vec::new(),
            text_agent: None,
            line: None,
            verified: Vec::new(),
            voicemails: Vec::new(),
        }
    }

    /// Most voicemails kept per customer.
    pub const MAX_VOICEMAILS: usize = 20;

    /// The record of `id` after `change`: `current`, or a new customer.
    pub fn changed(id: &str, current: Option<CustomerRecord>, change: &CustomerChange) -> Self {
        let at_ms = change.at_ms();
        let mut record = current.unwrap_or_else(|| CustomerRecord::new(id, at_ms));
        record.apply(change);
        record
    }

    /// Applies one change.
    pub fn apply(&mut self, change: &CustomerChange) {
        self.last_seen_ms = self.last_seen_ms.max(change.at_ms());
        match change {
            CustomerChange::Call(summary) => self.record_call(summary.clone()),
            CustomerChange::Voicemail(voicemail) => self.record_voicemail(voicemail.clone()),
            CustomerChange::TextAgent { agent, .. } => self.text_agent = Some(agent.clone()),
            CustomerChange::Line(line) => self.line = Some(line.clone()),
            CustomerChange::Verified(verified) => {
                self.verified.retain(|v| v.number != verified.number);
                self.verified.push(verified.clone());
                let excess = self.verified.len().saturating_sub(Self::MAX_VERIFIED);
                self.verified.drain(..excess);
            }
        }
    }

    /// Adds a voicemail; Twilio retrying the same callback replaces it rather than
    /// adding a second.
    pub fn record_voicemail(&mut self, voicemail: Voicemail) {
        self.last_seen_ms = self.last_seen_ms.max(voicemail.at_ms);
        let same = |v: &Voicemail| match (&v.recording_sid, &voicemail.recording_sid) {
            (Some(a), Some(b)) => a == b,
            (None, None) => v.call_sid == voicemail.call_sid,
            _ => false,
        };
        match self.voicemails.iter_mut().find(|v| same(v)) {
            Some(existing) => *existing = voicemail,
            None => self.voicemails.push(voicemail),
        }
        let excess = self.voicemails.len().saturating_sub(Self::MAX_VOICEMAILS);
        self.voicemails.drain(..excess);
    }

    /// Whether the customer proved to own `number` at or after `since_ms`.
    pub fn has_verified(&self, number: &str, since_ms: u64) -> bool {
        self.verified
            .iter()
            .any(|v| v.number == number && v.at_ms >= since_ms)
    }

    /// Adds or replaces (same `call_sid`) a call summary.
    pub fn record_call(&mut self, summary: CallSummary) {
        let seen = summary.ended_at_ms.unwrap_or(summary.started_at_ms);
        self.first_seen_ms = self.first_seen_ms.min(summary.started_at_ms);
        self.last_seen_ms = self.last_seen_ms.max(seen);
        match self
            .calls
            .iter_mut()
            .find(|c| c.call_sid == summary.call_sid)
        {
            Some(existing) => *existing = summary,
            None => self.calls.push(summary),
        }
        let excess = self.calls.len().saturating_sub(Self::MAX_CALLS);
        self.calls.drain(..excess);
    }
}

/// Masks a phone number for logs (SPEC §9): `+14155554567` → `+1******4567`.
/// Of a string with seven or more digits only the first and the last four digits
/// show, whatever surrounds them (`whatsapp:`, `+`, or the space a form decodes a
/// bare `+` into — so a badly encoded number is masked too); a short code is
/// masked whole; anything else (a web id) is returned unchanged.
pub fn mask_phone(s: &str) -> String {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if digits < 7 {
        // A short code is masked whole; anything else this short is not a number.
        let bare = s.strip_prefix("whatsapp:").unwrap_or(s);
        let bare = bare.strip_prefix('+').unwrap_or(bare);
        return if digits > 0 && bare.bytes().all(|b| b.is_ascii_digit()) {
            s.replace(|c: char| c.is_ascii_digit(), "*")
        } else {
            s.to_owned()
        };
    }
    // Whatever surrounds the number (`whatsapp:`, `+`, a space from a form's decoded `+`)
    // stays; of the digits only the first and the last four show.
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen == 1 || seen > digits - 4 {
                c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_phone_numbers() {
        assert_eq!(mask_phone("+14155554567"), "+1******4567");
        assert_eq!(
            mask_phone("whatsapp:+447700900123"),
            "whatsapp:+4*******0123"
        );
        assert_eq!(mask_phone("4155554567"), "4*****4567");
        assert_eq!(mask_phone("+12345"), "+*****");
        assert_eq!(mask_phone("web-3f2a9c"), "web-3f2a9c");
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_phone("+"), "+");
        assert_eq!(mask_phone("+1415555456７"), "+1*****5456７");
        // A `+` sent unencoded in a form arrives as a space: still masked.
        assert_eq!(mask_phone(" 14155550101"), " 1******0101");
    }

    fn record() -> CallRecord {
        let mut r = CallRecord::new(
            "CA1",
            "MZ1",
            Some("+14155550101".into()),
            "triage",
            AudioMode::Pcmu,
            1_000,
        );
        r.transcript
            .push(Role::Assistant, "Hi, how can I help?", 1_100);
        r.transcript.push(Role::User, "Where is order 1001?", 1_200);
        r.transcript
            .push(Role::Assistant, "It ships tomorrow.", 1_300);
        r.tools_used = vec!["lookup_order".into(), "lookup_order".into()];
        r
    }

    #[test]
    fn a_record_is_live_until_finished() {
        let mut r = record();
        assert!(r.is_live());
        r.finish(CallOutcome::Completed, 500);
        assert!(!r.is_live());
        assert_eq!(r.ended_at_ms, Some(1_000), "never ends before it started");
        assert_eq!(CallOutcome::Escalated.as_str(), "escalated");
    }

    #[test]
    fn summary_keeps_the_question_and_the_last_answer() {
        let mut r = record();
        r.finish(CallOutcome::Completed, 2_000);
        let s = r.summary();
        assert_eq!(s.asked.as_deref(), Some("Where is order 1001?"));
        assert_eq!(s.answered.as_deref(), Some("It ships tomorrow."));
        assert_eq!(s.tools_used, vec!["lookup_order".to_owned()]);
        assert_eq!(s.outcome, Some(CallOutcome::Completed));
    }

    #[test]
    fn long_text_is_clipped_on_a_char_boundary() {
        let long = "é".repeat(500);
        let clipped = clip(&long, SUMMARY_CHARS);
        assert_eq!(clipped.chars().count(), SUMMARY_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }

    #[test]
    fn customer_memory_replaces_and_bounds_calls() {
        let mut c = CustomerRecord::new("+14155550101", 5_000);
        let s = record().summary();
        c.record_call(s.clone());
        c.record_call(CallSummary {
            agent: "orders".into(),
            ..s
        });
        assert_eq!(c.calls.len(), 1);
        assert_eq!(c.calls[0].agent, "orders");
        assert_eq!(c.first_seen_ms, 1_000);
        for i in 0..(CustomerRecord::MAX_CALLS + 5) {
            c.record_call(CallSummary {
                call_sid: format!("CA{i}"),
                ..record().summary()
            });
        }
        assert_eq!(c.calls.len(), CustomerRecord::MAX_CALLS);
        assert_eq!(
            c.calls.last().unwrap().call_sid,
            format!("CA{}", CustomerRecord::MAX_CALLS + 4)
        );
    }

    #[test]
    fn transcription_callbacks_become_record_entries() {
        use crate::protocol::twilio::webhook::parse_form;
        let entry = |form: &str| {
            let form = parse_form(form.as_bytes()).unwrap();
            transcription_entry(&TranscriptionCallback::from_form(&form).unwrap(), 7)
        };
        let content = "CallSid=CA1&TranscriptionEvent=transcription-content&Final=true\
                       &TranscriptionData=%7B%22transcript%22%3A%22%20Hi%20there%22%7D";
        assert_eq!(
            entry(&format!("{content}&Track=inbound_track")),
            Some(Turn {
                role: Role::User,
                text: "Hi there".into(),
                at_ms: 7
            })
        );
        assert_eq!(
            entry(&format!("{content}&Track=outbound_track")).map(|t| t.role),
            Some(Role::Assistant)
        );
        assert_eq!(
            entry(&content.replace("Final=true", "Final=false")),
            None,
            "partial results are not kept"
        );
        let started =
            entry("CallSid=CA1&TranscriptionEvent=transcription-started&LanguageCode=en-US")
                .unwrap();
        assert_eq!(started.role, Role::System);
        assert_eq!(started.text, "transcription started (en-US)");
        assert_eq!(
            entry("CallSid=CA1&TranscriptionEvent=transcription-stopped").map(|t| t.text),
            Some("transcription stopped".into())
        );
        assert_eq!(
            entry(
                "CallSid=CA1&TranscriptionEvent=transcription-error\
                 &TranscriptionErrorCode=32655&TranscriptionError=Provider+Unavailable"
            )
            .map(|t| t.text),
            Some("transcription error 32655: Provider Unavailable".into())
        );
        assert_eq!(entry("CallSid=CA1&TranscriptionEvent=new-thing"), None);
    }

    #[test]
    fn records_round_trip_through_json() {
        let r = record();
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""audio_mode":"pcmu""#));
        assert_eq!(serde_json::from_str::<CallRecord>(&json).unwrap(), r);
    }
}
