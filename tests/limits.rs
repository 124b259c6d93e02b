//! Rate limits and admission (SPEC §8), end to end: per sender, per source IP, concurrent
//! calls and concurrent conversations — each refused the documented way and counted.

mod support;

use std::time::Duration;

use support::{spawn_app, AppOptions, TestApp};
use switchboard::sim::twilio::{Event, LiveCall};

async fn sms(app: &TestApp, sid: &str, from: &str, body: &str) -> (u16, String) {
    app.post_twilio(
        "/twilio/messaging",
        &[
            ("MessageSid", sid),
            ("From", from),
            ("To", "+18005550100"),
            ("Body", body),
        ],
    )
    .await
}

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
        let (status, twiml) = sms(&app, sid, "+14155550177", "What are your hours?").await;
        assert_eq!(status, 200);
        assert_eq!(twiml.contains("<Message>"), expect_answer, "{sid}: {twiml}");
    }
    // Another sender is unaffected.
    let (_, twiml) = sms(&app, "SML4", "+14155550178", "What are your hours?").await;
    assert!(twiml.contains("<Message>"));
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns("+14155550177", 10)
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
    let (_, twiml) = sms(&app, "SMC1", "+14155550181", "What are your hours?").await;
    assert!(twiml.contains("<Message>"), "{twiml}");
    let (status, twiml) = sms(&app, "SMC2", "+14155550182", "What are your hours?").await;
    assert_eq!(status, 200);
    assert!(twiml.contains("very busy"), "{twiml}");
    app.handle.stop(false).await;
}
