//! End-to-end voice calls: a simulated Twilio (real HTTP webhook, real Media Streams socket,
//! marks acknowledged at playback pace) calls the real server, which talks to the product's
//! OpenAI emulator over a real Realtime WebSocket.

mod support;

use std::time::Duration;

use actors::config::AudioMode;
use actors::domain::agents::ToolConfig;
use actors::domain::records::CallOutcome;
use actors::domain::transcript::Role;
use support::voice::{
    caller_turn_answered, greeting_played_out, is_media, is_played_mark, speech, wait_played_out,
};
use support::{script, spawn_app, AppOptions, TestApp};
use switchboard::config::Settings;
use switchboard::sim::mock_openai::MockOptions;
use switchboard::sim::twilio::{Event, LiveCall};

const SECOND: Duration = Duration::from_secs(1);
/// The customer of order 1001 in `config/catalog/orders.json`.
const FROM: &str = "+14155550101";
const TO: &str = "+18005550100";

async fn dial(app: &TestApp, call_sid: &str) -> LiveCall {
    LiveCall::dial(&app.base, None, call_sid, FROM, TO)
        .await
        .expect("the call connects")
}

const CONVERSATION: &str = r#"[
  {"say": "Thanks for calling the demo store. How can I help?"},
  {"say": "Of course. Let me tell you everything about our store, our opening hours, our products and our generous returns policy, which takes a while to explain."},
  {"call": {"name": "lookup_order", "arguments": {"order_id": "1001"}}}
]"#;

#[actix_web::test]
async fn a_call_is_greeted_answered_interrupted_and_uses_a_tool_in_pcmu() {
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(CONVERSATION),
            ..MockOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    let mut call = dial(&app, "CA00000000000000000000000000000001").await;
    assert_eq!(
        call.custom_parameters().get("From").map(String::as_str),
        Some(FROM)
    );

    // The greeting streams with marks, and the marks come back as it plays.
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("greeting audio");
    call.wait_for(is_played_mark, 5 * SECOND)
        .await
        .expect("greeting marks acknowledged");
    wait_played_out(&mut call, 10 * SECOND).await;
    let session = app.mock.stats().last_session.expect("session configured");
    assert_eq!(session["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(session["audio"]["output"]["format"]["type"], "audio/pcmu");
    assert!(session["instructions"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(session["tools"].as_array().is_some_and(|t| !t.is_empty()));

    // The caller speaks; the long answer starts streaming.
    caller_turn_answered(&app, &mut call).await;
    call.wait_for(is_played_mark, 5 * SECOND)
        .await
        .expect("part of the answer played");
    call.drain();

    // Barge-in: the caller talks over the answer → Twilio `clear` + a truncation at the
    // acknowledged position, which the emulator accepts (never past the audio it sent).
    call.say(&speech()).await;
    call.wait_for(|e| matches!(e, Event::Clear), 5 * SECOND)
        .await
        .expect("clear on barge-in");
    let stats = app
        .wait_for_mock("a truncation", 5 * SECOND, |s| !s.truncations.is_empty())
        .await;
    let truncation = &stats.truncations[0];
    assert!(truncation.accepted, "{truncation:?}");
    assert!(truncation.audio_end_ms > 0, "{truncation:?}");
    assert!(
        truncation.audio_end_ms <= truncation.item_audio_ms,
        "{truncation:?}"
    );
    let report = call.snapshot();
    assert!(report.marks_flushed_by_clear > 0, "{report:?}");

    // After the interruption the model calls lookup_order; its output goes back and the
    // answer is spoken.
    app.wait_for_mock("the tool output", 10 * SECOND, |s| {
        s.function_calls >= 1 && s.function_outputs >= 1 && s.responses_started >= 4
    })
    .await;
    call.drain();
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("tool answer audio");
    wait_played_out(&mut call, 30 * SECOND).await;

    call.hang_up().await.expect("hang up");
    app.expect_idle().await;

    let record = app.call_record("CA00000000000000000000000000000001").await;
    assert_eq!(record.outcome, Some(CallOutcome::Completed));
    assert!(record.tools_used.iter().any(|t| t == "lookup_order"));
    assert_eq!(record.customer.as_deref(), Some(FROM));
    let assistant: Vec<&str> = record
        .transcript
        .turns()
        .iter()
        .filter(|t| t.role == Role::Assistant)
        .map(|t| t.text.as_str())
        .collect();
    assert!(
        assistant
            .first()
            .is_some_and(|t| t.starts_with("Thanks for calling")),
        "{assistant:?}"
    );
    // The answer after the tool speaks from its output (order 1001 has shipped).
    assert!(
        assistant.last().is_some_and(|t| t.contains("shipped")),
        "{assistant:?}"
    );
    // The interrupted answer is kept only as far as the caller heard it.
    let long = "Of course. Let me tell you everything about our store";
    let cut = assistant
        .iter()
        .find(|t| t.ends_with('…'))
        .unwrap_or_else(|| panic!("interrupted answer recorded: {assistant:?}"));
    assert!(long.starts_with(cut.trim_end_matches('…')), "{cut}");
    let customer = app.customer_record(FROM).await;
    assert_eq!(customer.calls.len(), 1);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn pcm24k_mode_transcodes_both_ways() {
    let app = spawn_app(AppOptions {
        audio_mode: AudioMode::Pcm24k,
        ..AppOptions::default()
    })
    .await;
    let mut call = dial(&app, "CA00000000000000000000000000000002").await;
    greeting_played_out(&mut call).await;
    let session = app.mock.stats().last_session.expect("session configured");
    assert_eq!(session["audio"]["input"]["format"]["type"], "audio/pcm");
    assert_eq!(session["audio"]["input"]["format"]["rate"], 24000);

    let stats = caller_turn_answered(&app, &mut call).await;
    // The emulator heard the caller's second of speech, converted to 24 kHz PCM.
    assert!(stats.audio_ms_received >= 1000, "{stats:?}");
    let report = call.hang_up().await.expect("hang up");
    assert!(report.audio_received_ms > 500, "{report:?}");
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_dropped_model_socket_is_reopened_with_the_history_while_the_call_stays_up() {
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            // A short greeting, so it has played out before the socket drops.
            script: script(r#"[{"say": "Hi there."}]"#),
            drop_after_ms: Some(2500),
            drop_limit: Some(1),
            ..MockOptions::default()
        },
        reconnect_base_ms: 2000,
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000003";
    let mut call = dial(&app, call_sid).await;
    greeting_played_out(&mut call).await;

    // The emulator drops the socket; the caller hears the hold prompt (marks-free 200 ms
    // chunks) while the supervisor reconnects after its backoff.
    call.wait_for(
        |e| matches!(e, Event::Media { bytes: 1600, .. }),
        5 * SECOND,
    )
    .await
    .expect("hold audio while reconnecting");
    let stats = app
        .wait_for_mock("a second socket given the history", 5 * SECOND, |s| {
            s.connections >= 2 && s.session_updates >= 2 && s.client_items_created >= 1
        })
        .await;
    assert!(
        stats.client_items_created >= 1,
        "history replayed as text items: {stats:?}"
    );

    // The call never noticed more than a pause: the next turn is answered.
    caller_turn_answered(&app, &mut call).await;
    let report = call.hang_up().await.expect("hang up");
    assert!(report.close_code.is_none_or(|c| c == 1000), "{report:?}");
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.model_reconnects, 1);
    assert_eq!(record.outcome, Some(CallOutcome::Completed));
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn the_session_is_rotated_before_the_cap_without_dropping_the_call() {
    let app = spawn_app(AppOptions {
        session_cap_secs: 2,
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000004";
    let mut call = dial(&app, call_sid).await;
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("greeting audio");
    let stats = app
        .wait_for_mock("a rotated session", 8 * SECOND, |s| {
            s.connections >= 2 && s.session_updates >= 2
        })
        .await;
    assert!(stats.client_items_created >= 1, "{stats:?}");
    caller_turn_answered(&app, &mut call).await;
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.model_reconnects, 0, "a rotation is not a failure");
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_refused_key_escalates_to_the_human_and_degrades_health() {
    let app = spawn_app(AppOptions {
        api_key: "sk-invalid".into(),
        human_number: Some("+15555550100".into()),
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000005";
    let mut call = dial(&app, call_sid).await;
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 5 * SECOND)
        .await
        .expect("the stream is closed for the transfer");
    let (status, twiml) = app
        .post_twilio(
            "/twilio/voice/next",
            &[("CallSid", call_sid), ("From", FROM)],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains(r#">+15555550100</Number></Dial>"#) && twiml.contains(r#"timeout="20">"#),
        "{twiml}"
    );
    let health = awc::Client::default()
        .get(format!("{}/health", app.base))
        .send()
        .await
        .expect("health answers");
    assert_eq!(health.status(), 503);
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn without_a_model_or_a_human_the_caller_hears_an_apology_then_the_menu() {
    let app = spawn_app(AppOptions {
        api_key: "sk-invalid".into(),
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000006";
    let mut call = dial(&app, call_sid).await;
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("apology audio");
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 15 * SECOND)
        .await
        .expect("the stream ends after the apology played");
    let report = call.snapshot();
    assert!(report.audio_received_ms >= 3000, "{report:?}");
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Fallback));
    // Not hung up on: Twilio asks the `<Connect action>` and gets the key-press menu,
    // without the assistant it could not reach (issue 9).
    let (_, twiml) = app
        .post_twilio("/twilio/voice/next", &[("CallSid", call_sid)])
        .await;
    assert!(twiml.contains("<Gather"), "{twiml}");
    assert!(twiml.contains("fallback=1"), "{twiml}");
    assert!(!twiml.contains("<Hangup/>"), "{twiml}");
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_second_socket_for_the_same_call_replaces_the_first() {
    let app = spawn_app(AppOptions::default()).await;
    let call_sid = "CA00000000000000000000000000000007";
    let mut first = dial(&app, call_sid).await;
    first
        .wait_for(is_media, 5 * SECOND)
        .await
        .expect("greeting");
    let mut second = dial(&app, call_sid).await;
    first
        .wait_for(|e| matches!(e, Event::Closed { .. }), 5 * SECOND)
        .await
        .expect("the first socket is closed");
    second
        .wait_for(is_media, 5 * SECOND)
        .await
        .expect("greeting");
    let calls = app
        .engine
        .registry()
        .send(actors::registry::messages::ListCalls)
        .await
        .expect("registry answers");
    assert_eq!(calls.len(), 1);
    second.hang_up().await.expect("hang up");
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn the_voice_webhook_answers_connect_stream_twiml_with_parameters() {
    let app = spawn_app(AppOptions::default()).await;
    let (status, twiml) = app
        .post_twilio(
            "/twilio/voice",
            &[
                ("CallSid", "CA00000000000000000000000000000008"),
                ("From", FROM),
                ("To", TO),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let stream = format!("<Stream url=\"{}/twilio/media\">", app.ws_base());
    assert!(twiml.contains(&stream), "{twiml}");
    assert!(
        twiml.contains("<Parameter name=\"From\" value=\"+14155550101\"/>"),
        "{twiml}"
    );
    assert!(twiml.contains("action=\"http://127.0.0.1"), "{twiml}");

    // A form without CallSid is a 400 naming the field.
    let (status, body) = app.post_twilio("/twilio/voice", &[("From", FROM)]).await;
    assert_eq!(status, 400);
    assert!(body.contains("CallSid"), "{body}");
    app.handle.stop(false).await;
}

/// A stand-in for a business's own slow HTTP endpoint: answers after `delay`, and only to
/// the configured bearer token.
async fn slow_tool_server(delay: Duration) -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let server = HttpServer::new(move || {
        App::new().route(
            "/inventory",
            web::post().to(
                move |req: HttpRequest, body: web::Json<serde_json::Value>| async move {
                    actix_web::rt::time::sleep(delay).await;
                    let authorized = req
                        .headers()
                        .get("authorization")
                        .is_some_and(|v| v == "Bearer tool-secret-42");
                    if !authorized {
                        return HttpResponse::Unauthorized().finish();
                    }
                    HttpResponse::Ok().json(serde_json::json!({
                        "sku": body.get("sku"),
                        "in_stock": 3,
                        "summary": "Three left in stock."
                    }))
                },
            ),
        )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .expect("tool server binds");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://{addr}/inventory"), handle)
}

/// A greeting, then a `check_inventory` call after the caller's first turn.
const INVENTORY_SCRIPT: &str =
    r#"[{"say": "Hi."}, {"call": {"name": "check_inventory", "arguments": {"sku": "HLM-M"}}}]"#;

/// Adds the HTTP tool `check_inventory` to the default agent; its `url` is filled in from
/// `AppOptions::tool_url`, and `fields` are its settings beyond name, description and kind.
fn add_inventory_tool(settings: &mut Settings, fields: &str) {
    let tool: ToolConfig = toml::from_str(&format!(
        r#"
        name = "check_inventory"
        description = "Stock level of a product in the warehouse."
        kind = "http"
        url = "PLACEHOLDER"
        {fields}
        "#
    ))
    .expect("tool parses");
    settings.agents.tools.push(tool);
    let default = settings.agents.default_agent.clone();
    if let Some(agent) = settings
        .agents
        .agents
        .iter_mut()
        .find(|a| a.name == default)
    {
        agent.tools.push("check_inventory".into());
    }
}

#[actix_web::test]
async fn a_slow_http_tool_plays_the_hold_prompt_then_the_answer() {
    let (url, tool_server) = slow_tool_server(Duration::from_millis(2500)).await;
    // The variable's name is configured, never the token.
    std::env::set_var("SWITCHBOARD_TEST_INVENTORY_TOKEN", "tool-secret-42");
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(INVENTORY_SCRIPT),
            ..MockOptions::default()
        },
        hold_after_ms: 300,
        tweak: |settings| {
            add_inventory_tool(
                settings,
                r#"
                parameters = { type = "object", properties = { sku = { type = "string" } }, required = ["sku"] }
                timeout_ms = 5000
                secret_env = "SWITCHBOARD_TEST_INVENTORY_TOKEN"
                "#,
            )
        },
        tool_url: Some(url),
        ..AppOptions::default()
    })
    .await;
    let mut call = dial(&app, "CA00000000000000000000000000000009").await;
    greeting_played_out(&mut call).await;
    call.say(&speech()).await;
    app.wait_for_mock("the function call", 10 * SECOND, |s| s.function_calls >= 1)
        .await;
    // Hold audio comes in 200 ms chunks without marks while the tool works.
    call.wait_for(
        |e| matches!(e, Event::Media { bytes: 1600, .. }),
        3 * SECOND,
    )
    .await
    .expect("hold audio while the tool is slow");
    let stats = app
        .wait_for_mock("the tool output", 10 * SECOND, |s| s.function_outputs >= 1)
        .await;
    assert_eq!(stats.function_outputs, 1);
    call.drain();
    call.wait_for(is_played_mark, 10 * SECOND)
        .await
        .expect("the answer plays after the hold");
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    let record = app.call_record("CA00000000000000000000000000000009").await;
    let tool_turn = record
        .transcript
        .turns()
        .iter()
        .find(|t| t.role == Role::Tool)
        .expect("tool output recorded");
    assert!(
        tool_turn.text.contains("Three left in stock"),
        "{tool_turn:?}"
    );
    app.handle.stop(false).await;
    tool_server.stop(false).await;
}

#[actix_web::test]
async fn a_tool_timeout_reaches_the_model_as_an_error_and_the_call_goes_on() {
    let (url, tool_server) = slow_tool_server(Duration::from_millis(3000)).await;
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(INVENTORY_SCRIPT),
            ..MockOptions::default()
        },
        tweak: |settings| add_inventory_tool(settings, "timeout_ms = 300"),
        tool_url: Some(url),
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000010";
    let mut call = dial(&app, call_sid).await;
    greeting_played_out(&mut call).await;
    call.say(&speech()).await;
    app.wait_for_mock("the tool's error output", 10 * SECOND, |s| {
        s.function_outputs >= 1 && s.responses_started >= 3
    })
    .await;
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("the model answers after the failed tool");
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    let tool_turn = record
        .transcript
        .turns()
        .iter()
        .find(|t| t.role == Role::Tool)
        .expect("tool output recorded");
    assert!(tool_turn.text.contains("\"error\""), "{tool_turn:?}");
    assert_eq!(record.outcome, Some(CallOutcome::Completed));
    app.handle.stop(false).await;
    tool_server.stop(false).await;
}

#[actix_web::test]
async fn a_key_press_is_answered_and_kept_in_the_transcript() {
    let app = spawn_app(AppOptions::default()).await;
    let call_sid = "CA00000000000000000000000000000021";
    let mut call = dial(&app, call_sid).await;
    greeting_played_out(&mut call).await;
    let before = app.mock.stats();
    call.press("7").await;
    app.wait_for_mock("an answer to the key", 10 * SECOND, |s| {
        s.client_items_created > before.client_items_created
            && s.responses_completed > before.responses_completed
    })
    .await;
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("the answer to the key is heard");
    wait_played_out(&mut call, 10 * SECOND).await;
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    let turns = record.transcript.turns();
    let pressed = turns
        .iter()
        .position(|t| t.role == Role::User && t.text.contains("pressed the key 7"))
        .expect("the key is the caller's turn");
    assert!(
        turns
            .get(pressed + 1..)
            .is_some_and(|after| after.iter().any(|t| t.role == Role::Assistant)),
        "and it was answered: {turns:?}"
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_realtime_call_is_told_about_the_callers_texts() {
    let app = spawn_app(AppOptions {
        // The text conversation retires soon after, so the test can see every actor gone.
        tweak: |settings: &mut Settings| settings.engine.limits.idle_secs = 1,
        ..AppOptions::default()
    })
    .await;
    let (status, _) = app
        .post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", "SM00000000000000000000000000000021"),
                ("From", FROM),
                ("To", TO),
                ("Body", "Do you have kids helmets in stock?"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let call_sid = "CA00000000000000000000000000000022";
    let mut call = dial(&app, call_sid).await;
    greeting_played_out(&mut call).await;
    let session = app.mock.stats().last_session.expect("a session");
    let instructions = session["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.contains("Customer: Do you have kids helmets in stock?"),
        "{instructions}"
    );
    assert!(
        instructions.contains("Us: "),
        "our answer too: {instructions}"
    );
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;

    // Another caller, with no texts, is told nothing of them.
    let mut other = LiveCall::dial(
        &app.base,
        None,
        "CA00000000000000000000000000000023",
        "+14155550199",
        TO,
    )
    .await
    .expect("the call connects");
    greeting_played_out(&mut other).await;
    let session = app.mock.stats().last_session.expect("a session");
    assert!(!session["instructions"]
        .as_str()
        .unwrap_or_default()
        .contains("helmets"));
    other.hang_up().await.expect("hang up");
    app.expect_idle().await;
    app.handle.stop(false).await;
}

async fn health(app: &TestApp) -> (u16, String) {
    let mut response = awc::Client::default()
        .get(format!("{}/health", app.base))
        .send()
        .await
        .expect("health answers");
    let body = response.body().await.expect("body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn a_response_failing_for_quota_ends_in_the_apology_and_degrades_health() {
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(
                r#"[{"fail": {"type": "insufficient_quota", "code": "insufficient_quota",
                              "message": "You exceeded your current quota."}}]"#,
            ),
            ..MockOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    let fatal = r#"switchboard_model_failures_total{kind="fatal"}"#;
    let before = app.metric(fatal).await;
    let call_sid = "CA00000000000000000000000000000024";
    let mut call = dial(&app, call_sid).await;
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("the apology, not dead air");
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 15 * SECOND)
        .await
        .expect("the call ends after the apology");
    let (status, body) = health(&app).await;
    assert_eq!(status, 503);
    assert!(body.contains("insufficient_quota"), "{body}");
    assert_eq!(app.metric(fatal).await, before + 1.0);
    app.expect_idle().await;
    assert_eq!(
        app.call_record(call_sid).await.outcome,
        Some(CallOutcome::Fallback)
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_response_failing_for_a_server_error_is_retried_and_the_caller_is_greeted() {
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(
                r#"[{"fail": {"type": "server_error", "message": "The server had an error."}},
                    {"say": "Sorry for the wait. How can I help?"}]"#,
            ),
            ..MockOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    let transient = r#"switchboard_model_failures_total{kind="transient"}"#;
    let before = app.metric(transient).await;
    let call_sid = "CA00000000000000000000000000000025";
    let mut call = dial(&app, call_sid).await;
    greeting_played_out(&mut call).await;
    let stats = app.mock.stats();
    assert_eq!((stats.responses_failed, stats.responses_completed), (1, 1));
    assert_eq!(app.metric(transient).await, before + 1.0);
    assert_eq!(health(&app).await.0, 200);
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Completed));
    assert!(record
        .transcript
        .turns()
        .iter()
        .any(|t| t.text == "Sorry for the wait. How can I help?"));
    app.handle.stop(false).await;
}
