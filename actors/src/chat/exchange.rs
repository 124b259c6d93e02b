//! One HTTP exchange with `POST {base_url}/chat/completions`: send the request, judge the
//! status, and decode the body — streamed SSE chunks, or a whole completion from a
//! compatible server that ignores `stream` — into text as it arrives and the assistant's
//! turn. Retrying is the actor's business; this only says whether a retry may help.

use std::time::Duration;

use actix_http::error::PayloadError;
use actix_http::header::{HeaderMap, CONTENT_TYPE};
use awc::error::SendRequestError;
use awc::ClientResponse;
use bytes::Bytes;
use futures_util::stream::{Stream, StreamExt};
use thiserror::Error;

use crate::protocol::openai::chat::{
    parse_chunk, parse_error_body, retry_after, should_retry, AssistantTurn, ChatCompletion,
    ChatError, SseDecoder, SseEvent, StreamAssembler,
};

/// How long the response head may take once the request is sent.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence inside a streamed body: a stalled stream is abandoned.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole body, however lively, must be over by then.
const BODY_DEADLINE: Duration = Duration::from_secs(180);
/// Largest body read: a reply is a few kilobytes, so this only stops a broken server from
/// growing memory.
const MAX_BODY_BYTES: usize = 4 << 20;
/// Largest error body read (it is only mined for a message).
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Why one exchange failed.
#[derive(Debug, Error)]
pub(super) enum ExchangeError {
    /// 401/403, or an error body that says the key is invalid: no retry will help until
    /// the key is fixed. The server's message is not kept: it quotes part of the key.
    #[error("the model refused the API key ({status})")]
    Refused { status: u16 },
    #[error("the model answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// The provider's retry policy for this answer (`should_retry`).
        retry: bool,
        /// The delay the provider asked for, if any.
        retry_after: Option<Duration>,
    },
    #[error("the model could not be reached: {0}")]
    Send(#[from] SendRequestError),
    #[error("the model's response broke off: {0}")]
    Payload(#[from] PayloadError),
    #[error("the model's response stalled for {IDLE_TIMEOUT:?}")]
    Stalled,
    #[error("the model's response is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Stream(#[from] ChatError),
    #[error("the model's stream ended before its reply was complete")]
    Truncated,
    #[error("the model's answer is not a chat completion: {0}")]
    Malformed(String),
}

impl ExchangeError {
    /// Whether the same request may succeed later (only asked when nothing was streamed).
    pub(super) fn retryable(&self) -> bool {
        match self {
            ExchangeError::Status { retry, .. } => *retry,
            ExchangeError::Send(_)
            | ExchangeError::Payload(_)
            | ExchangeError::Stalled
            | ExchangeError::Truncated => true,
            // An error frame: worth another try unless it says no retry can help.
            ExchangeError::Stream(ChatError::Api(error)) => {
                !error.is_quota_exhausted() && !error.is_key_refused()
            }
            ExchangeError::Refused { .. }
            | ExchangeError::TooLarge
            | ExchangeError::Stream(_)
            | ExchangeError::Malformed(_) => false,
        }
    }

    /// The wait the provider asked for before the next attempt.
    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            ExchangeError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A failed exchange, and whether text of it had already been handed on (then a retry
/// would say it twice).
#[derive(Debug)]
pub(super) struct Failure {
    pub error: ExchangeError,
    pub streamed: bool,
}

/// Runs one exchange; `on_text` gets each piece of the reply's text as it arrives.
pub(super) async fn exchange<S>(
    request: impl std::future::Future<Output = Result<ClientResponse<S>, SendRequestError>>,
    mut on_text: impl FnMut(&str),
) -> Result<AssistantTurn, Failure>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let mut streamed = false;
    let result = receive(request, |text| {
        streamed = true;
        on_text(text);
    })
    .await;
    result.map_err(|error| Failure { error, streamed })
}

async fn receive<S>(
    request: impl std::future::Future<Output = Result<ClientResponse<S>, SendRequestError>>,
    on_text: impl FnMut(&str),
) -> Result<AssistantTurn, ExchangeError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let mut response = request.await?;
    if !response.status().is_success() {
        return Err(refusal(&mut response).await);
    }
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let response = response.timeout(BODY_DEADLINE);
    if json {
        completion(response, on_text).await
    } else {
        stream(response, on_text).await
    }
}

/// Decodes a `text/event-stream` body.
async fn stream<S>(
    mut response: ClientResponse<S>,
    mut on_text: impl FnMut(&str),
) -> Result<AssistantTurn, ExchangeError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let mut decoder = SseDecoder::new();
    let mut assembler = StreamAssembler::new();
    let mut received = 0usize;
    while let Some(bytes) = tokio::time::timeout(IDLE_TIMEOUT, response.next())
        .await
        .map_err(|_| ExchangeError::Stalled)?
    {
        let bytes = bytes?;
        received = received.saturating_add(bytes.len());
        if received > MAX_BODY_BYTES {
            return Err(ExchangeError::TooLarge);
        }
        for event in decoder.feed(&bytes)? {
            match event {
                SseEvent::Done => return Ok(assembler.finish()),
                SseEvent::Data(data) => {
                    let chunk = parse_chunk(&data)?;
                    if let Some(text) = assembler.push(&chunk) {
                        on_text(text);
                    }
                }
            }
        }
    }
    // No `[DONE]`: whole only if the model said why it stopped.
    let turn = assembler.finish();
    match turn.finish_reason {
        Some(_) => Ok(turn),
        None => Err(ExchangeError::Truncated),
    }
}

/// Reads a non-streamed `chat.completion`.
async fn completion<S>(
    mut response: ClientResponse<S>,
    mut on_text: impl FnMut(&str),
) -> Result<AssistantTurn, ExchangeError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let body = response
        .body()
        .limit(MAX_BODY_BYTES)
        .await
        .map_err(|err| match err {
            PayloadError::Overflow => ExchangeError::TooLarge,
            other => ExchangeError::Payload(other),
        })?;
    let completion: ChatCompletion =
        serde_json::from_slice(&body).map_err(|err| ExchangeError::Malformed(err.to_string()))?;
    let turn = completion
        .into_turn()
        .ok_or_else(|| ExchangeError::Malformed("it has no choices".into()))?;
    if let Some(text) = &turn.content {
        on_text(text);
    }
    Ok(turn)
}

/// Judges a non-2xx answer from its status, headers and error body.
async fn refusal<S>(response: &mut ClientResponse<S>) -> ExchangeError
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let status = response.status();
    if matches!(status.as_u16(), 401 | 403) {
        return ExchangeError::Refused {
            status: status.as_u16(),
        };
    }
    let headers = response.headers().clone();
    let body = response.body().limit(MAX_ERROR_BODY_BYTES).await.ok();
    let api = body.as_deref().and_then(parse_error_body);
    if api.as_ref().is_some_and(|error| error.is_key_refused()) {
        return ExchangeError::Refused {
            status: status.as_u16(),
        };
    }
    let message = api
        .as_ref()
        .map(|error| error.message.clone())
        .filter(|message| !message.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason").to_owned());
    ExchangeError::Status {
        status: status.as_u16(),
        message,
        retry: should_retry(status.as_u16(), header(&headers), api.as_ref()),
        retry_after: retry_after(header(&headers)),
    }
}

fn header(headers: &HeaderMap) -> impl Fn(&str) -> Option<String> + '_ {
    |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }
}
