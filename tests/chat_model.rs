//! The `Chat` child against the product's OpenAI emulator over real HTTP: streamed tokens
//! then the reply, tool calls, provider 429s honoured, the retry budget, a refused key, the
//! offline local model, turns replaced or cancelled mid-flight; and a misbehaving server.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler};
use actix_web::{web, App, HttpResponse, HttpServer};
use actors::chat::messages::{Cancel, ChatNotice, Complete};
use actors::chat::Chat;
use actors::domain::conversation::{Message, ModelReply};
use serde_json::{json, Value};
use support::{spawn_app, AppOptions, TestApp};
use switchboard::config::Settings;
use switchboard::sim::mock_openai::MockOptions;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Generous: nothing here should take more than a fraction of it.
const WITHIN: Duration = Duration::from_secs(10);

/// Stands in for a `Conversation`: hands every notice to the test.
struct Owner(UnboundedSender<ChatNotice>);

impl Actor for Owner {
    type Context = Context<Self>;
}

impl Handler<ChatNotice> for Owner {
    type Result = ();

    fn handle(&mut self, notice: ChatNotice, _ctx: &mut Context<Self>) {
        let _ = self.0.send(notice);
    }
}

struct Harness {
    app: TestApp,
    chat: Addr<Chat>,
    notices: UnboundedReceiver<ChatNotice>,
}

/// What a turn amounted to.
#[derive(Debug)]
struct Outcome {
    tokens: Vec<String>,
    result: Result<ModelReply, String>,
}

impl Harness {
    async fn start(options: AppOptions) -> Harness {
        let app = spawn_app(options).await;
        let (sender, notices) = unbounded_channel();
        let owner = Owner(sender).start();
        let chat = Chat::new(app.engine.shared().clone(), owner.recipient()).start();
        Harness { app, chat, notices }
    }

    fn complete(&self, turn: u64, agent: &str, text: &str) {
        self.chat.do_send(Complete {
            turn,
            agent: agent.into(),
            history: vec![Message::user(text)],
            withheld: Vec::new(),
            on_call: false,
        });
    }

    /// Notices until turn `turn` ends; a notice of any other turn fails the test.
    async fn outcome(&mut self, turn: u64) -> Outcome {
        let mut tokens = Vec::new();
        loop {
            let notice = tokio::time::timeout(WITHIN, self.notices.recv())
                .await
                .unwrap_or_else(|_| panic!("turn {turn} did not end within {WITHIN:?}"))
                .expect("the owner is alive");
            match notice {
                ChatNotice::Token { turn: t, text } if t == turn => tokens.push(text),
                ChatNotice::Reply { turn: t, reply } if t == turn => {
                    return Outcome {
                        tokens,
                        result: Ok(reply),
                    }
                }
                ChatNotice::Failed { turn: t, reason } if t == turn => {
                    return Outcome {
                        tokens,
                        result: Err(reason),
                    }
                }
                other => panic!("waiting for turn {turn}, got {other:?}"),
            }
        }
    }

    fn census_chats(&self) -> i64 {
        self.app.engine.shared().census.snapshot().chats
    }
}

fn text_of(outcome: &Outcome) -> &str {
    match &outcome.result {
        Ok(ModelReply::Text(text)) => text,
        other => panic!("expected a text reply, got {other:?}"),
    }
}

/// Fast retries, so that only a provider's `retry-after` takes noticeable time.
fn quick_retries(settings: &mut Settings, attempts: u32) {
    let retry = &mut settings.engine.openai.retry;
    retry.base_ms = 1;
    retry.max_ms = 2;
    retry.max_attempts = attempts;
    retry.jitter = false;
}

#[actix::test]
async fn tokens_stream_then_the_reply() {
    let mut h = Harness::start(AppOptions::default()).await;
    h.complete(1, "triage", "hi");
    let outcome = h.outcome(1).await;
    let text = text_of(&outcome);
    assert!(text.starts_with("Hello!"), "{text}");
    assert!(outcome.tokens.len() > 3, "{:?}", outcome.tokens);
    assert_eq!(outcome.tokens.concat(), text);
    assert_eq!(h.app.mock.stats().chat_requests, 1);
    assert_eq!(h.census_chats(), 1);
    assert!(h.app.engine.shared().health.problems().is_empty());
}

#[actix::test]
async fn a_tool_call_reply_is_assembled() {
    let mut h = Harness::start(AppOptions::default()).await;
    // Only the orders agent can look orders up: the emulator saw its tools.
    h.complete(7, "orders", "where is my order 1001?");
    let outcome = h.outcome(7).await;
    assert!(outcome.tokens.is_empty(), "{:?}", outcome.tokens);
    let Ok(ModelReply::ToolCalls(calls)) = outcome.result else {
        panic!("expected tool calls, got {:?}", outcome.result);
    };
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "lookup_order");
    assert_eq!(calls[0].arguments, r#"{"order_id":"1001"}"#);
    assert!(!calls[0].id.is_empty());
}

#[actix::test]
async fn a_429_is_retried_after_its_retry_after() {
    let mut h = Harness::start(AppOptions {
        // The first request is answered 429 with `retry-after-ms: 250`, the second succeeds.
        mock: MockOptions {
            fail_rate: 0.5,
            ..MockOptions::default()
        },
        tweak: |settings| quick_retries(settings, 3),
        ..AppOptions::default()
    })
    .await;
    let sent = Instant::now();
    h.complete(1, "triage", "hi");
    let outcome = h.outcome(1).await;
    assert!(text_of(&outcome).starts_with("Hello!"));
    // The backoff alone would have waited 1 ms.
    assert!(
        sent.elapsed() >= Duration::from_millis(250),
        "{:?}",
        sent.elapsed()
    );
    let stats = h.app.mock.stats();
    assert_eq!((stats.chat_requests, stats.chat_failures_injected), (2, 1));
}

#[actix::test]
async fn failures_past_the_budget_fail_the_turn() {
    let mut h = Harness::start(AppOptions {
        // Every request fails: 429, 500, 429, …
        mock: MockOptions {
            fail_rate: 1.0,
            ..MockOptions::default()
        },
        tweak: |settings| quick_retries(settings, 2),
        ..AppOptions::default()
    })
    .await;
    h.complete(1, "triage", "hi");
    let outcome = h.outcome(1).await;
    let reason = outcome.result.expect_err("the turn fails");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert!(outcome.tokens.is_empty());
    let stats = h.app.mock.stats();
    assert_eq!((stats.chat_requests, stats.chat_failures_injected), (3, 3));
    // Transient failures do not make the service unhealthy.
    assert!(h.app.engine.shared().health.problems().is_empty());
}

#[actix::test]
async fn a_refused_key_fails_at_once_and_degrades_health() {
    let mut h = Harness::start(AppOptions {
        api_key: "sk-invalid".into(),
        ..AppOptions::default()
    })
    .await;
    h.complete(1, "triage", "hi");
    let reason = h.outcome(1).await.result.expect_err("the turn fails");
    assert!(reason.contains("refused the API key (401)"), "{reason}");
    assert!(!reason.contains("sk-inval"), "{reason}");
    let problems = h.app.engine.shared().health.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    // Not retried: the emulator turned it away before counting it.
    h.complete(2, "triage", "hi");
    assert!(h.outcome(2).await.result.is_err());
    assert_eq!(h.app.mock.stats().chat_requests, 0);
}

#[actix::test]
async fn without_a_key_the_local_model_answers() {
    let mut h = Harness::start(AppOptions {
        tweak: |settings| settings.engine.openai.api_key = None,
        ..AppOptions::default()
    })
    .await;
    h.complete(1, "triage", "hi");
    let outcome = h.outcome(1).await;
    let text = text_of(&outcome);
    assert!(text.starts_with("Hello!"), "{text}");
    assert_eq!(outcome.tokens.concat(), text);
    assert!(outcome.tokens.len() > 3);
    h.complete(2, "orders", "where is my order 1001?");
    let outcome = h.outcome(2).await;
    assert!(
        matches!(&outcome.result, Ok(ModelReply::ToolCalls(calls)) if calls[0].name == "lookup_order"),
        "{outcome:?}"
    );
    h.complete(3, "nobody", "hi");
    let reason = h.outcome(3).await.result.expect_err("unknown agent");
    assert!(reason.contains("nobody"), "{reason}");
    assert_eq!(h.app.mock.stats().chat_requests, 0);

    // Once its owner lets go of it, the child stops.
    assert_eq!(h.census_chats(), 1);
    let Harness { app, chat, .. } = h;
    drop(chat);
    let deadline = Instant::now() + WITHIN;
    while app.engine.shared().census.snapshot().chats != 0 {
        assert!(
            Instant::now() < deadline,
            "the Chat actor outlived its owner's address"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix::test]
async fn a_new_turn_or_a_cancel_drops_the_old_turn() {
    let mut h = Harness::start(AppOptions {
        mock: MockOptions {
            latency_ms: 300,
            ..MockOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    // Turn 2 replaces turn 1 while its request waits on the emulator.
    h.complete(1, "triage", "hi");
    h.complete(2, "orders", "where is my order 1001?");
    let outcome = h.outcome(2).await;
    assert!(matches!(outcome.result, Ok(ModelReply::ToolCalls(_))));

    // Turn 3 is cancelled; long after its answer would have come, turn 4 runs alone.
    h.complete(3, "triage", "hi");
    h.chat.do_send(Cancel { turn: 3 });
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    h.complete(4, "triage", "hi");
    // A cancel for another turn than the running one is ignored.
    h.chat.do_send(Cancel { turn: 3 });
    assert!(text_of(&h.outcome(4).await).starts_with("Hello!"));
    // `outcome` refuses notices of other turns: none of turns 1 and 3 ever arrived.
    assert!(h.notices.try_recv().is_err());
}

/// Base URL of the misbehaving server of `odd_answers_are_judged`, for its settings tweak.
static ODD_BASE: OnceLock<String> = OnceLock::new();

/// Answers each request as its last message asks: the ways a server can go wrong.
async fn odd_server(body: web::Json<Value>, hits: web::Data<AtomicUsize>) -> HttpResponse {
    hits.fetch_add(1, Ordering::SeqCst);
    let chunk = |delta: Value| {
        format!(
            "data: {}\n\n",
            json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]})
        )
    };
    let sse = |body: String| {
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(body)
    };
    match body["messages"][1]["content"].as_str().unwrap_or_default() {
        // A compatible server that ignores `stream`.
        "json" => HttpResponse::Ok().json(json!({
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there."},
                         "finish_reason": "stop"}],
        })),
        // Text, then the body ends without a finish reason or `[DONE]`.
        "broken" => sse(chunk(json!({"role": "assistant"})) + &chunk(json!({"content": "Hel"}))),
        // An error frame before any text.
        "error" => sse(
            "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\",\
             \"param\":null,\"code\":null}}\n\n"
                .into(),
        ),
        // Out of credit: a 429 no retry fixes.
        "quota" => HttpResponse::TooManyRequests().json(json!({"error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}})),
        // The same from a compatible server whose `code` is a number.
        "quota-numeric" => HttpResponse::TooManyRequests().json(json!({"error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota", "param": null, "code": 429}})),
        // A numeric code on a plain rate limit: retried, and its message kept.
        "rate-numeric" => HttpResponse::TooManyRequests()
            .json(json!({"error": {"message": "Slow down, please", "code": 429}})),
        // Out of credit, said in an error frame of a stream, with a numeric code.
        "quota-frame" => sse(
            "data: {\"error\":{\"message\":\"You exceeded your current quota\",\
             \"type\":\"insufficient_quota\",\"param\":null,\"code\":429}}\n\n"
                .into(),
        ),
        // Five MiB of keep-alive comments.
        "huge" => sse(": padding padding padding padding padding padding\n".repeat(100_000)),
        other => HttpResponse::BadRequest().body(format!("unknown scenario {other:?}")),
    }
}

#[actix::test]
async fn odd_answers_are_judged() {
    let hits = web::Data::new(AtomicUsize::new(0));
    let data = hits.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/chat/completions", web::post().to(odd_server))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://{}/v1", server.addrs()[0]);
    actix_web::rt::spawn(server.run());
    ODD_BASE.set(base).unwrap();
    let mut h = Harness::start(AppOptions {
        tweak: |settings| {
            quick_retries(settings, 2);
            settings.engine.openai.base_url = ODD_BASE.get().unwrap().clone();
        },
        ..AppOptions::default()
    })
    .await;
    let mut run = scenarios(&mut h, &hits);

    let (outcome, requests) = run.next("json").await;
    assert_eq!(text_of(&outcome), "Hi there.");
    assert_eq!(outcome.tokens, vec!["Hi there."]);
    assert_eq!(requests, 1);

    // Text already went out: retrying would say it twice.
    let (outcome, requests) = run.next("broken").await;
    assert_eq!(outcome.tokens, vec!["Hel"]);
    let reason = outcome.result.expect_err("a broken stream fails the turn");
    assert!(reason.contains("ended before"), "{reason}");
    assert_eq!(requests, 1);

    let (outcome, requests) = run.next("error").await;
    let reason = outcome.result.expect_err("the server keeps failing");
    assert!(reason.contains("The server had an error"), "{reason}");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(requests, 3);

    let (outcome, requests) = run.next("quota").await;
    let reason = outcome.result.expect_err("out of quota");
    assert!(
        reason.contains("429") && reason.contains("quota"),
        "{reason}"
    );
    assert_eq!(requests, 1);

    // A numeric `code` neither hides the message nor the quota (issue 8, point 11).
    let (outcome, requests) = run.next("quota-numeric").await;
    let reason = outcome.result.expect_err("out of quota");
    assert!(
        reason.contains("429") && reason.contains("exceeded your current quota"),
        "{reason}"
    );
    assert_eq!(requests, 1, "a quota error is not retried");

    let (outcome, requests) = run.next("rate-numeric").await;
    let reason = outcome.result.expect_err("still limited");
    assert!(reason.contains("Slow down, please"), "{reason}");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(requests, 3);

    let (outcome, requests) = run.next("quota-frame").await;
    let reason = outcome.result.expect_err("out of quota");
    assert!(reason.contains("exceeded your current quota"), "{reason}");
    assert_eq!(requests, 1, "a quota error frame is not retried");

    let (outcome, requests) = run.next("huge").await;
    let reason = outcome.result.expect_err("over the body cap");
    assert!(reason.contains("larger than"), "{reason}");
    assert_eq!(requests, 1);
}

/// Scenarios of the odd server, one turn each.
struct Scenarios<'a> {
    harness: &'a mut Harness,
    hits: &'a AtomicUsize,
    turn: u64,
}

fn scenarios<'a>(harness: &'a mut Harness, hits: &'a AtomicUsize) -> Scenarios<'a> {
    Scenarios {
        harness,
        hits,
        turn: 0,
    }
}

impl Scenarios<'_> {
    /// What the next turn, asking for `scenario`, amounted to, and the requests it took.
    async fn next(&mut self, scenario: &str) -> (Outcome, usize) {
        self.turn += 1;
        let before = self.hits.load(Ordering::SeqCst);
        self.harness.complete(self.turn, "triage", scenario);
        let outcome = self.harness.outcome(self.turn).await;
        (outcome, self.hits.load(Ordering::SeqCst) - before)
    }
}
