//! Conversation items: what the emulator keeps about each, the items it creates, and the
//! checks on items the client creates.

use actors::protocol::openai::realtime::{ContentKind, ContentPart, Extra, Item, ItemKind, Role};
use serde::Serialize;
use serde_json::{json, Value};

use super::rejection::Rejection;

/// What an item is, as far as replies and truncation care.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kind {
    /// A committed slice of the caller's audio.
    UserAudio {
        audio_ms: u64,
    },
    /// A text message the client created (history replayed after a reconnect, a system note).
    ClientMessage,
    /// An assistant message the emulator spoke; `audio_ms` is the audio produced for it.
    AssistantAudio {
        audio_ms: u64,
    },
    FunctionCall,
    FunctionCallOutput {
        output: String,
    },
}

pub(super) fn message_item(id: &str, role: Role, status: &str, content: Vec<ContentPart>) -> Item {
    Item {
        id: Some(id.to_owned()),
        kind: ItemKind::Message,
        role: Some(role),
        content: Some(content),
        call_id: None,
        name: None,
        arguments: None,
        output: None,
        status: Some(status.to_owned()),
        extra: realtime_item(),
    }
}

/// The `"object": "realtime.item"` every server-side item carries.
pub(super) fn realtime_item() -> Extra {
    let mut extra = Extra::new();
    extra.insert("object".to_owned(), json!("realtime.item"));
    extra
}

/// An audio content part carrying only its transcript (events never repeat audio bytes).
pub(super) fn audio_part(kind: ContentKind, transcript: Option<String>) -> ContentPart {
    let mut extra = Extra::new();
    if transcript.is_none() {
        // Written as `"transcript": null`, as the server does before transcription.
        extra.insert("transcript".to_owned(), Value::Null);
    }
    ContentPart {
        kind,
        text: None,
        audio: None,
        transcript,
        extra,
    }
}

/// How a wire enum is spelled in JSON (`input_text`, `assistant`, …).
fn wire_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Checks an item the client wants to create, as the server does, and says what it is.
pub(super) fn classify_client_item(item: &Item) -> Result<Kind, Rejection> {
    match &item.kind {
        ItemKind::Message => {
            let role = item
                .role
                .as_ref()
                .ok_or_else(|| Rejection::missing("item.role"))?;
            let allowed: &[ContentKind] = match role {
                Role::User => &[
                    ContentKind::InputText,
                    ContentKind::InputAudio,
                    ContentKind::InputImage,
                ],
                Role::System => &[ContentKind::InputText],
                Role::Assistant => &[ContentKind::OutputText, ContentKind::OutputAudio],
                Role::Other(other) => {
                    return Err(Rejection::invalid_value(
                        "item.role",
                        format!(
                            "Invalid value: '{other}'. Supported values are: 'user', 'system', \
                             and 'assistant'."
                        ),
                    ))
                }
            };
            let parts = item
                .content
                .as_ref()
                .ok_or_else(|| Rejection::missing("item.content"))?;
            for (index, part) in parts.iter().enumerate() {
                let path = format!("item.content[{index}]");
                if !allowed.contains(&part.kind) {
                    return Err(Rejection::invalid_value(
                        &format!("{path}.type"),
                        format!(
                            "Invalid value: '{}' is not a content type of {} messages.",
                            wire_name(&part.kind),
                            wire_name(role)
                        ),
                    ));
                }
                // Assistant audio cannot be created: even an `output_audio` part needs text.
                let needs_text = part.kind.is_text() || *role == Role::Assistant;
                if needs_text && part.text.is_none() {
                    return Err(Rejection::missing(&format!("{path}.text")));
                }
                if part.kind == ContentKind::InputAudio && part.audio.is_none() {
                    return Err(Rejection::missing(&format!("{path}.audio")));
                }
            }
            Ok(Kind::ClientMessage)
        }
        ItemKind::FunctionCall => {
            item.name
                .as_ref()
                .ok_or_else(|| Rejection::missing("item.name"))?;
            item.arguments
                .as_ref()
                .ok_or_else(|| Rejection::missing("item.arguments"))?;
            Ok(Kind::FunctionCall)
        }
        ItemKind::FunctionCallOutput => {
            item.call_id
                .as_ref()
                .ok_or_else(|| Rejection::missing("item.call_id"))?;
            let output = item
                .output
                .as_ref()
                .ok_or_else(|| Rejection::missing("item.output"))?;
            Ok(Kind::FunctionCallOutput {
                output: output.clone(),
            })
        }
        ItemKind::Other(other) => Err(Rejection::invalid_value(
            "item.type",
            format!(
                "Invalid value: '{other}'. Supported values are: 'message', 'function_call', and \
                 'function_call_output'."
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: Value) -> Item {
        serde_json::from_value(value).unwrap()
    }

    fn refusal(value: Value) -> String {
        classify_client_item(&item(value)).unwrap_err().message
    }

    #[test]
    fn text_history_and_tool_outputs_are_accepted() {
        let user = json!({"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "hi"}]});
        assert_eq!(
            classify_client_item(&item(user)).unwrap(),
            Kind::ClientMessage
        );
        let assistant = json!({"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "hello"}]});
        assert_eq!(
            classify_client_item(&item(assistant)).unwrap(),
            Kind::ClientMessage
        );
        let output = json!({"type": "function_call_output", "call_id": "call_1", "output": "{}"});
        assert_eq!(
            classify_client_item(&item(output)).unwrap(),
            Kind::FunctionCallOutput {
                output: "{}".into()
            }
        );
    }

    #[test]
    fn assistant_audio_cannot_be_created() {
        assert_eq!(
            refusal(json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_audio", "transcript": "hello"}]})),
            "Missing required parameter: 'item.content[0].text'."
        );
    }

    #[test]
    fn malformed_items_are_refused() {
        assert_eq!(
            refusal(json!({"type": "function_call_output", "call_id": "call_1"})),
            "Missing required parameter: 'item.output'."
        );
        assert_eq!(
            refusal(json!({"type": "message", "role": "system",
                "content": [{"type": "output_text", "text": "x"}]})),
            "Invalid value: 'output_text' is not a content type of system messages."
        );
        assert!(
            refusal(json!({"type": "message", "role": "robot", "content": []}))
                .starts_with("Invalid value: 'robot'.")
        );
        assert!(refusal(json!({"type": "item_reference", "id": "item_1"}))
            .starts_with("Invalid value: 'item_reference'."));
    }
}
