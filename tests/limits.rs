//! Rate limits and admission (SPEC §8), end to end: per sender, per source IP, web-chat
//! messages per visitor and per IP, concurrent calls and concurrent conversations — each
//! refused the documented way and counted.

mod support;

use std::time::Duration;

use awc::ws::{Frame, Message};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use support::{spawn_app, AppOptions, TunnelProxy};
use switchboard::sim::twilio::{Event, LiveCall};

#[actix_web::test]
async fn a_sender_over_the_limit_gets_an_empty_answer_and_no_model_call() {
    let app = spawn_app(AppOptions {
        api_key: String::new(),
        tweak: |s| s.engine.limits.per_sender_per_minute = 2,
        ..AppOptions::default()
    })
    .await;
    let before = app
        .metric("switchboard_rate_limited_total{scope=\"sender\"}")
        .await;
    for (sid, expect_answer) in [("SML1", true), ("SML2", true), ("SML3", false)] {
        let (status, twiml) = app.sms(sid, "+14155550177", "What are your hours?").await;
        assert_eq!(status, 200);
        assert_eq!(twiml.contains("<Message>"), expect_answer, "{sid}: {twiml}");
    }
    // Another sender is unaffected.
    let (_, twiml) = app
        .sms("SML4", "+14155550178", "What are your hours?")
        .await;
    assert!(twiml.contains("<Message>"));
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns("+14155550177", 10)
        .await
        .expect("store readable");
    assert_eq!(turns.len(), 4, "the refused message reached no model");
    let after = app
        .metric("switchboard_rate_limited_total{scope=\"sender\"}")
        .await;
    assert!(after >= before + 1.0);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_client_over_the_ip_limit_gets_429_with_retry_after() {
    let app = spawn_app(AppOptions {
        tweak: |s| s.engine.limits.per_ip_per_second = 3,
        ..AppOptions::default()
    })
    .await;
    let client = awc::Client::default();
    let mut limited = None;
    for _ in 0..10 {
        let response = client
            .get(format!("{}/health", app.base))
            .send()
            .await
            .expect("answers");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the fourth request in a burst is limited");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after));
    // A proxied client is told apart by X-Forwarded-For (trusted from loopback only).
    let other = client
        .get(format!("{}/health", app.base))
        .insert_header(("X-Forwarded-For", "198.51.100.9"))
        .send()
        .await
        .expect("answers");
    assert_eq!(other.status(), 200);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_call_over_the_concurrency_limit_hears_all_lines_are_busy() {
    let app = spawn_app(AppOptions {
        tweak: |s| s.engine.limits.max_calls = 1,
        ..AppOptions::default()
    })
    .await;
    let mut first = LiveCall::dial(
        &app.base,
        None,
        "CA00000000000000000000000000000201",
        "+14155550101",
        "+18005550100",
    )
    .await
    .expect("first call connects");
    first
        .wait_for(|e| matches!(e, Event::Media { .. }), Duration::from_secs(5))
        .await
        .expect("first call is live");
    let (status, twiml) = app
        .post_twilio(
            "/twilio/voice",
            &[
                ("CallSid", "CA00000000000000000000000000000202"),
                ("From", "+14155550102"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(twiml.contains("all of our lines are busy"), "{twiml}");
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    assert!(!twiml.contains("<Stream"), "{twiml}");
    first.hang_up().await.expect("hang up");
    app.expect_idle().await;
    // The line is free again.
    let (_, twiml) = app
        .post_twilio(
            "/twilio/voice",
            &[
                ("CallSid", "CA00000000000000000000000000000203"),
                ("From", "+14155550102"),
            ],
        )
        .await;
    assert!(twiml.contains("<Stream"), "{twiml}");
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_conversation_over_the_concurrency_limit_is_told_to_retry() {
    let app = spawn_app(AppOptions {
        api_key: String::new(),
        tweak: |s| s.engine.limits.max_conversations = 1,
        ..AppOptions::default()
    })
    .await;
    let (_, twiml) = app
        .sms("SMC1", "+14155550181", "What are your hours?")
        .await;
    assert!(twiml.contains("<Message>"), "{twiml}");
    let (status, twiml) = app
        .sms("SMC2", "+14155550182", "What are your hours?")
        .await;
    assert_eq!(status, 200);
    assert!(twiml.contains("very busy"), "{twiml}");
    app.handle.stop(false).await;
}

/// A web-chat visitor on one socket.
struct Visitor {
    socket: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
    /// `done` answers seen.
    answers: usize,
    /// Error frames seen, each with its `retry_after_ms`.
    refusals: Vec<Option<u64>>,
}

impl Visitor {
    async fn connect(ws_base: &str, id: &str) -> Visitor {
        let (_response, socket) = awc::Client::new()
            .ws(format!("{ws_base}/chat/ws?id={id}"))
            .connect()
            .await
            .expect("chat socket opens");
        Visitor {
            socket,
            answers: 0,
            refusals: Vec::new(),
        }
    }

    /// Sends `n` messages back to back, then a ping; returns once the pong is back. The
    /// socket's frames are handled in order, so by then the server has judged all of them.
    async fn burst(&mut self, n: usize) {
        for i in 0..n {
            let message = serde_json::json!({"type": "message", "text": format!("What are your hours? ({i})")});
            self.socket
                .send(Message::Text(message.to_string().into()))
                .await
                .expect("sent");
        }
        self.socket
            .send(Message::Ping("judged?".into()))
            .await
            .expect("ping sent");
        while !matches!(self.next().await, Frame::Pong(_)) {}
    }

    /// Reads until `answers` answers and `refusals` refusals have been seen in all.
    async fn until(&mut self, answers: usize, refusals: usize) {
        while self.answers < answers || self.refusals.len() < refusals {
            self.next().await;
        }
        assert_eq!(
            (self.answers, self.refusals.len()),
            (answers, refusals),
            "{:?}",
            self.refusals
        );
    }

    async fn next(&mut self) -> Frame {
        let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame");
        if let Frame::Text(bytes) = &frame {
            let event: Value = serde_json::from_slice(bytes).expect("JSON frame");
            match event["type"].as_str() {
                Some("done") => self.answers += 1,
                Some("error") => {
                    let message = event["message"].as_str().unwrap_or_default();
                    assert!(message.contains("wait a moment"), "{event}");
                    self.refusals.push(event["retry_after_ms"].as_u64());
                }
                _ => {}
            }
        }
        frame
    }
}

#[actix_web::test]
async fn web_chat_is_limited_per_visitor_and_per_address() {
    // 2 a minute per visitor, 8 per address: nothing is given back during the test.
    let app = spawn_app(AppOptions {
        api_key: String::new(),
        tweak: |s| s.engine.limits.web_messages_per_minute = 2,
        ..AppOptions::default()
    })
    .await;
    let session = "switchboard_rate_limited_total{scope=\"web_session\"}";
    let address = "switchboard_rate_limited_total{scope=\"web_ip\"}";
    let (session_before, address_before) = (app.metric(session).await, app.metric(address).await);
    // Every visitor comes through a forwarding proxy, from one internet address.
    let tunnel = TunnelProxy::start(&app.base, "chat.example.test", "203.0.113.7").await;

    // Every message is judged when it arrives; the answers are awaited only after the last
    // judgement below, so the test takes milliseconds of the limits' time, far less than
    // the 7.5 s in which the address earns one message back.
    //
    // A burst of 10 on one socket: 2 are let through, 8 refused at once.
    let mut first = Visitor::connect(&tunnel.ws_base(), "web-limit-0001").await;
    first.burst(10).await;
    // Three more visitors from the same address use up its allowance (4 × 2)…
    let mut others = Vec::new();
    for id in ["web-limit-0002", "web-limit-0003", "web-limit-0004"] {
        let mut visitor = Visitor::connect(&tunnel.ws_base(), id).await;
        visitor.burst(2).await;
        others.push(visitor);
    }
    // …so a new visitor's very first message from it is refused by the address limit.
    let mut late = Visitor::connect(&tunnel.ws_base(), "web-limit-0005").await;
    late.burst(1).await;

    first.until(2, 8).await;
    assert!(
        first
            .refusals
            .iter()
            .all(|wait| wait.is_some_and(|ms| ms > 0 && ms <= 60_000)),
        "{:?}",
        first.refusals
    );
    for visitor in &mut others {
        visitor.until(2, 0).await;
    }
    late.until(0, 1).await;
    // The refused messages reached no model and were not kept as turns.
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns("web:web-limit-0001", 50)
        .await
        .expect("store readable");
    assert_eq!(turns.len(), 4, "{turns:?}");
    assert!(app.metric(session).await >= session_before + 8.0);
    assert!(app.metric(address).await >= address_before + 1.0);

    // The same visitor from another address is answered: the limit follows the address.
    let elsewhere = TunnelProxy::start(&app.base, "chat.example.test", "198.51.100.9").await;
    let mut moved = Visitor::connect(&elsewhere.ws_base(), "web-limit-0005").await;
    moved.burst(1).await;
    moved.until(1, 0).await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_node_on_one_thread_of_each_kind_serves_health_and_text_turns() {
    // `server.threads = 1`: one HTTP worker, one arbiter for the conversations.
    let app = spawn_app(AppOptions {
        api_key: String::new(),
        tweak: |s| s.engine.server.threads = 1,
        ..AppOptions::default()
    })
    .await;
    assert_eq!(app.engine.shared().config.server.threads, 1);
    let health = awc::Client::default()
        .get(format!("{}/health", app.base))
        .send()
        .await
        .expect("health answers");
    assert_eq!(health.status(), 200);
    for (sid, from) in [("SMT1", "+14155550181"), ("SMT2", "+14155550182")] {
        let (status, twiml) = app.sms(sid, from, "What are your hours?").await;
        assert_eq!(status, 200);
        assert!(twiml.contains("<Message>"), "{sid}: {twiml}");
    }
    app.handle.stop(false).await;
}
