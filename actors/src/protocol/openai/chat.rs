//! OpenAI Chat Completions (openai-protocols.md §5): the request, the
//! non-streaming completion, the streamed chunks and the error body, plus the
//! two stateful pieces a streaming client needs — an incremental
//! [`SseDecoder`] for the `text/event-stream` body and a [`StreamAssembler`]
//! that folds chunks into the assistant's turn.
//!
//! Every type serializes and deserializes: the engine's Chat child sends
//! [`ChatRequest`]s and reads chunks, the OpenAI emulator does the reverse.
//! Responses keep fields this module does not model (`system_fingerprint`,
//! `logprobs`, `refusal`, …) in an `extra` map, so what is read can be written
//! back unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// `object` of a [`ChatCompletionChunk`].
pub const CHUNK_OBJECT: &str = "chat.completion.chunk";
/// `object` of a [`ChatCompletion`].
pub const COMPLETION_OBJECT: &str = "chat.completion";

/// Largest SSE line, and largest event, the decoder buffers. A chunk is a few
/// hundred bytes; anything near this is a broken or hostile server, not a reply.
pub const MAX_SSE_EVENT_BYTES: usize = 1 << 20;

/// The SDK honours a server's retry delay only up to this (§5.4).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum ChatError {
    #[error("server-sent events: a line is longer than {MAX_SSE_EVENT_BYTES} bytes")]
    LineTooLong,
    #[error("server-sent events: an event is larger than {MAX_SSE_EVENT_BYTES} bytes")]
    EventTooLarge,
    #[error("malformed chat completion chunk: {0}")]
    Malformed(#[from] serde_json::Error),
    /// An `{"error": …}` frame in the stream; the stream is over.
    #[error("the model's stream reported an error: {0}")]
    Api(ApiError),
}

/// `POST /v1/chat/completions`. Only what the bridge sends is modelled;
/// other request fields (temperature, …) are ignored when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ChatTool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Asks for a last chunk with `usage` and no choices before `[DONE]`.
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    /// The newer name of `system` for instructions.
    Developer,
    User,
    Assistant,
    Tool,
}

/// One message of a request, or the message of a completion's choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    /// `null` for an assistant message that only calls tools. Content given as
    /// an array of parts is read as the concatenation of its text parts.
    #[serde(default, deserialize_with = "content_text")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On a `tool` message: the call this is the result of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
    /// A message with just a role and text.
    pub fn text(role: ChatRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            extra: Map::new(),
        }
    }
}

/// Reads `content` given as a string, `null`, or `[{"type":"text","text":…}]`.
fn content_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content {
        Text(String),
        Parts(Vec<Part>),
    }
    #[derive(Deserialize)]
    struct Part {
        #[serde(default)]
        text: Option<String>,
    }
    Ok(match Option::<Content>::deserialize(d)? {
        None => None,
        Some(Content::Text(text)) => Some(text),
        Some(Content::Parts(parts)) => Some(
            parts
                .into_iter()
                .filter_map(|part| part.text)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    })
}

/// The only tool type the bridge uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolType {
    #[default]
    Function,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: ToolType,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text as the model wrote it: it may be invalid, so it is not parsed here.
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatTool {
    #[serde(rename = "type", default)]
    pub kind: ToolType,
    pub function: FunctionDefinition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `"none" | "auto" | "required"` or one named function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Function(NamedToolChoice),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    None,
    Auto,
    Required,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type", default)]
    pub kind: ToolType,
    pub function: FunctionName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionName {
    pub name: String,
}

/// Why the model stopped. Values this module does not know read as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// Deprecated by OpenAI, still sent by some compatible servers.
    FunctionCall,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A non-streaming response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletion {
    /// The first choice as an assistant turn; `None` without choices.
    pub fn into_turn(self) -> Option<AssistantTurn> {
        let choice = self.choices.into_iter().min_by_key(|c| c.index)?;
        Some(AssistantTurn {
            content: choice.message.content.filter(|c| !c.is_empty()),
            tool_calls: choice.message.tool_calls.unwrap_or_default(),
            finish_reason: choice.finish_reason,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: ChatMessage,
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `data:` frame of a streamed response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    /// Empty on the final usage-only chunk.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ChatRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A fragment of a tool call: `id`, `type` and the name come once, the
/// arguments in pieces, all keyed by `index`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// The body of an HTTP error, and of an error frame in a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: ApiError,
}

/// OpenAI's error object. OpenAI sends strings (or null) in `type`, `param` and `code`;
/// compatible servers send other things there — `"code": 429`, `"param": ["messages"]` —
/// so those fields are read leniently as text (a number becomes its digits) and one odd
/// field never makes the whole error unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Error)]
#[error("{message}")]
pub struct ApiError {
    #[serde(default, deserialize_with = "super::lenient_string")]
    pub message: String,
    #[serde(rename = "type", default, deserialize_with = "super::lenient_text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_text")]
    pub param: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_text")]
    pub code: Option<String>,
}

impl ApiError {
    /// Out of credit: a 429 that no retry will fix (§5.4). Told by `code` or `type`, so a
    /// server whose `code` is the number 429 is still understood by its `type`.
    pub fn is_quota_exhausted(&self) -> bool {
        const QUOTA: &str = "insufficient_quota";
        self.code.as_deref() == Some(QUOTA) || self.kind.as_deref() == Some(QUOTA)
    }

    /// The API key itself was refused (`invalid_api_key`, or a compatible server's numeric
    /// `401`): no retry helps until the key is fixed.
    pub fn is_key_refused(&self) -> bool {
        matches!(self.code.as_deref(), Some("invalid_api_key" | "401"))
            || self.kind.as_deref() == Some("authentication_error")
    }
}

/// Reads an HTTP error body leniently: OpenAI's `{"error":{…}}`, a bare
/// `{"error":"text"}`, or the flat `{"object":"error","message":…,"code":…}` some
/// compatible servers answer with. `None` when it is none of these.
pub fn parse_error_body(body: &[u8]) -> Option<ApiError> {
    let Value::Object(mut map) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    match map.remove("error") {
        Some(Value::String(message)) => Some(ApiError {
            message,
            ..ApiError::default()
        }),
        Some(error @ Value::Object(_)) => serde_json::from_value(error).ok(),
        Some(_) => None,
        None if map.contains_key("message") => serde_json::from_value(Value::Object(map)).ok(),
        None => None,
    }
}

/// Parses one SSE `data` payload: a chunk, or the error the stream ended with.
pub fn parse_chunk(data: &str) -> Result<ChatCompletionChunk, ChatError> {
    let mut chunk: ChatCompletionChunk = serde_json::from_str(data)?;
    match chunk.extra.remove("error") {
        None => Ok(chunk),
        Some(error) => {
            let error = serde_json::from_value(error.clone()).unwrap_or_else(|_| ApiError {
                message: error.to_string(),
                ..ApiError::default()
            });
            Err(ChatError::Api(error))
        }
    }
}

/// The delay a 429 or 5xx asks for: `retry-after-ms` (milliseconds) first,
/// then `retry-after` in seconds (an HTTP date is not supported). `None` when
/// absent, unparsable, or outside (0, 60 s], as the SDK does: then the caller's
/// own backoff applies.
pub fn retry_after(header: impl Fn(&str) -> Option<String>) -> Option<Duration> {
    let number = |name: &str| header(name).and_then(|v| v.trim().parse::<f64>().ok());
    let secs = match number("retry-after-ms") {
        Some(ms) => ms / 1000.0,
        None => number("retry-after")?,
    };
    if secs > 0.0 && secs <= MAX_RETRY_AFTER.as_secs_f64() {
        Duration::try_from_secs_f64(secs).ok()
    } else {
        None
    }
}

/// Whether a failed request is worth retrying, per the SDK's policy (§5.4):
/// never when out of quota or when the key is refused; as `x-should-retry` says when present; otherwise
/// on 408, 409, 429 and every 5xx.
pub fn should_retry(
    status: u16,
    header: impl Fn(&str) -> Option<String>,
    error: Option<&ApiError>,
) -> bool {
    if error.is_some_and(|e| e.is_quota_exhausted() || e.is_key_refused()) {
        return false;
    }
    match header("x-should-retry").as_deref().map(str::trim) {
        Some("true") => true,
        Some("false") => false,
        _ => matches!(status, 408 | 409 | 429) || status >= 500,
    }
}

/// What the decoder hands over: one event's data, or the end marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    Data(String),
    /// `data: [DONE]`: the response is complete.
    Done,
}

/// Incremental `text/event-stream` parser: bytes arrive split anywhere (inside
/// a line, between `\r` and `\n`, inside a UTF-8 character) and events come out
/// whole. Only `data` fields matter for Chat Completions; `event`, `id`,
/// `retry` and `:` comments are skipped, and events without data are dropped.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// The current, unterminated line.
    line: Vec<u8>,
    /// Data lines of the event being built, each followed by `\n`.
    data: String,
    /// The last byte fed was `\r`: a `\n` right after it ends the same line.
    after_cr: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the body; returns the events they complete. An
    /// error means the stream is broken: the decoder is reset and the stream
    /// should be abandoned.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, ChatError> {
        let mut events = Vec::new();
        let mut rest = bytes;
        if self.after_cr {
            if let Some((b'\n', tail)) = rest.split_first() {
                rest = tail;
            }
        }
        self.after_cr = false;
        while let Some(at) = rest.iter().position(|b| matches!(b, b'\n' | b'\r')) {
            let (head, tail) = rest.split_at(at);
            rest = match tail {
                [b'\r', b'\n', after @ ..] => after,
                [b'\r'] => {
                    self.after_cr = true;
                    &[]
                }
                [_, after @ ..] => after,
                [] => &[],
            };
            self.extend_line(head)?;
            let line = std::mem::take(&mut self.line);
            let event = self.end_line(&line);
            self.line = line;
            self.line.clear();
            if let Some(event) = event? {
                events.push(event);
            }
        }
        self.extend_line(rest)?;
        Ok(events)
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), ChatError> {
        if self.line.len().saturating_add(bytes.len()) > MAX_SSE_EVENT_BYTES {
            self.reset();
            return Err(ChatError::LineTooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Interprets one complete line (SSE "process the field" rules).
    fn end_line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, ChatError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(0) => return Ok(None),
            Some(colon) => {
                let (field, value) = line.split_at(colon);
                let value = value.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if field == b"data" {
            if self.data.len().saturating_add(value.len()) >= MAX_SSE_EVENT_BYTES {
                self.reset();
                return Err(ChatError::EventTooLarge);
            }
            self.data.push_str(&String::from_utf8_lossy(value));
            self.data.push('\n');
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        if data.is_empty() {
            None
        } else if data.starts_with("[DONE]") {
            Some(SseEvent::Done)
        } else {
            Some(SseEvent::Data(data))
        }
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The assistant's turn, whole: what a stream or a completion amounts to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssistantTurn {
    /// `None` when the model only called tools.
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// `None` when the stream ended early.
    pub finish_reason: Option<FinishReason>,
}

/// Folds a stream's chunks into an [`AssistantTurn`]: text is concatenated and
/// tool calls are assembled by `index` (openai-protocols.md §5.3). Only choice
/// 0 is followed; the bridge never asks for more.
#[derive(Debug, Default)]
pub struct StreamAssembler {
    content: String,
    tool_calls: BTreeMap<u32, ToolCall>,
    finish_reason: Option<FinishReason>,
}

impl StreamAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one chunk; returns its new text, to stream on to the customer.
    pub fn push<'c>(&mut self, chunk: &'c ChatCompletionChunk) -> Option<&'c str> {
        let choice = chunk.choices.iter().find(|c| c.index == 0)?;
        if choice.finish_reason.is_some() {
            self.finish_reason = choice.finish_reason;
        }
        for fragment in choice.delta.tool_calls.iter().flatten() {
            let call = self.tool_calls.entry(fragment.index).or_default();
            if let Some(id) = fragment.id.as_deref().filter(|id| !id.is_empty()) {
                if call.id.is_empty() {
                    call.id = id.to_owned();
                }
            }
            if let Some(function) = &fragment.function {
                if let Some(name) = function.name.as_deref().filter(|n| !n.is_empty()) {
                    if call.function.name.is_empty() {
                        call.function.name = name.to_owned();
                    }
                }
                if let Some(arguments) = &function.arguments {
                    call.function.arguments.push_str(arguments);
                }
            }
        }
        let text = choice.delta.content.as_deref().filter(|t| !t.is_empty())?;
        self.content.push_str(text);
        Some(text)
    }

    pub fn finish(self) -> AssistantTurn {
        AssistantTurn {
            content: Some(self.content).filter(|c| !c.is_empty()),
            tool_calls: self.tool_calls.into_values().collect(),
            finish_reason: self.finish_reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The captured tool-call stream of openai-protocols.md §5.2 (the elided
    /// argument fragments filled in so they add up to the recorded arguments).
    const TOOL_STREAM: &str = concat!(
        r#"data: {"id":"chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr","object":"chat.completion.chunk","created":1727346176,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_c91SqDXlYFuETYv8mUHzz6pp","type":"function","function":{"name":"GetWeatherArgs","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr","object":"chat.completion.chunk","created":1727346176,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr","object":"chat.completion.chunk","created":1727346176,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"city"}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr","object":"chat.completion.chunk","created":1727346176,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\":\"Edinburgh\",\"country\":\"UK\",\"units\":\"c"}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr","object":"chat.completion.chunk","created":1727346176,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"}"}}]},"logprobs":null,"finish_reason":null}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr","object":"chat.completion.chunk","created":1727346176,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
        "\n\n",
        r#"data: {"id":"chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr","object":"chat.completion.chunk","created":1727346176,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_7568d46099","choices":[],"usage":{"prompt_tokens":76,"completion_tokens":24,"total_tokens":100,"completion_tokens_details":{"reasoning_tokens":0}}}"#,
        "\n\n",
        "data: [DONE]\n\n",
    );

    /// The plain-text stream example of §5.2 (the spec prints it without `data: `).
    const TEXT_CHUNKS: [&str; 3] = [
        r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#,
    ];

    /// The request of §5.1.
    const REQUEST: &str = r#"{
      "model": "gpt-4o-mini",
      "messages": [
        {"role": "system", "content": "You are a helpful SMS assistant."},
        {"role": "user", "content": "What's the weather like in Boston today?"},
        {"role": "assistant", "content": null, "tool_calls": [
          {"id": "call_abc123", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\n\"location\": \"Boston, MA\"\n}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": "{\"temp_f\": 54}"}
      ],
      "tools": [{"type": "function", "function": {"name": "get_current_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}}}],
      "tool_choice": "auto",
      "stream": true,
      "stream_options": {"include_usage": true}
    }"#;

    /// The non-streaming example of the API reference (`POST /chat/completions`).
    const COMPLETION: &str = r#"{
      "id": "chatcmpl-123", "object": "chat.completion", "created": 1677652288,
      "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "\n\nHello there, how may I assist you today?"},
                   "logprobs": null, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    }"#;

    /// OpenAI's schema makes optional fields `null` or absent interchangeably;
    /// the types write absent, so round trips compare without `null` members.
    fn without_nulls(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, without_nulls(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
            other => other,
        }
    }

    fn assert_round_trip<T: Serialize + serde::de::DeserializeOwned>(text: &str) -> T {
        let original: Value = serde_json::from_str(text).unwrap();
        let parsed: T = serde_json::from_str(text).unwrap();
        let written = serde_json::to_value(&parsed).unwrap();
        assert_eq!(without_nulls(written), without_nulls(original), "{text}");
        parsed
    }

    fn decode_all(bytes: &[u8]) -> Vec<SseEvent> {
        SseDecoder::new().feed(bytes).unwrap()
    }

    fn data_of(events: &[SseEvent]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match e {
                SseEvent::Data(d) => Some(d.as_str()),
                SseEvent::Done => None,
            })
            .collect()
    }

    #[test]
    fn the_captured_stream_round_trips_and_assembles() {
        let events = decode_all(TOOL_STREAM.as_bytes());
        assert_eq!(events.len(), 8);
        assert_eq!(events.last(), Some(&SseEvent::Done));
        let mut assembler = StreamAssembler::new();
        for data in data_of(&events) {
            let chunk: ChatCompletionChunk = assert_round_trip(data);
            assert_eq!(chunk, parse_chunk(data).unwrap());
            assert_eq!(assembler.push(&chunk), None);
        }
        let turn = assembler.finish();
        assert_eq!(turn.content, None);
        assert_eq!(turn.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(
            turn.tool_calls,
            vec![ToolCall {
                id: "call_c91SqDXlYFuETYv8mUHzz6pp".into(),
                kind: ToolType::Function,
                function: FunctionCall {
                    name: "GetWeatherArgs".into(),
                    arguments: r#"{"city":"Edinburgh","country":"UK","units":"c"}"#.into(),
                },
            }]
        );
    }

    #[test]
    fn the_usage_chunk_is_read() {
        let events = decode_all(TOOL_STREAM.as_bytes());
        let usage = data_of(&events)
            .iter()
            .map(|d| parse_chunk(d).unwrap())
            .find_map(|c| c.usage)
            .unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (76, 24, 100)
        );
    }

    #[test]
    fn a_text_stream_yields_its_tokens() {
        let mut assembler = StreamAssembler::new();
        let mut streamed = Vec::new();
        for text in TEXT_CHUNKS {
            let chunk: ChatCompletionChunk = assert_round_trip(text);
            streamed.extend(assembler.push(&chunk).map(str::to_owned));
        }
        assert_eq!(streamed, vec!["Hello"]);
        let turn = assembler.finish();
        assert_eq!(turn.content.as_deref(), Some("Hello"));
        assert!(turn.tool_calls.is_empty());
        assert_eq!(turn.finish_reason, Some(FinishReason::Stop));
    }

    #[test]
    fn the_request_and_completion_round_trip() {
        let request: ChatRequest = assert_round_trip(REQUEST);
        assert!(request.stream);
        assert_eq!(
            request.tool_choice,
            Some(ToolChoice::Mode(ToolChoiceMode::Auto))
        );
        let assistant = &request.messages[2];
        assert_eq!(assistant.content, None);
        assert_eq!(
            assistant.tool_calls.as_ref().unwrap()[0].function.name,
            "get_current_weather"
        );
        assert_eq!(
            request.messages[3].tool_call_id.as_deref(),
            Some("call_abc123")
        );
        // An assistant message that only calls tools says `content: null`.
        assert_eq!(
            serde_json::to_value(assistant).unwrap()["content"],
            Value::Null
        );

        let completion: ChatCompletion = assert_round_trip(COMPLETION);
        let turn = completion.into_turn().unwrap();
        assert_eq!(
            turn.content.as_deref(),
            Some("\n\nHello there, how may I assist you today?")
        );
        assert_eq!(turn.finish_reason, Some(FinishReason::Stop));
    }

    #[test]
    fn lenient_where_servers_differ() {
        let message: ChatMessage = serde_json::from_value(json!({
            "role": "user",
            "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "there"}],
        }))
        .unwrap();
        assert_eq!(message.content.as_deref(), Some("hello\nthere"));
        let named: ToolChoice =
            serde_json::from_value(json!({"type": "function", "function": {"name": "faq"}}))
                .unwrap();
        assert_eq!(
            named,
            ToolChoice::Function(NamedToolChoice {
                kind: ToolType::Function,
                function: FunctionName { name: "faq".into() },
            })
        );
        let reason: FinishReason = serde_json::from_value(json!("brand_new")).unwrap();
        assert_eq!(reason, FinishReason::Other);
        // A compatible server that omits the envelope fields.
        let chunk = parse_chunk(r#"{"choices":[{"delta":{"content":"hi"}}]}"#).unwrap();
        assert_eq!(chunk.choices[0].delta.content.as_deref(), Some("hi"));
    }

    #[test]
    fn error_frames_end_the_stream() {
        let err = parse_chunk(
            r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&err, ChatError::Api(e) if e.message == "The server had an error" && e.kind.as_deref() == Some("server_error")),
            "{err:?}"
        );
        let err = parse_chunk(r#"{"error":"overloaded"}"#).unwrap_err();
        assert!(matches!(&err, ChatError::Api(e) if e.message == "\"overloaded\""));
        assert!(matches!(parse_chunk("{nope"), Err(ChatError::Malformed(_))));
    }

    #[test]
    fn error_bodies_and_retry_policy() {
        let quota: ApiErrorBody = assert_round_trip(
            r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        );
        let rate: ApiErrorBody = assert_round_trip(
            r#"{"error":{"message":"Rate limit reached for 10KTPM-200RPM in organization org-x on tokens per min. Please try again in 6ms.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        let (quota, rate) = (quota.error, rate.error);
        let none = |_: &str| None;
        assert!(!should_retry(429, none, Some(&quota)));
        assert!(should_retry(429, none, Some(&rate)));
        assert!(should_retry(500, none, None));
        assert!(should_retry(503, none, None));
        assert!(should_retry(408, none, None));
        assert!(!should_retry(400, none, None));
        assert!(!should_retry(401, none, None));
        let says = |value: &'static str| {
            move |name: &str| (name == "x-should-retry").then(|| value.to_owned())
        };
        assert!(should_retry(400, says("true"), None));
        assert!(!should_retry(500, says("false"), None));
        assert!(!should_retry(429, says("true"), Some(&quota)));
    }

    #[test]
    fn numeric_and_odd_error_fields_are_read_and_still_judged() {
        // A compatible server's quota error with a numeric code: still not retried.
        let quota = parse_error_body(
            br#"{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":429}}"#,
        )
        .unwrap();
        assert_eq!(quota.code.as_deref(), Some("429"));
        assert_eq!(quota.message, "You exceeded your current quota.");
        assert!(quota.is_quota_exhausted());
        let none = |_: &str| None;
        assert!(!should_retry(429, none, Some(&quota)));
        // The same with OpenAI's string code, and with no code at all.
        for code in [r#""insufficient_quota""#, "null"] {
            let body = format!(
                r#"{{"error":{{"message":"m","type":"insufficient_quota","param":null,"code":{code}}}}}"#
            );
            assert!(
                parse_error_body(body.as_bytes())
                    .unwrap()
                    .is_quota_exhausted(),
                "{code}"
            );
        }
        // A plain numeric 429 is a rate limit: retried.
        let rate = parse_error_body(br#"{"error":{"code":429,"message":"slow down"}}"#).unwrap();
        assert!(!rate.is_quota_exhausted());
        assert!(should_retry(429, none, Some(&rate)));
        // A refused key by number or by name.
        for body in [
            &br#"{"error":{"code":401,"message":"bad key"}}"#[..],
            br#"{"error":{"message":"Incorrect API key provided: sk-x","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        ] {
            let refused = parse_error_body(body).unwrap();
            assert!(refused.is_key_refused(), "{refused:?}");
            assert!(!should_retry(400, none, Some(&refused)));
        }
        // Other shapes compatible servers use.
        let flat = parse_error_body(
            br#"{"object":"error","message":"model not found","type":"NotFoundError","param":["model"],"code":404}"#,
        )
        .unwrap();
        assert_eq!(
            (
                flat.message.as_str(),
                flat.code.as_deref(),
                flat.param.as_deref()
            ),
            ("model not found", Some("404"), Some(r#"["model"]"#))
        );
        assert_eq!(
            parse_error_body(br#"{"error":"overloaded"}"#)
                .unwrap()
                .message,
            "overloaded"
        );
        assert_eq!(parse_error_body(b"<html>502</html>"), None);
        assert_eq!(parse_error_body(br#"{"detail":"x"}"#), None);
        // An error frame in a stream with a numeric code is an API error, not a bad chunk.
        let err =
            parse_chunk(r#"{"error":{"message":"quota","type":"insufficient_quota","code":429}}"#)
                .unwrap_err();
        assert!(
            matches!(&err, ChatError::Api(e) if e.is_quota_exhausted() && e.code.as_deref() == Some("429")),
            "{err:?}"
        );
    }

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn retry_after_headers() {
        assert_eq!(
            retry_after(headers(&[
                ("retry-after-ms", "1500.5"),
                ("retry-after", "9")
            ])),
            Some(Duration::from_micros(1_500_500))
        );
        assert_eq!(
            retry_after(headers(&[("retry-after", " 2 ")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(headers(&[("retry-after", "0.25")])),
            Some(Duration::from_millis(250))
        );
        for bad in [
            "0",
            "-1",
            "61",
            "NaN",
            "inf",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "",
        ] {
            assert_eq!(retry_after(headers(&[("retry-after", bad)])), None, "{bad}");
        }
        assert_eq!(retry_after(headers(&[])), None);
        // A parsable ms header decides, even when it is out of range.
        assert_eq!(
            retry_after(headers(&[
                ("retry-after-ms", "90000"),
                ("retry-after", "1")
            ])),
            None
        );
    }

    /// A stream using every framing feature: CRLF and CR endings, comments,
    /// fields without a space, multi-line data, ignored fields, UTF-8.
    const TRICKY: &[u8] = b": keep-alive\r\n\r\nevent: ignored\r\ndata: {\"a\":\"caf\xc3\xa9\"}\r\n\r\ndata:one\rdata: two\r\rid: 7\nretry: 10\ndata\n\ndata: [DONE]\n\n";

    #[test]
    fn sse_framing() {
        assert_eq!(
            decode_all(TRICKY),
            vec![
                SseEvent::Data("{\"a\":\"café\"}".into()),
                SseEvent::Data("one\ntwo".into()),
                SseEvent::Done,
            ]
        );
    }

    #[test]
    fn sse_split_at_every_byte_gives_the_same_events() {
        for stream in [TRICKY, TOOL_STREAM.as_bytes()] {
            let whole = decode_all(stream);
            for at in 0..=stream.len() {
                let (a, b) = stream.split_at(at);
                let mut decoder = SseDecoder::new();
                let mut events = decoder.feed(a).unwrap();
                events.extend(decoder.feed(b).unwrap());
                assert_eq!(events, whole, "split at {at}");
            }
            let mut decoder = SseDecoder::new();
            let byte_by_byte: Vec<SseEvent> = stream
                .iter()
                .flat_map(|b| decoder.feed(std::slice::from_ref(b)).unwrap())
                .collect();
            assert_eq!(byte_by_byte, whole);
        }
    }

    #[test]
    fn sse_buffering_is_bounded() {
        let mut decoder = SseDecoder::new();
        let long = vec![b'x'; MAX_SSE_EVENT_BYTES / 2];
        decoder.feed(b"data: ").unwrap();
        decoder.feed(&long).unwrap();
        assert!(matches!(decoder.feed(&long), Err(ChatError::LineTooLong)));
        // Reset: the next event decodes.
        assert_eq!(
            decoder.feed(b"\ndata: ok\n\n").unwrap(),
            vec![SseEvent::Data("ok".into())]
        );

        let mut decoder = SseDecoder::new();
        let mut line = b"data: ".to_vec();
        line.extend(vec![b'y'; MAX_SSE_EVENT_BYTES / 3]);
        line.push(b'\n');
        decoder.feed(&line).unwrap();
        decoder.feed(&line).unwrap();
        assert!(matches!(decoder.feed(&line), Err(ChatError::EventTooLarge)));
    }

    fn fragment(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> ToolCallDelta {
        ToolCallDelta {
            index,
            id: id.map(Into::into),
            kind: id.map(|_| ToolType::Function),
            function: Some(FunctionCallDelta {
                name: name.map(Into::into),
                arguments: Some(args.into()),
            }),
        }
    }

    fn chunk_with(
        content: Option<&str>,
        calls: Vec<ToolCallDelta>,
        finish: Option<FinishReason>,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            object: CHUNK_OBJECT.into(),
            choices: vec![ChunkChoice {
                delta: Delta {
                    content: content.map(Into::into),
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    ..Delta::default()
                },
                finish_reason: finish,
                ..ChunkChoice::default()
            }],
            ..ChatCompletionChunk::default()
        }
    }

    #[test]
    fn parallel_tool_calls_interleave() {
        let chunks = [
            chunk_with(Some("Let me check."), vec![], None),
            chunk_with(
                None,
                vec![fragment(0, Some("call_a"), Some("lookup_order"), "")],
                None,
            ),
            chunk_with(
                None,
                vec![fragment(1, Some("call_b"), Some("store_hours"), "{\"da")],
                None,
            ),
            chunk_with(None, vec![fragment(0, None, None, "{\"order_id\":")], None),
            chunk_with(
                None,
                vec![
                    fragment(1, None, None, "y\":\"monday\"}"),
                    fragment(0, None, None, "\"1001\"}"),
                ],
                None,
            ),
            chunk_with(None, vec![], Some(FinishReason::ToolCalls)),
        ];
        let mut assembler = StreamAssembler::new();
        let streamed: Vec<&str> = chunks.iter().filter_map(|c| assembler.push(c)).collect();
        assert_eq!(streamed, vec!["Let me check."]);
        let turn = assembler.finish();
        assert_eq!(turn.content.as_deref(), Some("Let me check."));
        assert_eq!(turn.finish_reason, Some(FinishReason::ToolCalls));
        let calls: Vec<(&str, &str, &str)> = turn
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.function.name.as_str(),
                    c.function.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("call_a", "lookup_order", "{\"order_id\":\"1001\"}"),
                ("call_b", "store_hours", "{\"day\":\"monday\"}"),
            ]
        );
        // Written and read back, the chunks are the same.
        for chunk in &chunks {
            let text = serde_json::to_string(chunk).unwrap();
            assert_eq!(&parse_chunk(&text).unwrap(), chunk);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), cut in 0usize..2048) {
            let mut decoder = SseDecoder::new();
            let cut = cut.min(bytes.len());
            let (a, b) = bytes.split_at(cut);
            let _ = decoder.feed(a);
            let _ = decoder.feed(b);
            for event in decode_all(&bytes) {
                if let SseEvent::Data(data) = event {
                    let _ = parse_chunk(&data);
                }
            }
        }

        #[test]
        fn any_chunking_gives_the_same_events(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(&b"data: "[..]), Just(&b"data:"[..]), Just(&b"\r\n"[..]), Just(&b"\n"[..]),
                    Just(&b"\r"[..]), Just(&b": c"[..]), Just(&b"[DONE]"[..]), Just(&b"{\"x\":1}"[..]),
                    Just(&b"id: 1"[..]), Just(&b"\xc3\xa9"[..]),
                ],
                0..40,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let stream: Vec<u8> = pieces.concat();
            let whole = decode_all(&stream);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut decoder = SseDecoder::new();
            let mut events = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                events.extend(decoder.feed(&stream[start..cut]).unwrap());
                start = cut;
            }
            prop_assert_eq!(events, whole);
        }
    }
}
