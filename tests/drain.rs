//! Graceful drain, with the real binary as a separate process: SIGTERM arrives while a
//! call is live and an SMS turn is waiting for a slow model. `/health` turns `503 draining`
//! at once, a new call hears the busy TwiML, the SMS is answered, the call hears the goodbye
//! and is closed, the store is flushed, and the process exits 0.

mod support;

use std::time::{Duration, Instant};

use actors::domain::transcript::Role;
use actors::store::{SledStore, ThreadStore};
use support::process::ServerProcess;
use support::twiml_messages;
use switchboard::sim::mock_openai::{MockOptions, MockServer};
use switchboard::sim::twilio::{Event, LiveCall};

/// The customer of order 1001 in `config/catalog/orders.json`.
const CUSTOMER: &str = "+14155550101";
/// The model answers every request this much later: the SMS turn is still in flight when
/// the signal arrives.
const MODEL_LATENCY_MS: u64 = 1500;
const DRAIN_SECS: u64 = 8;

async fn sms(base: &str, sid: &str, body: &str) -> String {
    let mut response = awc::Client::default()
        .post(format!("{base}/twilio/messaging"))
        .timeout(Duration::from_secs(30))
        .send_form(&[
            ("MessageSid", sid),
            ("From", CUSTOMER),
            ("To", "+18005550100"),
            ("Body", body),
        ])
        .await
        .expect("the messaging webhook answers");
    assert_eq!(response.status(), 200);
    let body = response.body().await.expect("body");
    twiml_messages(&String::from_utf8_lossy(&body)).join(" ")
}

#[actix_web::test]
async fn sigterm_drains_live_calls_and_turns_then_exits_zero() {
    let mock = MockServer::start(
        "127.0.0.1:0",
        MockOptions {
            latency_ms: MODEL_LATENCY_MS,
            ..MockOptions::default()
        },
    )
    .expect("emulator starts");
    // A configuration folder with one key: the rest is built in.
    let config = tempfile::tempdir().expect("temp dir");
    let config_file = config.path().join("switchboard.toml");
    std::fs::write(
        &config_file,
        format!("[server]\ndrain_secs = {DRAIN_SECS}\n"),
    )
    .expect("config written");
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(
        config.path(),
        &[
            "--config",
            config_file.to_str().expect("utf-8 path"),
            "--data-dir",
            data.path().to_str().expect("utf-8 path"),
        ],
        |command| {
            command
                .env("OPENAI_API_KEY", "sk-test")
                .env("OPENAI_BASE_URL", mock.base_url());
        },
    );
    server.wait_healthy().await;

    // A live call, greeted.
    let mut call = LiveCall::dial(&server.base, None, "CAdrain0001", CUSTOMER, "+18005550100")
        .await
        .expect("the call connects");
    call.wait_for(
        |e| matches!(e, Event::Media { .. }),
        Duration::from_secs(15),
    )
    .await
    .expect("the greeting");

    // An SMS whose answer waits for the slow model.
    let base = server.base.clone();
    let in_flight =
        actix_web::rt::spawn(
            async move { sms(&base, "SMdrain1", "Hi, where is my order 1001?").await },
        );
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.stats().chat_requests == 0 {
        assert!(Instant::now() < deadline, "the SMS never reached the model");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }

    server.signal("TERM");

    // The load balancer is told at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    let health = loop {
        match server.health().await {
            Some((503, body)) => break body,
            _ => {
                assert!(Instant::now() < deadline, "/health never turned 503");
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let health: serde_json::Value = serde_json::from_str(&health).expect("JSON health");
    assert_eq!(health["status"], "draining");

    // A new call hears that every line is busy.
    let mut response = awc::Client::default()
        .post(format!("{}/twilio/voice", server.base))
        .send_form(&[
            ("CallSid", "CAdrain0002"),
            ("From", "+14155550199"),
            ("To", "+18005550100"),
        ])
        .await
        .expect("the voice webhook answers");
    assert_eq!(response.status(), 200);
    let twiml = String::from_utf8_lossy(&response.body().await.expect("body")).into_owned();
    assert!(twiml.contains("busy"), "{twiml}");
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    assert!(!twiml.contains("<Connect"), "{twiml}");

    // A new text cannot be answered before the drain ends (messaging.deadline_ms is longer
    // than what is left of it): it is refused as busy, without a model call.
    let chat_requests = mock.stats().chat_requests;
    let refused = sms(&server.base, "SMdrain2", "And my other order?").await;
    assert!(refused.contains("busy"), "{refused}");
    assert_eq!(mock.stats().chat_requests, chat_requests);

    // The SMS in flight is answered.
    let answer = in_flight.await.expect("the SMS task");
    assert!(answer.contains("shipped"), "{answer}");

    // The call hears the goodbye prompt, then the server hangs up.
    let goodbye = switchboard::defaults::built_in("goodbye.wav")
        .expect("the goodbye prompt")
        .ulaw()
        .len();
    call.wait_for(
        |e| matches!(e, Event::Media { bytes, .. } if *bytes == goodbye),
        Duration::from_secs(DRAIN_SECS + 5),
    )
    .await
    .expect("the goodbye prompt is played");
    let closed = call
        .wait_for(
            |e| matches!(e, Event::Closed { .. }),
            Duration::from_secs(DRAIN_SECS + 5),
        )
        .await
        .expect("the server hangs up");
    assert_eq!(closed, Event::Closed { code: Some(1000) });

    let status = server.wait_exit(Duration::from_secs(DRAIN_SECS + 10)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");

    // Flushed on the way out: the answer is on disk.
    let store = SledStore::open(data.path()).expect("store reopens");
    let turns = store.recent_turns(CUSTOMER, 10).await.expect("turns");
    assert!(
        turns
            .iter()
            .any(|t| t.role == Role::Assistant && t.text.contains("shipped")),
        "{turns:?}"
    );
    mock.stop().await;
}

#[actix_web::test]
async fn an_idle_server_exits_zero_at_once_on_sigint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(dir.path(), &[], |_| {});
    server.wait_healthy().await;
    server.signal("INT");
    // Nothing to wait for: well within the default 30 s drain.
    let status = server.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}
