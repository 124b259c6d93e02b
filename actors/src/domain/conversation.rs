//! The model-neutral conversation: the messages a chat model is given and the
//! reply it makes, shared by the engine's Chat child, the offline `local` model
//! and the OpenAI emulator, and snapshotted to sled with the conversation.
//!
//! The conversions to and from the Chat Completions wire types live here
//! because `protocol` must not know `domain`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::agents::FunctionTool;
pub use super::transcript::Role;
use crate::protocol::openai::chat::{
    AssistantTurn, ChatMessage, ChatRole, ChatTool, FunctionCall, FunctionDefinition, ToolCall,
    ToolType,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    /// Empty for an assistant turn that only calls tools; a tool result's JSON
    /// text for `Role::Tool`.
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallReq>,
    /// On a tool result: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self::text(Role::System, content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::text(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::text(Role::Assistant, content)
    }

    /// The result of the tool call `call_id`, as the JSON the tool returned.
    pub fn tool_result(call_id: impl Into<String>, output: &Value) -> Self {
        Self {
            role: Role::Tool,
            content: output.to_string(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
        }
    }

    fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallReq {
    pub id: String,
    pub name: String,
    /// JSON text as the model wrote it. Kept unparsed so that invalid JSON can
    /// be reported back to the model as a tool error instead of being lost.
    pub arguments: String,
}

impl ToolCallReq {
    /// The arguments as JSON; empty text reads as no arguments (`null`).
    pub fn parse_arguments(&self) -> Result<Value, serde_json::Error> {
        if self.arguments.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&self.arguments)
    }
}

/// What the model answers a turn with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelReply {
    Text(String),
    /// Any text the model wrote alongside the calls has already been streamed
    /// to the customer; the turn continues once the calls have results.
    ToolCalls(Vec<ToolCallReq>),
}

/// The assistant message that records a reply in the history.
impl From<ModelReply> for Message {
    fn from(reply: ModelReply) -> Self {
        match reply {
            ModelReply::Text(text) => Message::assistant(text),
            ModelReply::ToolCalls(calls) => Message {
                role: Role::Assistant,
                content: String::new(),
                tool_calls: calls,
                tool_call_id: None,
            },
        }
    }
}

impl From<AssistantTurn> for ModelReply {
    fn from(turn: AssistantTurn) -> Self {
        if turn.tool_calls.is_empty() {
            ModelReply::Text(turn.content.unwrap_or_default())
        } else {
            ModelReply::ToolCalls(turn.tool_calls.into_iter().map(Into::into).collect())
        }
    }
}

impl From<ToolCall> for ToolCallReq {
    fn from(call: ToolCall) -> Self {
        Self {
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
        }
    }
}

impl From<&ToolCallReq> for ToolCall {
    fn from(call: &ToolCallReq) -> Self {
        Self {
            id: call.id.clone(),
            kind: ToolType::Function,
            function: FunctionCall {
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            },
        }
    }
}

impl From<&Message> for ChatMessage {
    fn from(message: &Message) -> Self {
        let role = match message.role {
            Role::System => ChatRole::System,
            Role::User => ChatRole::User,
            Role::Assistant => ChatRole::Assistant,
            Role::Tool => ChatRole::Tool,
        };
        let calls_only = !message.tool_calls.is_empty() && message.content.is_empty();
        let mut chat = ChatMessage::text(role, message.content.as_str());
        if calls_only {
            chat.content = None;
        }
        if !message.tool_calls.is_empty() {
            chat.tool_calls = Some(message.tool_calls.iter().map(Into::into).collect());
        }
        chat.tool_call_id.clone_from(&message.tool_call_id);
        chat
    }
}

/// Reading a request (the emulator): `developer` instructions count as system.
impl From<ChatMessage> for Message {
    fn from(chat: ChatMessage) -> Self {
        let role = match chat.role {
            ChatRole::System | ChatRole::Developer => Role::System,
            ChatRole::User => Role::User,
            ChatRole::Assistant => Role::Assistant,
            ChatRole::Tool => Role::Tool,
        };
        Self {
            role,
            content: chat.content.unwrap_or_default(),
            tool_calls: chat
                .tool_calls
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            tool_call_id: chat.tool_call_id,
        }
    }
}

impl From<&FunctionTool> for ChatTool {
    fn from(tool: &FunctionTool) -> Self {
        Self {
            kind: ToolType::Function,
            function: FunctionDefinition {
                name: tool.name.clone(),
                description: Some(tool.description.clone()),
                parameters: Some(tool.parameters.clone()),
                // Not strict: optional parameters (e.g. `order_id`) are
                // legitimately absent, which strict mode forbids.
                strict: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::openai::chat::{ChatRequest, FinishReason};
    use serde_json::json;

    fn history() -> Vec<Message> {
        vec![
            Message::system("Be brief."),
            Message::user("where is my order 1001?"),
            ModelReply::ToolCalls(vec![ToolCallReq {
                id: "call_2".into(),
                name: "lookup_order".into(),
                arguments: r#"{"order_id":"1001"}"#.into(),
            }])
            .into(),
            Message::tool_result("call_2", &json!({"status": "shipped"})),
            ModelReply::Text("It has shipped.".into()).into(),
        ]
    }

    #[test]
    fn messages_survive_the_wire_both_ways() {
        let history = history();
        let wire: Vec<ChatMessage> = history.iter().map(Into::into).collect();
        let text = serde_json::to_value(&wire).unwrap();
        assert_eq!(
            text[2],
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_2", "type": "function", "function": {"name": "lookup_order", "arguments": "{\"order_id\":\"1001\"}"}}
            ]})
        );
        assert_eq!(
            text[3],
            json!({"role": "tool", "content": "{\"status\":\"shipped\"}", "tool_call_id": "call_2"})
        );
        let back: Vec<Message> = wire.into_iter().map(Into::into).collect();
        assert_eq!(back, history);
    }

    #[test]
    fn a_request_from_a_client_reads_as_history() {
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
        }))
        .unwrap();
        let history: Vec<Message> = request.messages.into_iter().map(Into::into).collect();
        assert_eq!(
            history,
            vec![Message::system("Be brief."), Message::user("hi")]
        );
    }

    #[test]
    fn snapshots_round_trip() {
        let history = history();
        let stored = serde_json::to_string(&history).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<Message>>(&stored).unwrap(),
            history
        );
        let reply = ModelReply::Text("ok".into());
        let stored = serde_json::to_string(&reply).unwrap();
        assert_eq!(serde_json::from_str::<ModelReply>(&stored).unwrap(), reply);
    }

    #[test]
    fn an_assistant_turn_becomes_a_reply() {
        let text = AssistantTurn {
            content: Some("Hello".into()),
            tool_calls: vec![],
            finish_reason: Some(FinishReason::Stop),
        };
        assert_eq!(ModelReply::from(text), ModelReply::Text("Hello".into()));
        let calls = AssistantTurn {
            content: Some("Let me check.".into()),
            tool_calls: vec![(&ToolCallReq {
                id: "call_1".into(),
                name: "faq".into(),
                arguments: "{}".into(),
            })
                .into()],
            finish_reason: Some(FinishReason::ToolCalls),
        };
        let ModelReply::ToolCalls(calls) = ModelReply::from(calls) else {
            panic!("expected tool calls");
        };
        assert_eq!(calls[0].name, "faq");
        assert_eq!(calls[0].parse_arguments().unwrap(), json!({}));
        assert_eq!(
            ModelReply::from(AssistantTurn::default()),
            ModelReply::Text(String::new())
        );
    }

    #[test]
    fn arguments_are_parsed_on_demand() {
        let call = |arguments: &str| ToolCallReq {
            id: "c".into(),
            name: "t".into(),
            arguments: arguments.into(),
        };
        assert_eq!(call(" ").parse_arguments().unwrap(), Value::Null);
        assert!(call("{\"a\":").parse_arguments().is_err());
    }

    #[test]
    fn function_tools_go_on_the_wire() {
        let tool = FunctionTool {
            name: "faq".into(),
            description: "Answers.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        };
        assert_eq!(
            serde_json::to_value(ChatTool::from(&tool)).unwrap(),
            json!({"type": "function", "function": {"name": "faq", "description": "Answers.",
                   "parameters": {"type": "object", "properties": {}}}})
        );
    }
}
