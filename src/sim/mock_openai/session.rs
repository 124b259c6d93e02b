//! The session object: the defaults `session.created` shows, `session.update` validation and
//! merging (on the raw JSON, because the server's errors are about what the client sent), and
//! the few settings that change the emulator's behaviour.

use actors::protocol::openai::realtime::{AudioFormat, Session};
use serde_json::{json, Map, Value};

use super::rejection::{required_str, Rejection};
use super::vad::VadConfig;
use super::voice::Codec;

const DEFAULT_INSTRUCTIONS: &str =
    "You are a helpful voice assistant. Answer briefly and stay friendly.";

/// Top-level session fields of the GA interface; anything else is an unknown parameter.
const SESSION_FIELDS: &[&str] = &[
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "truncation",
    "tracing",
    "prompt",
    "include",
    "reasoning",
    "parallel_tool_calls",
];
const AUDIO_INPUT_FIELDS: &[&str] = &[
    "format",
    "transcription",
    "noise_reduction",
    "turn_detection",
];
const AUDIO_OUTPUT_FIELDS: &[&str] = &["format", "voice", "speed"];

/// Turn detection as the emulator applies it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct TurnDetection {
    pub vad: VadConfig,
    pub create_response: bool,
    pub interrupt_response: bool,
}

impl TurnDetection {
    /// Reads `audio.input.turn_detection`; `null` (or anything but an object) means no VAD.
    fn of(detection: &Value) -> Option<Self> {
        let detection = detection.as_object()?;
        let defaults = VadConfig::default();
        let flag = |name: &str| detection.get(name).and_then(Value::as_bool).unwrap_or(true);
        let ms = |name: &str, default| {
            detection
                .get(name)
                .and_then(Value::as_u64)
                .unwrap_or(default)
        };
        Some(TurnDetection {
            vad: VadConfig {
                threshold: detection
                    .get("threshold")
                    .and_then(Value::as_f64)
                    .unwrap_or(defaults.threshold),
                prefix_padding_ms: ms("prefix_padding_ms", defaults.prefix_padding_ms),
                silence_duration_ms: ms("silence_duration_ms", defaults.silence_duration_ms),
            },
            create_response: flag("create_response"),
            interrupt_response: flag("interrupt_response"),
        })
    }
}

/// The parts of the effective session that change behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Behaviour {
    pub input: Codec,
    pub output: Codec,
    pub turn_detection: Option<TurnDetection>,
}

impl Behaviour {
    /// Reads an effective session (validated already, so fallbacks are only a safety net).
    fn of(session: &Value) -> Self {
        let session: Session = serde_json::from_value(session.clone()).unwrap_or_default();
        let audio = session.audio.unwrap_or_default();
        let input = audio.input.unwrap_or_default();
        let output = audio.output.unwrap_or_default();
        let codec = |format: Option<AudioFormat>| {
            format
                .and_then(|format| codec(format).ok())
                .unwrap_or(Codec::Pcm24k)
        };
        Behaviour {
            input: codec(input.format),
            output: codec(output.format),
            turn_detection: input.turn_detection.as_ref().and_then(TurnDetection::of),
        }
    }
}

/// The codec of a format, if the emulator speaks it.
fn codec(format: AudioFormat) -> Result<Codec, &'static str> {
    match format {
        AudioFormat::Pcmu => Ok(Codec::Pcmu),
        AudioFormat::Pcm { rate: 24_000 } => Ok(Codec::Pcm24k),
        AudioFormat::Pcm { .. } => Err("Invalid value for 'rate'. Supported values are: 24000."),
        AudioFormat::Pcma => {
            Err("The emulator does not support 'audio/pcma'; use 'audio/pcmu' or 'audio/pcm'.")
        }
    }
}

/// Checks one `audio.*.format` of a `session.update`.
fn validate_format(format: &Value, param: &str) -> Result<(), Rejection> {
    if !format.is_object() {
        return Err(Rejection::invalid_type(param, "an object", format));
    }
    let kind = required_str(format, "type", &format!("{param}.type"))?;
    let parsed: AudioFormat = serde_json::from_value(format.clone()).map_err(|_| {
        Rejection::invalid_value(
            &format!("{param}.type"),
            format!(
                "Invalid value: '{kind}'. Supported values are: 'audio/pcm', 'audio/pcmu', and \
                 'audio/pcma'."
            ),
        )
    })?;
    codec(parsed)
        .map(drop)
        .map_err(|message| Rejection::invalid_value(param, message))
}

/// Checks a `session.update` payload the way the GA server does, before anything changes.
pub(super) fn validate_patch(session: Option<&Value>) -> Result<(), Rejection> {
    let session = session.ok_or_else(|| Rejection::missing("session"))?;
    let Value::Object(fields) = session else {
        return Err(Rejection::invalid_type("session", "an object", session));
    };
    if let Some(name) = fields
        .keys()
        .find(|name| !SESSION_FIELDS.contains(&name.as_str()))
    {
        return Err(Rejection::unknown_parameter(&format!("session.{name}")));
    }
    let kind = required_str(session, "type", "session.type")?;
    if kind != "realtime" {
        return Err(Rejection::invalid_value(
            "session.type",
            format!("The emulator only supports 'realtime' sessions, not '{kind}'."),
        ));
    }
    if let Some(modalities) = fields.get("output_modalities") {
        if modalities != &json!(["audio"]) {
            return Err(Rejection::invalid_value(
                "session.output_modalities",
                "The emulator only speaks: 'session.output_modalities' must be [\"audio\"].",
            ));
        }
    }
    let Some(audio) = fields.get("audio") else {
        return Ok(());
    };
    let Value::Object(audio) = audio else {
        return Err(Rejection::invalid_type("session.audio", "an object", audio));
    };
    if let Some(name) = audio
        .keys()
        .find(|name| !["input", "output"].contains(&name.as_str()))
    {
        return Err(Rejection::unknown_parameter(&format!(
            "session.audio.{name}"
        )));
    }
    for (direction, allowed) in [
        ("input", AUDIO_INPUT_FIELDS),
        ("output", AUDIO_OUTPUT_FIELDS),
    ] {
        let Some(config) = audio.get(direction) else {
            continue;
        };
        let path = format!("session.audio.{direction}");
        let Value::Object(config) = config else {
            return Err(Rejection::invalid_type(&path, "an object", config));
        };
        if let Some(name) = config.keys().find(|name| !allowed.contains(&name.as_str())) {
            return Err(Rejection::unknown_parameter(&format!("{path}.{name}")));
        }
        if let Some(format) = config.get("format") {
            validate_format(format, &format!("{path}.format"))?;
        }
    }
    match audio
        .get("input")
        .and_then(|input| input.get("turn_detection"))
    {
        None | Some(Value::Null) => Ok(()),
        Some(detection) => validate_turn_detection(detection),
    }
}

fn validate_turn_detection(detection: &Value) -> Result<(), Rejection> {
    const PATH: &str = "session.audio.input.turn_detection";
    if !detection.is_object() {
        return Err(Rejection::invalid_type(PATH, "an object", detection));
    }
    let kind = required_str(detection, "type", &format!("{PATH}.type"))?;
    if kind != "server_vad" && kind != "semantic_vad" {
        return Err(Rejection::invalid_value(
            &format!("{PATH}.type"),
            format!(
                "Invalid value: '{kind}'. Supported values are: 'server_vad' and 'semantic_vad'."
            ),
        ));
    }
    let present = |name: &str| detection.get(name).filter(|value| !value.is_null());
    if let Some(threshold) = present("threshold") {
        let param = format!("{PATH}.threshold");
        match threshold.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => {}
            Some(_) => {
                return Err(Rejection::invalid_value(
                    &param,
                    "Invalid 'threshold': expected a number between 0 and 1.",
                ))
            }
            None => return Err(Rejection::invalid_type(&param, "a number", threshold)),
        }
    }
    for name in [
        "prefix_padding_ms",
        "silence_duration_ms",
        "idle_timeout_ms",
    ] {
        if let Some(value) = present(name).filter(|value| value.as_u64().is_none()) {
            return Err(Rejection::invalid_type(
                &format!("{PATH}.{name}"),
                "an integer",
                value,
            ));
        }
    }
    for name in ["create_response", "interrupt_response"] {
        if let Some(value) = present(name).filter(|value| !value.is_boolean()) {
            return Err(Rejection::invalid_type(
                &format!("{PATH}.{name}"),
                "a boolean",
                value,
            ));
        }
    }
    Ok(())
}

/// Applies `patch` to `target` the way `session.update` treats present fields: objects merge
/// key by key, except that an object of another `type` (a new audio format, another kind of
/// turn detection) replaces the old one; anything else, `null` included, replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch))
            if patch
                .get("type")
                .is_none_or(|kind| target.get("type") == Some(kind)) =>
        {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Fills the turn-detection fields the server reports but the client may omit.
fn fill_turn_detection_defaults(detection: &mut Map<String, Value>) {
    let defaults = VadConfig::default();
    let server_vad = detection.get("type").and_then(Value::as_str) == Some("server_vad");
    let mut fill = |name: &str, value: Value| {
        detection.entry(name).or_insert(value);
    };
    if server_vad {
        fill("threshold", json!(defaults.threshold));
        fill("prefix_padding_ms", json!(defaults.prefix_padding_ms));
        fill("silence_duration_ms", json!(defaults.silence_duration_ms));
        fill("idle_timeout_ms", Value::Null);
    } else {
        fill("eagerness", json!("auto"));
    }
    fill("create_response", json!(true));
    fill("interrupt_response", json!(true));
}

/// The effective session of one connection, as `session.created`/`session.updated` show it.
#[derive(Clone, Debug)]
pub(super) struct EffectiveSession {
    json: Value,
    behaviour: Behaviour,
}

impl EffectiveSession {
    /// The GA server's defaults (with the documented 500 ms `silence_duration_ms`, which is
    /// what the emulator's VAD then uses).
    pub fn new(id: String, model: &str, expires_at: u64) -> Self {
        let json = default_session(id, model, expires_at);
        EffectiveSession {
            behaviour: Behaviour::of(&json),
            json,
        }
    }

    pub fn json(&self) -> &Value {
        &self.json
    }

    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    /// `audio.output.{format, voice}`, as response objects repeat them.
    pub fn output_audio(&self) -> Value {
        let output = &self.json["audio"]["output"];
        json!({"output": {"format": output["format"], "voice": output["voice"]}})
    }

    pub fn max_output_tokens(&self) -> Value {
        self.json["max_output_tokens"].clone()
    }

    /// Applies a `session.update` payload that passed [`validate_patch`]. The voice is
    /// locked once the assistant has spoken, as on the real server.
    pub fn update(&mut self, patch: &Value, assistant_spoke: bool) -> Result<(), Rejection> {
        let voice = &patch["audio"]["output"]["voice"];
        if !voice.is_null() && voice != &self.json["audio"]["output"]["voice"] && assistant_spoke {
            return Err(Rejection::new(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                Some("session.audio.output.voice"),
            ));
        }
        let mut patch = patch.clone();
        if let Some(fields) = patch.as_object_mut() {
            // The model is chosen by the URL; an unchanged copy is tolerated, a change ignored.
            fields.remove("model");
        }
        merge(&mut self.json, &patch);
        if let Some(detection) = self.json["audio"]["input"]["turn_detection"].as_object_mut() {
            fill_turn_detection_defaults(detection);
        }
        self.behaviour = Behaviour::of(&self.json);
        Ok(())
    }
}

fn default_session(id: String, model: &str, expires_at: u64) -> Value {
    json!({
        "type": "realtime",
        "object": "realtime.session",
        "id": id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": null,
        "prompt": null,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": null,
                "noise_reduction": null,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "idle_timeout_ms": null,
                    "create_response": true,
                    "interrupt_response": true,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "marin",
                "speed": 1,
            },
        },
        "include": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> EffectiveSession {
        EffectiveSession::new("sess_1".into(), "gpt-realtime", 1_756_324_625)
    }

    fn rejected(patch: Value) -> (String, String) {
        let rejection = validate_patch(Some(&patch)).expect_err("should be refused");
        (rejection.code.to_owned(), rejection.message)
    }

    #[test]
    fn defaults_are_pcm24k_with_server_vad() {
        let session = session();
        let behaviour = session.behaviour();
        assert_eq!(
            (behaviour.input, behaviour.output),
            (Codec::Pcm24k, Codec::Pcm24k)
        );
        let detection = behaviour.turn_detection.expect("server VAD by default");
        assert_eq!(detection.vad, VadConfig::default());
        assert!(detection.create_response && detection.interrupt_response);
        assert_eq!(session.json()["expires_at"], 1_756_324_625);
        assert_eq!(
            session.output_audio(),
            json!({"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}})
        );
    }

    #[test]
    fn ga_shape_errors_are_worded_like_the_server() {
        assert_eq!(
            rejected(json!({"instructions": "hi"})),
            (
                "missing_required_parameter".into(),
                "Missing required parameter: 'session.type'.".into()
            )
        );
        assert_eq!(
            rejected(json!({"type": "realtime", "audio": {"output": {"format": "g711_ulaw"}}})),
            (
                "invalid_type".into(),
                "Invalid type for 'session.audio.output.format': expected an object, but got a \
                 string instead."
                    .into()
            )
        );
        assert_eq!(
            rejected(json!({"type": "realtime", "input_audio_transcription": {}})).1,
            "Unknown parameter: 'session.input_audio_transcription'."
        );
        assert_eq!(
            rejected(json!({"type": "realtime", "audio": {"input": {"vad": true}}})).1,
            "Unknown parameter: 'session.audio.input.vad'."
        );
    }

    #[test]
    fn unsupported_settings_are_refused() {
        for patch in [
            json!({"type": "transcription"}),
            json!({"type": "realtime", "output_modalities": ["text"]}),
            json!({"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcma"}}}}),
            json!({"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}),
            json!({"type": "realtime", "audio": {"input": {"format": {"type": "audio/opus"}}}}),
            json!({"type": "realtime", "audio": {"input": {"turn_detection": {"type": "push_to_talk"}}}}),
            json!({"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}}),
        ] {
            assert_eq!(rejected(patch.clone()).0, "invalid_value", "{patch}");
        }
        let wrong_type = json!({"type": "realtime", "audio": {"input": {"turn_detection": {
            "type": "server_vad", "silence_duration_ms": "long"}}}});
        assert_eq!(rejected(wrong_type).0, "invalid_type");
        assert!(validate_patch(None).is_err());
        assert!(validate_patch(Some(&json!("realtime"))).is_err());
    }

    #[test]
    fn update_merges_replaces_by_type_and_fills_defaults() {
        let mut session = session();
        let patch = json!({
            "type": "realtime",
            "model": "another-model",
            "instructions": "Be brief.",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
            },
        });
        validate_patch(Some(&patch)).unwrap();
        session.update(&patch, false).unwrap();
        let json = session.json();
        assert_eq!(json["model"], "gpt-realtime", "the URL's model stays");
        assert_eq!(json["instructions"], "Be brief.");
        assert_eq!(json["tool_choice"], "auto", "untouched fields stay");
        assert_eq!(
            json["audio"]["input"]["format"],
            json!({"type": "audio/pcmu"})
        );
        assert_eq!(json["audio"]["output"]["speed"], 1);
        let detection = &json["audio"]["input"]["turn_detection"];
        assert_eq!(detection["silence_duration_ms"], 300);
        assert_eq!(detection["prefix_padding_ms"], 300);
        assert_eq!(session.behaviour().input, Codec::Pcmu);

        let semantic = json!({"type": "realtime", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}});
        session.update(&semantic, false).unwrap();
        let detection = &session.json()["audio"]["input"]["turn_detection"];
        assert_eq!(detection["eagerness"], "auto");
        assert!(
            detection.get("silence_duration_ms").is_none(),
            "{detection}"
        );

        let off = json!({"type": "realtime", "audio": {"input": {"turn_detection": null}}});
        session.update(&off, false).unwrap();
        assert_eq!(session.behaviour().turn_detection, None);
    }

    #[test]
    fn the_voice_is_locked_once_the_assistant_spoke() {
        let mut session = session();
        let voice = |name: &str| json!({"type": "realtime", "audio": {"output": {"voice": name}}});
        let refused = session.update(&voice("ash"), true).unwrap_err();
        assert_eq!(refused.code, "cannot_update_voice");
        session
            .update(&voice("marin"), true)
            .expect("the same voice is fine");
        session
            .update(&voice("ash"), false)
            .expect("before any audio");
        assert_eq!(session.json()["audio"]["output"]["voice"], "ash");
    }
}
