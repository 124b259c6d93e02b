//! Model faults (SPEC §8, §12): a provider that fails every request ends a text turn with
//! the documented apology after its retries, and never stalls anyone else — a phone call
//! placed meanwhile is greeted at once.

mod support;

use std::time::{Duration, Instant};

use support::{spawn_app, AppOptions};
use switchboard::sim::mock_openai::MockOptions;
use switchboard::sim::twilio::{Event, LiveCall};

#[actix_web::test]
async fn a_chat_provider_outage_ends_in_an_apology_and_stalls_no_one_else() {
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            fail_rate: 1.0,
            ..MockOptions::default()
        },
        tweak: |s| {
            s.engine.openai.retry.max_attempts = 3;
            s.engine.openai.retry.base_ms = 300;
        },
        ..AppOptions::default()
    })
    .await;
    let base = app.base.clone();
    let texting = actix_web::rt::spawn(async move {
        let started = Instant::now();
        let mut response = awc::Client::default()
            .post(format!("{base}/twilio/messaging"))
            .timeout(Duration::from_secs(15))
            .send_form(&[
                ("MessageSid", "SM600"),
                ("From", "+14155550101"),
                ("To", "+18005550100"),
                ("Body", "where is my order 1001?"),
            ])
            .await
            .expect("webhook answers");
        let body = response.body().await.expect("body");
        (
            started.elapsed(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    });

    // While that conversation waits out the provider's 429/500s, a call is served.
    let mut call = LiveCall::dial(
        &app.base,
        None,
        "CA00000000000000000000000000000601",
        "+14155550102",
        "+18005550100",
    )
    .await
    .expect("call connects");
    call.wait_for(|e| matches!(e, Event::Media { .. }), Duration::from_secs(5))
        .await
        .expect("the call is greeted during the chat outage");

    let (elapsed, twiml) = texting.await.expect("joined");
    assert!(twiml.contains("Sorry"), "the documented apology: {twiml}");
    let stats = app.mock.stats();
    assert_eq!(
        stats.chat_requests, 4,
        "one try and three retries: {stats:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "within the inline deadline: {elapsed:?}"
    );
    call.hang_up().await.expect("hang up");
    app.handle.stop(false).await;
}
