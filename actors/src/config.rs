//! The engine's plain configuration structs.
//!
//! The application shell fills these from `config/switchboard.toml` and the environment
//! (`src/config.rs`); the engine only reads them. Every section has defaults so a missing
//! table means "the documented default", and unknown keys are refused so a typo in the
//! file is an error naming the key rather than a silently ignored setting.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::backoff::RetryPolicy;
use crate::domain::phone::Country;

/// A credential. Its `Debug`/`Display` never show the value, so it cannot leak into logs
/// or error messages by accident.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Serialized only as a placeholder: the effective configuration that
/// `switchboard check-config` prints, and anything else, never carries the value.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// What a secret reads as wherever the configuration is shown.
pub const REDACTED: &str = "<redacted>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything the engine needs to run.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    pub server: ServerConfig,
    pub twilio: TwilioConfig,
    pub openai: OpenAiConfig,
    pub voice: VoiceConfig,
    pub messaging: MessagingConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub admin: AdminConfig,
    pub cluster: ClusterConfig,
    pub lookup: LookupConfig,
    pub callbacks: CallbacksConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server binds.
    pub bind: String,
    /// The public origin Twilio reaches us at: stream URLs in TwiML and signature checks
    /// are built from it.
    pub public_url: String,
    /// Allow a non-loopback bind without a Twilio auth token (signatures unchecked).
    pub insecure_public: bool,
    /// On SIGTERM/SIGINT, how long live calls and turns may go on before the process
    /// exits (see `crate::drain`).
    pub drain_secs: u64,
    /// Threads of each kind the node runs: HTTP workers, arbiters of the calls and
    /// conversations, and the PostgreSQL store's runtime. `0`: automatic — one HTTP worker
    /// and one arbiter per core, two database threads. Several nodes sharing a small
    /// machine answer faster with few (fewer context switches).
    pub threads: usize,
}

/// The most threads of each kind `server.threads` may ask for.
pub const MAX_THREADS: usize = 1024;

/// One per core (2 when the count is unknown): HTTP workers and arbiters with
/// `server.threads = 0`, as actix-web counts its workers by default.
pub fn per_core() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            insecure_public: false,
            drain_secs: 30,
            threads: 0,
        }
    }
}

impl ServerConfig {
    /// `threads`, or `automatic()` when it is 0.
    pub fn threads_or(&self, automatic: impl FnOnce() -> usize) -> usize {
        match self.threads {
            0 => automatic(),
            n => n,
        }
    }

    /// Why `threads` cannot be honoured, if it cannot.
    pub fn check_threads(threads: usize) -> Result<(), String> {
        if threads > MAX_THREADS {
            return Err(format!(
                "{threads} threads is too many: at most {MAX_THREADS} (0 = automatic)"
            ));
        }
        Ok(())
    }

    /// `PUBLIC_URL` with the WebSocket scheme: `https` → `wss`, `http` → `ws`.
    pub fn public_ws_url(&self, path: &str) -> String {
        let origin = self.public_url.trim_end_matches('/');
        let ws = if let Some(rest) = origin.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = origin.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            origin.to_string()
        };
        format!("{ws}{path}")
    }

    /// `PUBLIC_URL` + path, as Twilio would have requested it.
    pub fn public_http_url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioConfig {
    pub account_sid: Option<String>,
    /// Enables signature validation; `None` is local mode.
    pub auth_token: Option<Secret>,
    pub api_base: String,
    pub conversations_api_base: String,
    pub phone_number: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// Where an escalated call is dialled (`<Dial>`); `None` means no human is available.
    pub human_number: Option<String>,
    /// How long the person's phone rings before the caller comes back to the assistant.
    pub dial_timeout_secs: u32,
    /// REST base of Lookup v2 (`TWILIO_LOOKUP_API_BASE`).
    pub lookup_api_base: String,
    /// REST base of Verify v2 (`TWILIO_VERIFY_API_BASE`).
    pub verify_api_base: String,
    /// The Verify Service (`VA…`) the codes are sent from; `None`: no verification tools.
    pub verify_service_sid: Option<String>,
    /// Longest voicemail a caller can leave (`<Record maxLength>`; Twilio transcribes up
    /// to 120 s).
    pub voicemail_max_secs: u32,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        TwilioConfig {
            account_sid: None,
            auth_token: None,
            api_base: "https://api.twilio.com".into(),
            conversations_api_base: "https://conversations.twilio.com".into(),
            phone_number: None,
            messaging_service_sid: None,
            human_number: None,
            dial_timeout_secs: 20,
            lookup_api_base: "https://lookups.twilio.com".into(),
            verify_api_base: "https://verify.twilio.com".into(),
            verify_service_sid: None,
            voicemail_max_secs: 120,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// `None` selects the offline `local` model.
    pub api_key: Option<Secret>,
    /// REST base, e.g. `https://api.openai.com/v1`; the realtime URL is derived from it.
    pub base_url: String,
    pub realtime_model: String,
    pub chat_model: String,
    /// Model used to transcribe the caller (the transcript is replayed after a reconnect
    /// and kept in the call record). Empty disables input transcription.
    pub transcription_model: String,
    /// Retries of a failed chat completion (429, 5xx, timeouts); a provider's
    /// `retry-after` lengthens a delay, never shortens it.
    pub retry: RetryPolicy,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            api_key: None,
            base_url: "https://api.openai.com/v1".into(),
            realtime_model: "gpt-realtime".into(),
            chat_model: "gpt-4o-mini".into(),
            transcription_model: "gpt-4o-mini-transcribe".into(),
            retry: RetryPolicy::default(),
        }
    }
}

impl OpenAiConfig {
    /// `OPENAI_BASE_URL` with a WebSocket scheme + `/realtime?model=`.
    pub fn realtime_url(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_string()
        };
        format!("{ws}/realtime?model={}", self.realtime_model)
    }

    /// `OPENAI_BASE_URL` + `/chat/completions`.
    pub fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }
}

/// How caller audio reaches the model.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    /// μ-law both ways: Twilio payloads are forwarded without decoding.
    #[default]
    Pcmu,
    /// PCM16 24 kHz on the model side, converted by the `Transcoder`.
    Pcm24k,
}

impl AudioMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AudioMode::Pcmu => "pcmu",
            AudioMode::Pcm24k => "pcm24k",
        }
    }
}

/// Which voice pipeline `/twilio/voice` answers with.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VoiceMode {
    /// Realtime when an OpenAI key is configured, else ConversationRelay.
    #[default]
    Auto,
    /// Media Streams ↔ OpenAI Realtime.
    Realtime,
    /// ConversationRelay ↔ chat model.
    Relay,
    /// People answer: `<Dial>` to `twilio.human_number`, with a one-way stream that the
    /// call transcribes (two Realtime transcription sessions) and summarises afterwards.
    Human,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceConfig {
    pub mode: VoiceMode,
    pub audio_mode: AudioMode,
    /// `audio.input.turn_detection` as sent to the model (`null` disables server VAD).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub turn_detection: serde_json::Value,
    /// Ask the model to greet the caller as soon as the session is configured.
    pub greet: bool,
    /// Silence from both sides this long: the agent asks "are you still there?" (0 = off).
    pub idle_prompt_secs: u64,
    /// No word from the caller this long after their last one, once asked: goodbye and
    /// hang-up, outcome `idle` (0 = never hang up for silence).
    pub idle_hangup_secs: u64,
    /// A tool slower than this plays the hold prompt.
    pub hold_after_ms: u64,
    /// Built-in tools and HTTP tools are abandoned after this long.
    pub tool_timeout_ms: u64,
    /// Rotate the model session before the provider's cap.
    pub session_cap_secs: u64,
    /// Supervised reconnect of the model socket: backoff and retry budget.
    pub reconnect: RetryPolicy,
    /// Audio files (any format symphonia reads) for the hold and fallback prompts; a
    /// relative path is taken from the folder of the configuration file.
    pub prompts_dir: PathBuf,
    /// The `<ConversationRelay>` attributes of relay mode.
    pub relay: RelayConfig,
    /// Twilio Real-Time Transcription of every call: `<Start><Transcription>` before the
    /// `<Connect>`, its callbacks to `/twilio/transcription` (protocols-more.md §5).
    pub transcription: bool,
    /// `languageCode` of that transcription (BCP-47); empty leaves Twilio's `en-US`.
    pub transcription_language: String,
    /// Spoken to every caller before the assistant (or the menu): the text itself, the
    /// name of a `.txt` file in `prompts_dir` holding it (`<Say>`), the name of a `.wav` or
    /// `.mp3` file there, or an `http(s)` URL of audio (`<Play>`). Empty: none.
    pub consent_notice: String,
    /// Records every call (`<Start><Recording>`, both tracks, two channels); Twilio's
    /// recording status callbacks go to `/twilio/recording`.
    pub record: bool,
    /// The key-press menu: up front when `first`, and always the fallback when no model
    /// is reachable.
    pub menu: MenuConfig,
    /// The text of `consent_notice` once its file is read (at start-up).
    #[serde(skip)]
    pub consent_text: Option<String>,
}

/// What a key of the menu does.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MenuChoice {
    /// The assistant (the voice pipeline in force).
    Agent,
    /// `<Dial>` to `twilio.human_number`.
    Human,
    /// A text message to the caller (`menu.sms_text`), then goodbye.
    Sms,
}

/// The key-press menu (`<Gather numDigits="1">`, protocols-more.md §8).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MenuConfig {
    /// Offer the menu to every caller before the assistant.
    pub first: bool,
    /// What the caller hears when the menu is offered up front.
    pub prompt: String,
    /// What the caller hears when no model is reachable (the menu without the assistant).
    pub fallback_prompt: String,
    /// Key (`0`-`9`, `*`, `#`) → `agent`, `human` or `sms`.
    pub keys: std::collections::BTreeMap<String, MenuChoice>,
    /// After no key (or an unusable one) twice.
    pub default: MenuChoice,
    /// Seconds to wait for a key after the prompt.
    pub timeout_secs: u32,
    /// The text `sms` sends; `{PUBLIC_URL}` becomes `server.public_url`.
    pub sms_text: String,
}

impl Default for MenuConfig {
    fn default() -> Self {
        MenuConfig {
            first: false,
            prompt: "For our assistant, press 1. To talk to a person, press 2. For a text \
                     message with a link to chat with us, press 3."
                .into(),
            fallback_prompt: "Sorry, our assistant is not available right now. To talk to a \
                              person, press 2. For a text message with a link to chat with us, \
                              press 3."
                .into(),
            keys: [
                ("1".to_owned(), MenuChoice::Agent),
                ("2".to_owned(), MenuChoice::Human),
                ("3".to_owned(), MenuChoice::Sms),
            ]
            .into_iter()
            .collect(),
            default: MenuChoice::Agent,
            timeout_secs: 6,
            sms_text: "Chat with us any time: {PUBLIC_URL}/chat".into(),
        }
    }
}

impl MenuConfig {
    /// What key `digits` chooses, if it is one of the menu's.
    pub fn choice(&self, digits: &str) -> Option<MenuChoice> {
        self.keys.get(digits).copied()
    }

    fn check(&self) -> Result<(), String> {
        for key in self.keys.keys() {
            let mut chars = key.chars();
            let one_key = matches!(
                (chars.next(), chars.next()),
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#'
            );
            if !one_key {
                return Err(format!(
                    "voice.menu.keys.{key:?}: a key is one of 0-9, * or #"
                ));
            }
        }
        if !(1..=60).contains(&self.timeout_secs) {
            return Err("voice.menu.timeout_secs must be 1-60".into());
        }
        Ok(())
    }
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            mode: VoiceMode::Auto,
            audio_mode: AudioMode::Pcmu,
            turn_detection: serde_json::json!({"type": "server_vad", "silence_duration_ms": 500}),
            greet: true,
            idle_prompt_secs: 0,
            idle_hangup_secs: 0,
            hold_after_ms: 1200,
            tool_timeout_ms: 8000,
            session_cap_secs: 55 * 60,
            reconnect: RetryPolicy::default(),
            prompts_dir: PathBuf::from("prompts"),
            relay: RelayConfig::default(),
            transcription: false,
            transcription_language: String::new(),
            consent_notice: String::new(),
            record: false,
            menu: MenuConfig::default(),
            consent_text: None,
        }
    }
}

/// What [`VoiceConfig::consent_notice`] asks the caller to hear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentNotice<'a> {
    /// `<Say>` this text.
    Say(&'a str),
    /// `<Play>` the audio at this URL.
    Play(&'a str),
    /// `<Play>` this audio file of `prompts_dir` (`.wav` or `.mp3`), which the server
    /// serves at `/prompts/{name}` for Twilio to fetch.
    PlayPrompt(&'a str),
}

/// Whether `notice` names an audio file of the prompts folder (a bare file name).
pub fn is_prompt_audio(notice: &str) -> bool {
    let lower = notice.to_ascii_lowercase();
    (lower.ends_with(".wav") || lower.ends_with(".mp3"))
        && !notice.contains(['/', '\\'])
        && !notice.starts_with('.')
}

impl VoiceConfig {
    /// The consent notice in force, if any (a `.txt` notice once its file is read).
    pub fn consent(&self) -> Option<ConsentNotice<'_>> {
        let notice = self.consent_notice.trim();
        if notice.is_empty() {
            return None;
        }
        if notice.starts_with("https://") || notice.starts_with("http://") {
            return Some(ConsentNotice::Play(notice));
        }
        if is_prompt_audio(notice) {
            return Some(ConsentNotice::PlayPrompt(notice));
        }
        if notice.ends_with(".txt") {
            return self
                .consent_text
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(ConsentNotice::Say);
        }
        Some(ConsentNotice::Say(notice))
    }

    /// Refuses settings the voice path cannot honour, naming the key: server VAD with
    /// `create_response: false` would leave every caller unanswered, and with
    /// `interrupt_response: false` the model would talk over a caller who barges in.
    pub fn check(&self) -> Result<(), String> {
        self.menu.check()?;
        match &self.turn_detection {
            serde_json::Value::Null => Ok(()),
            serde_json::Value::Object(detection) => {
                for (flag, why) in [
                    (
                        "create_response",
                        "the model must answer when the caller stops talking",
                    ),
                    (
                        "interrupt_response",
                        "the model must stop when the caller talks over it (barge-in)",
                    ),
                ] {
                    if detection.get(flag) == Some(&serde_json::Value::Bool(false)) {
                        return Err(format!(
                            "voice.turn_detection.{flag} = false is not supported: {why}; remove the key"
                        ));
                    }
                }
                Ok(())
            }
            other => Err(format!(
                "voice.turn_detection must be a table (or absent), not {other}"
            )),
        }
    }
}

/// Relay mode (SPEC §5.2): Twilio does speech-to-text and text-to-speech, so these are the
/// `<ConversationRelay>` attributes that shape what the caller hears. An unset option is
/// left out of the TwiML, and Twilio's default applies.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// `welcomeGreeting`: spoken as soon as the call is connected. Empty: none.
    pub welcome_greeting: String,
    /// `language`: speech-to-text and text-to-speech, e.g. `en-US`.
    pub language: Option<String>,
    /// `ttsProvider`: `Google`, `Amazon` or `ElevenLabs`.
    pub tts_provider: Option<String>,
    /// `voice`, in the provider's naming.
    pub voice: Option<String>,
    /// `transcriptionProvider`: `Google` or `Deepgram`.
    pub transcription_provider: Option<String>,
    /// `interruptible`: `none`, `dtmf`, `speech` or `any` — what may cut our speech short.
    pub interruptible: Option<String>,
    /// `dtmfDetection`: keys the caller presses reach the agent as text.
    pub dtmf_detection: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            welcome_greeting: "Hello! How can I help you today?".into(),
            language: Some("en-US".into()),
            tts_provider: None,
            voice: None,
            transcription_provider: None,
            interruptible: Some("any".into()),
            dtmf_detection: true,
        }
    }
}

/// How text replies reach the customer (SPEC §5.3).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplyMode {
    /// `rest` when Twilio credentials are configured, else `twiml`.
    #[default]
    Auto,
    /// Inline `<Message>` in the webhook's TwiML answer.
    Twiml,
    /// `<Response/>` at once, the reply sent through the Messages REST API.
    Rest,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagingConfig {
    pub reply_mode: ReplyMode,
    /// An inline (TwiML) reply not ready by then falls back to REST, or to a short apology
    /// without credentials. Twilio itself gives up after 15 s.
    pub deadline_ms: u64,
    /// Our `Author` in Twilio Conversations: messages by it are ours and never answered.
    pub bot_identity: String,
    /// The country a national phone number (`(415) 555-0101`) is read in, on every channel.
    pub default_country: DefaultCountry,
    /// Text turns older than this leave the model's context (they stay in the store until
    /// `storage.retention_days`).
    pub history_ttl_hours: u32,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        MessagingConfig {
            reply_mode: ReplyMode::Auto,
            deadline_ms: 10_000,
            bot_identity: "switchboard".into(),
            default_country: DefaultCountry::default(),
            history_ttl_hours: 24,
        }
    }
}

/// `messaging.default_country`: an ISO 3166 code [`Country::from_iso`] knows; anything else
/// is a configuration error naming the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct DefaultCountry(pub Country);

impl Default for DefaultCountry {
    fn default() -> Self {
        DefaultCountry(Country::US)
    }
}

impl TryFrom<String> for DefaultCountry {
    type Error = String;

    fn try_from(iso: String) -> Result<Self, String> {
        Country::from_iso(&iso).map(DefaultCountry).ok_or_else(|| {
            format!(
                "unknown country `{iso}`; expected one of {}",
                Country::known().join(", ")
            )
        })
    }
}

impl From<DefaultCountry> for String {
    fn from(country: DefaultCountry) -> String {
        country.0.iso.to_owned()
    }
}

/// `[lookup]`: Twilio Lookup v2 line type of a number at its first contact.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookupConfig {
    /// Check each new number's line type (a paid Lookup data package); needs credentials.
    pub enabled: bool,
}

impl TwilioConfig {
    /// Account SID and auth token, when both are set: what REST calls need.
    pub fn credentials(&self) -> Option<(&str, &Secret)> {
        Some((self.account_sid.as_deref()?, self.auth_token.as_ref()?))
    }
}

impl EngineConfig {
    /// Whether one-time codes can be sent (Verify Service and credentials set).
    pub fn verification_available(&self) -> bool {
        self.twilio.verify_service_sid.is_some() && self.twilio.credentials().is_some()
    }

    /// The country national phone numbers are read in.
    pub fn country(&self) -> &Country {
        &self.messaging.default_country.0
    }

    /// The voice pipeline in force once `auto` is resolved: the Realtime model needs an
    /// OpenAI key, and without one calls go to ConversationRelay and the local model.
    pub fn voice_mode(&self) -> VoiceMode {
        match self.voice.mode {
            VoiceMode::Auto if self.openai.api_key.is_some() => VoiceMode::Realtime,
            VoiceMode::Auto => VoiceMode::Relay,
            mode => mode,
        }
    }

    /// The reply mode in force once `auto` is resolved.
    pub fn reply_mode(&self) -> ReplyMode {
        match self.messaging.reply_mode {
            ReplyMode::Auto if self.twilio.credentials().is_some() => ReplyMode::Rest,
            ReplyMode::Auto => ReplyMode::Twiml,
            mode => mode,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The embedded sled store's directory (one node).
    pub data_dir: PathBuf,
    /// `postgres://…`: the store is PostgreSQL and the node runs in cluster mode with every
    /// other node on the same database. A secret (it may carry a password).
    pub database_url: Option<Secret>,
    /// Call records older than this are pruned.
    pub retention_days: u32,
    /// `MessageSid`s are remembered this long to recognise Twilio's retries.
    pub dedupe_hours: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            database_url: None,
            retention_days: 90,
            dedupe_hours: 48,
        }
    }
}

/// Cluster mode (`storage.database_url`): several nodes behind a load balancer acting as one
/// service. Ignored with the embedded store.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name in the cluster (dashboard, `node` metric label, ownership of
    /// conversations and calls). Empty: the host name and the listening port.
    pub node_id: String,
    /// How often the node says it is alive (and publishes its live actors).
    pub heartbeat_ms: u64,
    /// A node silent this long is dead: its conversations go to other nodes, its calls
    /// resume elsewhere.
    pub dead_after_ms: u64,
    /// How long a node owns a conversation without renewing; renewed every third of it.
    pub lease_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            heartbeat_ms: 1000,
            dead_after_ms: 5000,
            lease_ms: 10_000,
        }
    }
}

/// Promised call backs (`schedule_callback`): how they are placed when due.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    /// How often due call backs are looked for; 0 turns placing them off on this node.
    pub poll_secs: u64,
    /// When every line is taken, how long until a call back is tried again.
    pub retry_secs: u64,
    /// A call back left `placing` this long (its node stopped mid-way) becomes
    /// `unconfirmed`: it may have rung, so it is never placed again.
    pub stale_after_secs: u64,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            poll_secs: 15,
            retry_secs: 60,
            stale_after_secs: 120,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_calls: usize,
    pub max_conversations: usize,
    pub per_sender_per_minute: u32,
    pub per_ip_per_second: u32,
    /// Web-chat messages per visitor per minute; an IP address may send
    /// [`crate::limits::WEB_IP_SHARE`] times as many. Each message can cost a model call.
    pub web_messages_per_minute: u32,
    pub idle_secs: u64,
    /// Largest WebSocket message accepted from Twilio (`1009` beyond).
    pub max_ws_message_bytes: usize,
    /// Largest form body accepted on a webhook.
    pub max_form_bytes: usize,
    /// Consecutive unusable frames after which a media socket is closed with `1008`.
    pub max_bad_frames_in_row: u32,
    /// `redis://…`: the per-sender and per-IP limits are shared by every node (GCRA in
    /// Redis); without it each node limits alone.
    pub redis_url: Option<Secret>,
    /// Every Redis key of the limits starts with this (`<prefix>:sender:<id>`,
    /// `<prefix>:ip:<address>`): clusters, or tests, sharing one Redis keep apart.
    pub redis_key_prefix: String,
    /// A limit check Redis has not answered within this is decided by the node alone.
    pub redis_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_calls: 2000,
            max_conversations: 20000,
            per_sender_per_minute: 30,
            per_ip_per_second: 200,
            web_messages_per_minute: 12,
            idle_secs: 600,
            max_ws_message_bytes: 64 * 1024,
            max_form_bytes: 64 * 1024,
            max_bad_frames_in_row: 100,
            redis_url: None,
            redis_key_prefix: "switchboard:limits".to_owned(),
            redis_timeout_ms: 100,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for `/actors` and `/metrics`; `None` allows loopback clients only.
    pub token: Option<Secret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_urls_follow_the_http_scheme() {
        let mut server = ServerConfig::default();
        assert_eq!(
            server.public_ws_url("/twilio/media"),
            "ws://127.0.0.1:8080/twilio/media"
        );
        server.public_url = "https://example.ngrok.app/".into();
        assert_eq!(
            server.public_ws_url("/twilio/media"),
            "wss://example.ngrok.app/twilio/media"
        );
        let openai = OpenAiConfig::default();
        assert_eq!(
            openai.realtime_url(),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime"
        );
        assert_eq!(
            openai.chat_url(),
            "https://api.openai.com/v1/chat/completions"
        );
    }

    #[test]
    fn auto_voice_mode_needs_a_key_for_realtime() {
        let mut config = EngineConfig::default();
        assert_eq!(config.voice_mode(), VoiceMode::Relay);
        config.openai.api_key = Some(Secret::new("sk-x"));
        assert_eq!(config.voice_mode(), VoiceMode::Realtime);
        config.voice.mode = VoiceMode::Relay;
        assert_eq!(config.voice_mode(), VoiceMode::Relay);
    }

    #[test]
    fn turn_detection_that_would_break_answers_or_barge_in_is_refused() {
        let mut voice = VoiceConfig::default();
        assert_eq!(voice.check(), Ok(()));
        voice.turn_detection = serde_json::json!({"type": "server_vad", "create_response": false});
        assert!(voice.check().is_err_and(|e| e.contains("create_response")));
        voice.turn_detection =
            serde_json::json!({"type": "semantic_vad", "interrupt_response": false});
        assert!(voice
            .check()
            .is_err_and(|e| e.contains("interrupt_response")));
        voice.turn_detection =
            serde_json::json!({"type": "server_vad", "interrupt_response": true});
        assert_eq!(voice.check(), Ok(()));
        voice.turn_detection = serde_json::json!("server_vad");
        assert!(voice.check().is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "sk-very-secret");
    }
}
