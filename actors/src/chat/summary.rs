//! A one-off completion outside any conversation: the notes of a call people had
//! (`voice.mode = "human"`), from its two-party transcript.

use actix_http::header::CONTENT_TYPE;
use bytes::Bytes;

use super::exchange;
use crate::engine::Shared;
use crate::protocol::openai::chat::{ChatMessage, ChatRequest, ChatRole};

/// What a listened call's summary is asked for (`voice.mode = "human"`).
const SUMMARY_INSTRUCTIONS: &str = "You write call notes for a customer service team. Below \
     is the transcript of a phone call between a customer and a person of our team. In at \
     most three sentences, say what the customer wanted and what was agreed, including any \
     order numbers, dates or promises. Plain text, no preamble.";

/// One completion outside any conversation: the summary of a call people had, from its
/// transcript (`Caller:`/`Colleague:` lines). No tools and no retry — the caller of this
/// keeps the local template when it fails. `None` without an API key.
pub(crate) async fn summarise_call(shared: &Shared, transcript: &str) -> Option<String> {
    let openai = &shared.config.openai;
    let key = openai.api_key.as_ref()?;
    let request = ChatRequest {
        model: openai.chat_model.clone(),
        messages: vec![
            ChatMessage::text(ChatRole::System, SUMMARY_INSTRUCTIONS),
            ChatMessage::text(ChatRole::User, transcript),
        ],
        tools: None,
        tool_choice: None,
        stream: true,
        stream_options: None,
    };
    let body = serde_json::to_vec(&request).ok()?;
    let send = crate::http::client()
        .post(openai.chat_url())
        .timeout(exchange::RESPONSE_TIMEOUT)
        .bearer_auth(key.expose())
        .insert_header((CONTENT_TYPE, "application/json"))
        .send_body(Bytes::from(body));
    match exchange::exchange(send, |_| {}).await {
        Ok(turn) => turn
            .content
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty()),
        Err(failure) => {
            tracing::warn!(error = %failure.error, "call summary: the chat model did not answer");
            None
        }
    }
}
