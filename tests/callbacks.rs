//! Call backs agents promise (`schedule_callback`, issue 10), end to end: on a call the
//! booking agent placed, the model promises a call back; it is kept in the store (visible on
//! `/actors`), and when it is due — the scheduler's time is injected, nothing waits — it is
//! placed through the same path as `POST /calls` (the simulated Twilio's Calls API), once.
//! With PostgreSQL: a promise kept by one node is placed once by the cluster, even when the
//! node that kept it has stopped and two nodes look for due calls.

mod support;

use std::time::Duration;

use actors::clock::wall_clock_ms;
use support::{script, spawn_app, AppOptions, TestApp};
use switchboard::sim::mock_openai::MockOptions;
use switchboard::sim::twilio::api::CallsApi;

const TOKEN: &str = "twilio-token";
const OUR_NUMBER: &str = "+18005550100";
const CUSTOMER: &str = "+14155550101";
const SECOND: Duration = Duration::from_secs(1);
const HOUR_MS: u64 = 3_600_000;

fn with_number(settings: &mut switchboard::config::Settings) {
    settings.engine.twilio.phone_number = Some(OUR_NUMBER.into());
}

fn promising_model() -> MockOptions {
    MockOptions {
        script: script(
            r#"[{"say": "Hi, it's Northwind Cycles about your fitting."},
                {"call": {"name": "schedule_callback", "arguments": {"when": "in 2 hours", "reason": "the e-bike quote"}}},
                {"say": "Done, we will call you back in two hours."}]"#,
        ),
        ..MockOptions::default()
    }
}

async fn app_with(api: &CallsApi, database_url: Option<String>) -> TestApp {
    spawn_app(AppOptions {
        mock: promising_model(),
        auth_token: Some(TOKEN.into()),
        account_sid: Some(api.account_sid().into()),
        twilio_rest: Some(api.base.clone()),
        tweak: with_number,
        database_url,
        ..AppOptions::default()
    })
    .await
}

/// `/actors` as JSON, from this machine.
async fn actors_json(app: &TestApp) -> serde_json::Value {
    let mut response = awc::Client::default()
        .get(format!("{}/actors", app.base))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 200);
    response.json().limit(1 << 20).await.expect("JSON")
}

/// Places a call with `POST /calls`, answers it, and lets the customer ask for a call back:
/// the model promises one.
async fn a_call_with_a_promise(app: &TestApp, api: &mut CallsApi) {
    let mut response = awc::Client::default()
        .post(format!("{}/calls", app.base))
        .send_json(
            &serde_json::json!({"to": CUSTOMER, "agent": "booking", "reason": "your fitting"}),
        )
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 202);
    let _ = response.body().await;
    let placed = api.next_call(5 * SECOND).await.expect("created");
    let mut call = placed.answer().await.expect("the stream opens");
    support::voice::greeting_played_out(&mut call).await;
    support::voice::caller_turn_answered(app, &mut call).await;
    app.wait_for_mock("the promise's result", 10 * SECOND, |s| {
        s.function_outputs >= 1
    })
    .await;
    call.hang_up().await.expect("hang up");
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("no actor left");
}

#[actix_web::test]
async fn a_promised_call_back_is_kept_shown_and_placed_once_when_due() {
    let mut api = CallsApi::start(TOKEN, &[]).expect("simulated Twilio starts");
    let app = app_with(&api, None).await;
    let before = wall_clock_ms();
    a_call_with_a_promise(&app, &mut api).await;

    let listed = actors_json(&app).await;
    let promised = &listed["scheduled_calls"][0];
    assert_eq!(promised["state"], "pending", "{listed}");
    assert_eq!(promised["agent"], "booking");
    assert_eq!(promised["reason"], "the e-bike quote");
    assert_ne!(promised["to"], CUSTOMER, "the number is masked");
    let due = promised["due_at_ms"].as_u64().expect("due");
    assert!(due >= before + 2 * HOUR_MS, "{due}");

    // Not due yet: nothing is placed.
    let pass = app.engine.place_due_calls(due - 1).await.expect("a pass");
    assert!(pass.placed.is_empty(), "{pass:?}");
    assert!(api.try_next_call().is_none());

    // Due: placed once, through the Calls API, with the agent that promised it.
    let pass = app.engine.place_due_calls(due).await.expect("a pass");
    assert_eq!(pass.placed.len(), 1, "{pass:?}");
    let back = api
        .next_call(5 * SECOND)
        .await
        .expect("the call back is created");
    assert_eq!(back.call_sid, pass.placed[0]);
    assert_eq!(back.field("To"), Some(CUSTOMER));
    assert_eq!(back.field("MachineDetection"), Some("DetectMessageEnd"));
    let again = app
        .engine
        .place_due_calls(due + HOUR_MS)
        .await
        .expect("a pass");
    assert!(again.placed.is_empty(), "placed once: {again:?}");
    assert!(api.try_next_call().is_none());

    let mut call = back.answer().await.expect("the customer picks up");
    support::voice::greeting_played_out(&mut call).await;
    let instructions = app
        .mock
        .stats()
        .last_session
        .as_ref()
        .and_then(|s| s["instructions"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(instructions.contains("the e-bike quote"), "{instructions}");
    call.hang_up().await.expect("hang up");
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("no actor left");

    let listed = actors_json(&app).await;
    let placed = &listed["scheduled_calls"][0];
    assert_eq!(placed["state"], "placed", "{listed}");
    assert_eq!(placed["call_sid"], back.call_sid.as_str());
    app.handle.stop(false).await;
    api.stop().await;
}

/// A PostgreSQL URL on a schema of this test's own, or `None` (skipped, not under CI).
async fn database() -> Option<(String, String, String)> {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "sb_callbacks_{}_{:x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let made = async {
        let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await?;
        actix_web::rt::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
    }
    .await;
    if let Err(err) = made {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but PostgreSQL is unreachable: {err}"
        );
        eprintln!("skipped: PostgreSQL not reachable ({err}); set TEST_DATABASE_URL");
        return None;
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    Some((base, schema, url))
}

async fn drop_schema(base: &str, schema: &str) {
    if let Ok((client, connection)) = tokio_postgres::connect(base, tokio_postgres::NoTls).await {
        actix_web::rt::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}

#[actix_web::test]
async fn a_promise_outlives_its_node_and_the_cluster_places_it_once() {
    let Some((base, schema, url)) = database().await else {
        return;
    };
    let mut api = CallsApi::start(TOKEN, &[]).expect("simulated Twilio starts");
    let first = app_with(&api, Some(url.clone())).await;
    a_call_with_a_promise(&first, &mut api).await;
    let due = actors_json(&first).await["scheduled_calls"][0]["due_at_ms"]
        .as_u64()
        .expect("kept");
    // The node that kept it stops; another (and a restarted one) take over.
    first.handle.stop(false).await;
    let second = app_with(&api, Some(url.clone())).await;
    let third = app_with(&api, Some(url)).await;
    let (a, b) = futures_util::future::join(
        second.engine.place_due_calls(due),
        third.engine.place_due_calls(due),
    )
    .await;
    let placed = a.expect("a pass").placed.len() + b.expect("a pass").placed.len();
    assert_eq!(placed, 1, "placed once by the cluster");
    let back = api.next_call(5 * SECOND).await.expect("created");
    assert_eq!(back.field("To"), Some(CUSTOMER));
    assert!(api.try_next_call().is_none());
    let later = first
        .engine
        .place_due_calls(due + HOUR_MS)
        .await
        .expect("a pass");
    assert!(later.placed.is_empty());
    let listed = actors_json(&third).await;
    assert_eq!(listed["scheduled_calls"][0]["state"], "placed", "{listed}");
    second.handle.stop(false).await;
    third.handle.stop(false).await;
    api.stop().await;
    drop_schema(&base, &schema).await;
}
