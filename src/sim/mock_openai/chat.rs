//! `POST /v1/chat/completions`: Chat Completions answered by the offline `local` model
//! (SPEC §6.4, §11.1), streamed as SSE chunks in OpenAI's exact shape or returned whole.
//!
//! The emulator only sees what a client sends — instructions and tools — so the agent is
//! recognised from them: the configured agent whose tool set is the request's (and whose
//! instructions are among its system messages, to tell agents with the same tools apart),
//! else the default agent. With `fail_rate` set, a deterministic share of requests is
//! answered `429` (with `retry-after-ms` and `retry-after`) and `500` in turn: request *n*
//! fails when `⌈n·rate⌉` grows, so the first request fails whenever the rate is above zero
//! and tests know exactly which requests fail.
//!
//! `tool_choice` and sampling parameters are accepted and ignored; `usage` counts words.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actors::domain::agents::AgentsConfig;
use actors::domain::conversation::{Message, ModelReply, ToolCallReq};
use actors::domain::local_model::stream_tokens;
use actors::protocol::openai::chat::{
    ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, ChatRole, Choice, ChunkChoice,
    Delta, FinishReason, FunctionCallDelta, ToolCall, ToolCallDelta, ToolType, Usage, CHUNK_OBJECT,
    COMPLETION_OBJECT,
};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::socket::{refusal, refuse_key};
use super::Shared;

/// Largest request body accepted (a long conversation with tool results).
pub(super) const MAX_REQUEST_BYTES: usize = 4 << 20;
/// The delay an injected `429` asks for.
const RETRY_AFTER_MS: u64 = 250;
/// Tool-call arguments are streamed in pieces of at most this many characters.
const ARGUMENT_PIECE_CHARS: usize = 8;

pub(super) async fn completions(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(refused) = refuse_key(&request) {
        return refused;
    }
    let chat: ChatRequest = match parse(&body) {
        Ok(chat) => chat,
        Err(message) => {
            return refusal(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
        }
    };
    let mut number = 0;
    let mut failure = None;
    let messages = serde_json::to_value(&chat.messages).ok();
    let offered: Vec<String> = chat
        .tools
        .iter()
        .flatten()
        .map(|tool| tool.function.name.clone())
        .collect();
    shared.stats.update(|stats| {
        stats.chat_requests += 1;
        stats.last_chat_messages = messages;
        stats.last_chat_tools = offered;
        number = stats.chat_requests;
        if injects(number, shared.fail_rate) {
            stats.chat_failures_injected += 1;
            failure = Some(stats.chat_failures_injected);
        }
    });
    if !shared.latency.is_zero() {
        actix_web::rt::time::sleep(shared.latency).await;
    }
    if let Some(nth) = failure {
        return injected_failure(nth, &chat.model);
    }
    let agent = pick_agent(&shared.agents, &chat);
    let history: Vec<Message> = chat.messages.iter().cloned().map(Into::into).collect();
    // A phone call's request offers `take_voicemail`: the model may take one.
    let on_call = chat
        .tools
        .iter()
        .flatten()
        .any(|tool| tool.function.name == actors::domain::tools::TAKE_VOICEMAIL);
    let reply = shared.local_model.reply_for(agent, &history, &[], on_call);
    let meta = Meta {
        id: format!("chatcmpl-mock{number}"),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| now.as_secs()),
        model: chat.model.clone(),
    };
    let usage = usage(&history, &reply);
    if chat.stream {
        let with_usage = chat.stream_options.is_some_and(|o| o.include_usage);
        let frames: Vec<Result<Bytes, Infallible>> =
            stream_chunks(&meta, &reply, with_usage.then_some(usage))
                .iter()
                .map(|chunk| Ok(Bytes::from(format!("data: {}\n\n", json!(chunk)))))
                .chain([Ok(Bytes::from_static(b"data: [DONE]\n\n"))])
                .collect();
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(futures_util::stream::iter(frames))
    } else {
        HttpResponse::Ok().json(completion(&meta, reply, usage))
    }
}

/// The request, or the message of the `400` it gets, worded like the real server's.
fn parse(body: &[u8]) -> Result<ChatRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't \
         using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was \
         sent was not valid JSON.)"
            .to_owned()
    })?;
    let chat: ChatRequest = serde_json::from_value(value).map_err(|err| err.to_string())?;
    if chat.messages.is_empty() {
        return Err(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, \
                    but got an empty array instead."
                .into(),
        );
    }
    Ok(chat)
}

/// Whether request `number` (from 1) is one of the injected failures: the count of failures
/// so far is `⌈number·rate⌉`.
fn injects(number: u64, rate: f64) -> bool {
    let rate = if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    };
    let failures = |n: u64| (n as f64 * rate).ceil();
    failures(number) > failures(number.saturating_sub(1))
}

/// The `nth` injected failure: odd ones are rate limits, even ones server errors.
fn injected_failure(nth: u64, model: &str) -> HttpResponse {
    if nth % 2 == 1 {
        HttpResponse::TooManyRequests()
            .insert_header(("retry-after-ms", RETRY_AFTER_MS.to_string()))
            .insert_header(("retry-after", RETRY_AFTER_MS.div_ceil(1000).to_string()))
            .json(json!({"error": {
                "message": format!(
                    "Rate limit reached for {model} in organization org-mock on requests per \
                     min (RPM): Limit 3, Used 3, Requested 1. Please try again in {RETRY_AFTER_MS}ms."
                ),
                "type": "requests",
                "param": null,
                "code": "rate_limit_exceeded",
            }}))
    } else {
        HttpResponse::InternalServerError().json(json!({"error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": null,
            "code": null,
        }}))
    }
}

/// The agent the request speaks as (see the module docs).
fn pick_agent<'a>(agents: &'a AgentsConfig, chat: &ChatRequest) -> &'a str {
    let offered: BTreeSet<&str> = chat
        .tools
        .iter()
        .flatten()
        .map(|tool| tool.function.name.as_str())
        .collect();
    let instructions: Vec<&str> = chat
        .messages
        .iter()
        .filter(|m| matches!(m.role, ChatRole::System | ChatRole::Developer))
        .filter_map(|m| m.content.as_deref())
        .map(str::trim)
        .collect();
    // A phone call's request also offers the call-only tools.
    let on_call = offered.contains(actors::domain::tools::TAKE_VOICEMAIL);
    let mut best: Option<(u8, &str)> = None;
    for agent in &agents.agents {
        let tools = if on_call {
            agents.voice_tools(&agent.name)
        } else {
            agents.function_tools(&agent.name)
        };
        let same_tools = tools.len() == offered.len()
            && tools
                .iter()
                .all(|tool| offered.contains(tool.name.as_str()));
        let same_instructions = instructions.contains(&agent.instructions.trim());
        let score = u8::from(same_tools) * 2 + u8::from(same_instructions);
        if score > 0 && best.is_none_or(|(top, _)| score > top) {
            best = Some((score, &agent.name));
        }
    }
    best.map_or(&agents.default_agent, |(_, name)| name)
}

/// What every chunk of one response repeats.
struct Meta {
    id: String,
    created: u64,
    model: String,
}

impl Meta {
    fn chunk(&self, delta: Delta, finish_reason: Option<FinishReason>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: CHUNK_OBJECT.into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        }
    }
}

/// The chunks of a streamed reply: the role, then text word by word or each tool call's
/// id and name followed by its arguments in pieces, then the finish reason and, when asked
/// for, the usage chunk without choices.
fn stream_chunks(
    meta: &Meta,
    reply: &ModelReply,
    usage: Option<Usage>,
) -> Vec<ChatCompletionChunk> {
    let delta = |content: Option<&str>, tool_calls: Option<Vec<ToolCallDelta>>| Delta {
        content: content.map(str::to_owned),
        tool_calls,
        ..Delta::default()
    };
    let mut chunks = Vec::new();
    let finish = match reply {
        ModelReply::Text(text) => {
            chunks.push(meta.chunk(
                Delta {
                    role: Some(ChatRole::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            ));
            for token in stream_tokens(text) {
                chunks.push(meta.chunk(delta(Some(token), None), None));
            }
            FinishReason::Stop
        }
        ModelReply::ToolCalls(calls) => {
            chunks.push(meta.chunk(
                Delta {
                    role: Some(ChatRole::Assistant),
                    ..Delta::default()
                },
                None,
            ));
            for (index, call) in (0u32..).zip(calls) {
                let opening = ToolCallDelta {
                    index,
                    id: Some(call.id.clone()),
                    kind: Some(ToolType::Function),
                    function: Some(FunctionCallDelta {
                        name: Some(call.name.clone()),
                        arguments: Some(String::new()),
                    }),
                };
                chunks.push(meta.chunk(delta(None, Some(vec![opening])), None));
                for piece in pieces(&call.arguments, ARGUMENT_PIECE_CHARS) {
                    let fragment = ToolCallDelta {
                        index,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(piece.to_owned()),
                        }),
                        ..ToolCallDelta::default()
                    };
                    chunks.push(meta.chunk(delta(None, Some(vec![fragment])), None));
                }
            }
            FinishReason::ToolCalls
        }
    };
    chunks.push(meta.chunk(Delta::default(), Some(finish)));
    if let Some(usage) = usage {
        chunks.push(ChatCompletionChunk {
            choices: Vec::new(),
            usage: Some(usage),
            ..meta.chunk(Delta::default(), None)
        });
    }
    chunks
}

/// `text` cut into pieces of at most `chars` characters.
fn pieces(text: &str, chars: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .char_indices()
            .nth(chars)
            .map_or(rest.len(), |(at, _)| at);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// The non-streamed response.
fn completion(meta: &Meta, reply: ModelReply, usage: Usage) -> ChatCompletion {
    let (content, tool_calls, finish) = match reply {
        ModelReply::Text(text) => (Some(text), None, FinishReason::Stop),
        ModelReply::ToolCalls(calls) => (
            None,
            Some(calls.iter().map(ToolCall::from).collect()),
            FinishReason::ToolCalls,
        ),
    };
    let message = ChatMessage {
        content,
        tool_calls,
        ..ChatMessage::text(ChatRole::Assistant, "")
    };
    ChatCompletion {
        id: meta.id.clone(),
        object: COMPLETION_OBJECT.into(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish),
            extra: Map::new(),
        }],
        usage: Some(usage),
        extra: Map::new(),
    }
}

/// Usage counted in words, not tokens: plausible numbers, not billing.
fn usage(history: &[Message], reply: &ModelReply) -> Usage {
    let words = |text: &str| text.split_whitespace().count() as u64;
    let prompt_tokens = history.iter().map(|m| words(&m.content)).sum();
    let completion_tokens = match reply {
        ModelReply::Text(text) => words(text),
        ModelReply::ToolCalls(calls) => calls
            .iter()
            .map(
                |ToolCallReq {
                     name, arguments, ..
                 }| 1 + words(name) + words(arguments),
            )
            .sum(),
    };
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use actors::domain::agents::AgentsConfig;
    use actors::protocol::openai::chat::{
        parse_chunk, ChatTool, SseDecoder, SseEvent, StreamAssembler, StreamOptions,
    };
    use awc::http::StatusCode;

    use super::super::{MockOptions, MockServer};
    use super::*;

    fn agents() -> AgentsConfig {
        super::super::shipped_agents().unwrap()
    }

    /// A request as the engine's `Chat` writes it for `agent`.
    fn request_as(agent: &str, text: &str, stream: bool) -> ChatRequest {
        let agents = agents();
        let config = agents.agent(agent).unwrap();
        let tools: Vec<ChatTool> = agents
            .function_tools(agent)
            .iter()
            .map(ChatTool::from)
            .collect();
        ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![
                ChatMessage::text(ChatRole::System, config.instructions.as_str()),
                ChatMessage::text(ChatRole::User, text),
            ],
            tools: Some(tools),
            tool_choice: None,
            stream,
            stream_options: None,
        }
    }

    fn start(options: MockOptions) -> MockServer {
        MockServer::start("127.0.0.1:0", options).unwrap()
    }

    fn url(server: &MockServer) -> String {
        format!("{}/chat/completions", server.base_url())
    }

    /// Posts `body` with `key`; the status, the headers asked for, and the body.
    async fn post(
        server: &MockServer,
        key: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, awc::http::header::HeaderMap, Vec<u8>) {
        let mut request = awc::Client::new()
            .post(url(server))
            .insert_header(("content-type", "application/json"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let mut response = request.send_body(body).await.unwrap();
        let body = response.body().limit(1 << 20).await.unwrap();
        (response.status(), response.headers().clone(), body.to_vec())
    }

    async fn post_chat(server: &MockServer, chat: &ChatRequest) -> (StatusCode, Vec<u8>) {
        let (status, _, body) =
            post(server, Some("sk-test"), serde_json::to_vec(chat).unwrap()).await;
        (status, body)
    }

    fn chunks(body: &[u8]) -> (Vec<ChatCompletionChunk>, bool) {
        let mut done = false;
        let chunks = SseDecoder::new()
            .feed(body)
            .unwrap()
            .into_iter()
            .filter_map(|event| match event {
                SseEvent::Data(data) => Some(parse_chunk(&data).unwrap()),
                SseEvent::Done => {
                    done = true;
                    None
                }
            })
            .collect();
        (chunks, done)
    }

    #[actix_web::test]
    async fn a_text_reply_streams_word_by_word() {
        let server = start(MockOptions::default());
        let (status, body) = post_chat(&server, &request_as("triage", "hi", true)).await;
        assert_eq!(status, StatusCode::OK);
        let (chunks, done) = chunks(&body);
        assert!(done, "no [DONE]");
        let first = &chunks[0];
        assert_eq!(first.object, CHUNK_OBJECT);
        assert_eq!(first.id, "chatcmpl-mock1");
        assert_eq!(first.model, "gpt-4o-mini");
        assert_eq!(first.choices[0].delta.role, Some(ChatRole::Assistant));
        let last = chunks.last().unwrap();
        assert_eq!(last.choices[0].finish_reason, Some(FinishReason::Stop));
        assert!(chunks.iter().all(|c| c.id == first.id));
        let mut assembler = StreamAssembler::new();
        let words: Vec<String> = chunks
            .iter()
            .filter_map(|c| assembler.push(c).map(str::to_owned))
            .collect();
        assert!(words.len() > 3, "{words:?}");
        let turn = assembler.finish();
        let text = turn.content.unwrap();
        assert!(text.starts_with("Hello!"), "{text}");
        assert_eq!(words.concat(), text);
        assert_eq!(server.stats().chat_requests, 1);
    }

    #[actix_web::test]
    async fn tool_calls_stream_their_arguments_in_pieces() {
        let server = start(MockOptions::default());
        // Only the orders agent looks orders up: the agent was recognised from the request.
        let chat = request_as("orders", "where is my order 1001?", true);
        let (status, body) = post_chat(&server, &chat).await;
        assert_eq!(status, StatusCode::OK);
        let (chunks, done) = chunks(&body);
        assert!(done);
        let fragments: Vec<&ToolCallDelta> = chunks
            .iter()
            .flat_map(|c| c.choices[0].delta.tool_calls.iter().flatten())
            .collect();
        assert!(fragments.len() > 2, "{fragments:?}");
        let opening = fragments[0];
        assert_eq!(opening.index, 0);
        assert!(opening.id.is_some());
        assert_eq!(opening.kind, Some(ToolType::Function));
        assert!(fragments[1..]
            .iter()
            .all(|f| f.id.is_none() && f.function.as_ref().is_some_and(|f| f.name.is_none())));
        let mut assembler = StreamAssembler::new();
        for chunk in &chunks {
            assert_eq!(assembler.push(chunk), None);
        }
        let turn = assembler.finish();
        assert_eq!(turn.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(turn.tool_calls.len(), 1);
        assert_eq!(turn.tool_calls[0].function.name, "lookup_order");
        assert_eq!(
            turn.tool_calls[0].function.arguments,
            r#"{"order_id":"1001"}"#
        );
    }

    #[actix_web::test]
    async fn usage_comes_last_when_asked_for() {
        let server = start(MockOptions::default());
        let mut chat = request_as("triage", "hi", true);
        chat.stream_options = Some(StreamOptions {
            include_usage: true,
        });
        let (_, body) = post_chat(&server, &chat).await;
        let (chunks, _) = chunks(&body);
        let last = chunks.last().unwrap();
        assert!(last.choices.is_empty());
        let usage = last.usage.as_ref().unwrap();
        assert!(usage.completion_tokens > 0);
        assert_eq!(
            usage.total_tokens,
            usage.prompt_tokens + usage.completion_tokens
        );
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));
    }

    #[actix_web::test]
    async fn without_stream_a_completion_is_returned() {
        let server = start(MockOptions::default());
        let (status, body) = post_chat(
            &server,
            &request_as("orders", "where is my order 1001?", false),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let completion: ChatCompletion = serde_json::from_slice(&body).unwrap();
        assert_eq!(completion.object, COMPLETION_OBJECT);
        assert!(completion.usage.is_some());
        let turn = completion.into_turn().unwrap();
        assert_eq!(turn.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(turn.tool_calls[0].function.name, "lookup_order");
        // The raw JSON says `content: null` beside the calls, as OpenAI does.
        let raw: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(raw["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(raw["choices"][0]["message"]["role"], "assistant");

        let (_, body) = post_chat(&server, &request_as("triage", "hi", false)).await;
        let completion: ChatCompletion = serde_json::from_slice(&body).unwrap();
        let turn = completion.into_turn().unwrap();
        assert_eq!(turn.finish_reason, Some(FinishReason::Stop));
        assert!(turn.content.unwrap().starts_with("Hello!"));
    }

    #[actix_web::test]
    async fn keys_and_bodies_are_checked() {
        let server = start(MockOptions::default());
        let good = serde_json::to_vec(&request_as("triage", "hi", false)).unwrap();
        let code = |body: &[u8]| {
            serde_json::from_slice::<Value>(body).unwrap()["error"]["code"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let (status, _, body) = post(&server, None, good.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&body), "missing_api_key");
        let (status, _, body) = post(&server, Some("sk-invalid"), good).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(code(&body), "invalid_api_key");
        for bad in [
            &b"{not json"[..],
            br#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            br#"{"model": "m", "messages": []}"#,
        ] {
            let (status, _, body) = post(&server, Some("sk-test"), bad.to_vec()).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(bad)
            );
            let error: Value = serde_json::from_slice(&body).unwrap();
            assert!(!error["error"]["message"].as_str().unwrap().is_empty());
        }
        assert_eq!(server.stats().chat_requests, 0);
    }

    #[actix_web::test]
    async fn the_fail_rate_alternates_429_and_500() {
        let server = start(MockOptions {
            fail_rate: 0.5,
            ..MockOptions::default()
        });
        let body = serde_json::to_vec(&request_as("triage", "hi", false)).unwrap();
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let (status, headers, body) = post(&server, Some("sk-test"), body.clone()).await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(headers.get("retry-after-ms").unwrap(), "250");
                assert_eq!(headers.get("retry-after").unwrap(), "1");
                let error: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(error["error"]["code"], "rate_limit_exceeded");
            }
            statuses.push(status.as_u16());
        }
        assert_eq!(statuses, vec![429, 200, 500, 200]);
        let stats = server.stats();
        assert_eq!((stats.chat_requests, stats.chat_failures_injected), (4, 2));
    }

    #[actix_web::test]
    async fn latency_delays_the_answer() {
        let server = start(MockOptions {
            latency_ms: 200,
            ..MockOptions::default()
        });
        let sent = Instant::now();
        let (status, _) = post_chat(&server, &request_as("triage", "hi", true)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(sent.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn failures_follow_the_rate_from_the_first_request() {
        let failed = |rate: f64| -> Vec<u64> { (1..=10).filter(|&n| injects(n, rate)).collect() };
        assert_eq!(failed(0.0), Vec::<u64>::new());
        assert_eq!(failed(f64::NAN), Vec::<u64>::new());
        assert_eq!(failed(1.0), (1..=10).collect::<Vec<_>>());
        assert_eq!(failed(7.0), (1..=10).collect::<Vec<_>>());
        assert_eq!(failed(0.5), vec![1, 3, 5, 7, 9]);
        assert_eq!(failed(0.25), vec![1, 5, 9]);
        assert_eq!(failed(0.1), vec![1]);
    }

    #[test]
    fn the_agent_is_recognised_by_its_tools_and_instructions() {
        let agents = agents();
        for agent in ["triage", "orders", "billing", "support", "booking"] {
            assert_eq!(pick_agent(&agents, &request_as(agent, "hi", true)), agent);
            // Tools alone are enough.
            let mut chat = request_as(agent, "hi", true);
            chat.messages.remove(0);
            assert_eq!(pick_agent(&agents, &chat), agent);
        }
        // Neither tools nor instructions of any agent: the default one.
        let mut chat = request_as("orders", "hi", true);
        chat.tools = None;
        chat.messages[0].content = Some("You are a pirate.".into());
        assert_eq!(pick_agent(&agents, &chat), agents.default_agent);
    }

    #[test]
    fn arguments_are_cut_on_character_boundaries() {
        let text = r#"{"query":"café crème"}"#;
        let cut: Vec<&str> = pieces(text, 8).collect();
        assert_eq!(cut.concat(), text);
        assert!(cut.iter().all(|p| !p.is_empty() && p.chars().count() <= 8));
        assert_eq!(pieces("", 8).count(), 0);
    }
}
