//! `/metrics` carries every series SPEC §10 names, measured inside the engine, after a
//! real call and a real message went through; and it is for operators only.

mod support;

use std::time::Duration;

use support::{spawn_app, AppOptions};
use switchboard::sim::twilio::{sine_ulaw, Event, LiveCall};

#[actix_web::test]
async fn metrics_carry_the_spec_series_after_real_traffic() {
    let app = spawn_app(AppOptions::default()).await;
    let mut call = LiveCall::dial(
        &app.base,
        None,
        "CA00000000000000000000000000000701",
        "+14155550101",
        "+18005550100",
    )
    .await
    .expect("call connects");
    call.wait_for(
        |e| matches!(e, Event::MarkEchoed { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("greeting plays");
    call.say(&sine_ulaw(320.0, 1000, 0.6)).await;
    app.wait_for_mock("the caller's turn", Duration::from_secs(10), |s| {
        s.responses_started >= 2
    })
    .await;
    call.wait_for(
        |e| matches!(e, Event::MarkEchoed { flushed: false, .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("the answer plays");
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    app.post_twilio(
        "/twilio/messaging",
        &[
            ("MessageSid", "SM701"),
            ("From", "+14155550101"),
            ("To", "+18005550100"),
            ("Body", "hours?"),
        ],
    )
    .await;

    let mut response = awc::Client::default()
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body = String::from_utf8_lossy(&response.body().await.expect("body")).into_owned();
    for series in [
        "switchboard_calls_active ",
        "switchboard_calls_total{outcome=\"completed\"}",
        "switchboard_conversations_active ",
        "switchboard_webhooks_total{route=\"/twilio/voice\",status=\"200\"}",
        "switchboard_webhooks_total{route=\"/twilio/messaging\",status=\"200\"}",
        "switchboard_rate_limited_total",
        "switchboard_model_reconnects_total ",
        "switchboard_tool_calls_total",
        "switchboard_bad_frames_total",
        "switchboard_hop_latency_seconds_bucket{direction=\"inbound\"",
        "switchboard_hop_latency_seconds_bucket{direction=\"outbound\"",
        "switchboard_turn_latency_seconds_count ",
    ] {
        assert!(body.contains(series), "/metrics lacks {series}");
    }
    app.handle.stop(false).await;
}
