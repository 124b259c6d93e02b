//! What the emulated assistant says: the `--script` file and the deterministic defaults.
//!
//! A script is a JSON list of turns; turn *k* is used for the *k*-th response of a connection
//! (index 0 is the greeting the engine asks for first). Each turn is either something to say
//! or a function call to make:
//!
//! ```json
//! [
//!   {"say": "Welcome to Acme, how can I help?"},
//!   {"call": {"name": "lookup_order", "arguments": {"order_id": "1001"}}},
//!   {"say": "Your order is on its way."},
//!   {"fail": {"type": "insufficient_quota", "code": "insufficient_quota"}}
//! ]
//! ```
//!
//! A `fail` turn ends its response at once with `status: "failed"` and the given
//! `status_details.error` (protocols-more.md §12.5), as the real server does when the
//! account is out of quota or a server error interrupts the response.
//!
//! A script may instead be `{"turns": [...], "resumed": [...]}`: a connection that replayed
//! earlier messages of the conversation (a call that resumed, e.g. after a transfer that did
//! not go through) follows `resumed`, so one script can play both halves of such a call.
//!
//! Past the end of the script (or without one) [`decide`] makes up the reply.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::MockError;

/// A scripted conversation, loaded once and shared by every connection.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "ScriptFile")]
pub struct Script {
    turns: Vec<Turn>,
    /// For connections that replayed earlier messages; empty: `turns` for every connection.
    resumed: Vec<Turn>,
}

/// The two shapes of a script file.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScriptFile {
    Turns(Vec<Turn>),
    Split {
        turns: Vec<Turn>,
        #[serde(default)]
        resumed: Vec<Turn>,
    },
}

impl From<ScriptFile> for Script {
    fn from(file: ScriptFile) -> Script {
        match file {
            ScriptFile::Turns(turns) => Script {
                turns,
                resumed: Vec::new(),
            },
            ScriptFile::Split { turns, resumed } => Script { turns, resumed },
        }
    }
}

/// One response of the assistant.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Turn {
    /// Speak this text.
    Say(String),
    /// Call a function; the engine runs the tool and sends its output back.
    Call(ScriptedCall),
    /// Fail the response (`response.done` with `status: "failed"`).
    Fail(ScriptedFailure),
}

/// The `status_details.error` of a failed response.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedFailure {
    /// e.g. `insufficient_quota`, `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A function call the script makes the assistant perform.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    pub name: String,
    /// Sent as the JSON-encoded `arguments` string, as OpenAI does.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

impl Script {
    /// Reads and parses a script file.
    pub fn load(path: &Path) -> Result<Script, MockError> {
        let text = std::fs::read_to_string(path).map_err(|source| MockError::ReadScript {
            path: path.to_owned(),
            source,
        })?;
        Script::parse(&text)
    }

    /// Parses a script from its JSON text.
    pub fn parse(text: &str) -> Result<Script, MockError> {
        serde_json::from_str(text).map_err(MockError::ParseScript)
    }

    /// The turn for the `index`-th response, if the script goes that far.
    pub fn turn(&self, index: usize) -> Option<&Turn> {
        self.turns.get(index)
    }

    /// The turn for the `index`-th response of a connection that replayed earlier messages.
    pub fn resumed_turn(&self, index: usize) -> Option<&Turn> {
        if self.resumed.is_empty() {
            return self.turn(index);
        }
        self.resumed.get(index)
    }
}

/// What the emulator knows when it decides a reply: the conversation so far, as counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplyContext<'a> {
    /// Responses already started on this connection (0 for the first).
    pub response_index: usize,
    /// Length of the caller's last committed utterance, if any.
    pub heard_ms: Option<u64>,
    /// Message items the client created itself (history replayed after a reconnect).
    pub client_messages: usize,
    /// Output of a function call the assistant has not spoken about yet.
    pub tool_output: Option<&'a str>,
}

/// Longest part of a tool output the assistant reads back.
const MAX_QUOTED_CHARS: usize = 160;

/// Decides the next response: the script's turn if it has one, else a deterministic reply.
/// This is the single place a smarter "model" would plug in.
pub fn decide(script: Option<&Script>, context: &ReplyContext<'_>) -> Turn {
    let turn = script.and_then(|script| match context.client_messages {
        0 => script.turn(context.response_index),
        _ => script.resumed_turn(context.response_index),
    });
    if let Some(turn) = turn {
        return turn.clone();
    }
    Turn::Say(default_reply(context))
}

fn default_reply(context: &ReplyContext<'_>) -> String {
    if let Some(output) = context.tool_output {
        // Tools that give a ready-to-read `summary` are read out from it, as a model would.
        let summary = serde_json::from_str::<Value>(output)
            .ok()
            .and_then(|v| v.get("summary").and_then(Value::as_str).map(str::to_owned));
        let output = summary.as_deref().unwrap_or(output);
        let mut quoted: String = output.chars().take(MAX_QUOTED_CHARS).collect();
        if output.chars().count() > MAX_QUOTED_CHARS {
            quoted.push('…');
        }
        return format!("Here is what I found: {quoted}");
    }
    if context.response_index == 0 && context.client_messages == 0 {
        return "Hello! You have reached the switchboard test line. How can I help you today?"
            .to_owned();
    }
    let mut reply = format!("This is turn {}.", context.response_index);
    if let Some(ms) = context.heard_ms {
        reply.push_str(&format!(
            " I heard {}.{} seconds of audio from you.",
            ms / 1000,
            ms % 1000 / 100
        ));
    }
    if context.client_messages > 0 {
        reply.push_str(&format!(
            " I remember {} earlier messages.",
            context.client_messages
        ));
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_say_and_call_turns() {
        let script = Script::parse(
            r#"[{"say": "Hi"}, {"call": {"name": "lookup_order", "arguments": {"order_id": "1001"}}}]"#,
        )
        .unwrap();
        assert_eq!(script.turn(0), Some(&Turn::Say("Hi".into())));
        let Some(Turn::Call(call)) = script.turn(1) else {
            panic!("expected a call");
        };
        assert_eq!(call.name, "lookup_order");
        assert_eq!(
            Value::Object(call.arguments.clone()),
            json!({"order_id": "1001"})
        );
        assert_eq!(script.turn(2), None);
    }

    #[test]
    fn a_resumed_connection_follows_its_own_turns() {
        let script =
            Script::parse(r#"{"turns": [{"say": "Hi"}], "resumed": [{"say": "Welcome back"}]}"#)
                .unwrap();
        let fresh = ReplyContext::default();
        let resumed = ReplyContext {
            client_messages: 2,
            ..ReplyContext::default()
        };
        assert_eq!(decide(Some(&script), &fresh), Turn::Say("Hi".into()));
        assert_eq!(
            decide(Some(&script), &resumed),
            Turn::Say("Welcome back".into())
        );
        // A plain list serves both.
        let plain = Script::parse(r#"[{"say": "Hi"}]"#).unwrap();
        assert_eq!(decide(Some(&plain), &resumed), Turn::Say("Hi".into()));
    }

    #[test]
    fn rejects_malformed_scripts() {
        for bad in [
            r#"{"say": "not a list"}"#,
            r#"[{"shout": "Hi"}]"#,
            r#"[{"say": "Hi", "call": {"name": "x"}}]"#,
            r#"[{"call": {"name": "x", "arguments": "not an object"}}]"#,
            r#"[{"call": {"name": "x", "extra": 1}}]"#,
            "",
        ] {
            assert!(
                matches!(Script::parse(bad), Err(MockError::ParseScript(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn load_reports_the_path() {
        let err = Script::load(Path::new("/nonexistent/script.json")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/script.json"),
            "{err}"
        );
    }

    #[test]
    fn first_response_greets() {
        let Turn::Say(text) = decide(None, &ReplyContext::default()) else {
            panic!("expected speech");
        };
        assert!(text.starts_with("Hello!"), "{text}");
    }

    #[test]
    fn later_turns_mention_turn_audio_and_history() {
        let context = ReplyContext {
            response_index: 2,
            heard_ms: Some(1260),
            client_messages: 4,
            tool_output: None,
        };
        assert_eq!(
            decide(None, &context),
            Turn::Say(
                "This is turn 2. I heard 1.2 seconds of audio from you. \
                 I remember 4 earlier messages."
                    .into()
            )
        );
    }

    #[test]
    fn replayed_history_replaces_the_greeting() {
        let context = ReplyContext {
            client_messages: 3,
            ..ReplyContext::default()
        };
        assert_eq!(
            decide(None, &context),
            Turn::Say("This is turn 0. I remember 3 earlier messages.".into())
        );
    }

    #[test]
    fn tool_output_is_read_back_and_capped() {
        let context = ReplyContext {
            response_index: 3,
            tool_output: Some(r#"{"status":"shipped"}"#),
            ..ReplyContext::default()
        };
        assert_eq!(
            decide(None, &context),
            Turn::Say(r#"Here is what I found: {"status":"shipped"}"#.into())
        );
        let long = "x".repeat(500);
        let context = ReplyContext {
            tool_output: Some(&long),
            ..ReplyContext::default()
        };
        let Turn::Say(text) = decide(None, &context) else {
            panic!("expected speech");
        };
        assert!(text.ends_with('…') && text.chars().count() < 200, "{text}");
    }

    #[test]
    fn script_wins_then_defaults_take_over() {
        let script = Script::parse(r#"[{"say": "Scripted greeting"}]"#).unwrap();
        assert_eq!(
            decide(Some(&script), &ReplyContext::default()),
            Turn::Say("Scripted greeting".into())
        );
        let later = ReplyContext {
            response_index: 1,
            ..ReplyContext::default()
        };
        assert_eq!(
            decide(Some(&script), &later),
            Turn::Say("This is turn 1.".into())
        );
    }
}
