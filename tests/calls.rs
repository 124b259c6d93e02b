//! Calls the engine places (issue 10), end to end against the simulated Twilio REST API:
//! `POST /calls` creates the call with the Calls API (fields and basic auth checked by the
//! simulator), the simulator answers it — fetches the signed `Url`, opens the stream — and
//! the agent named in the request opens the call with its reason. Answering-machine
//! detection: a machine after its beep gets the voicemail (the call's TwiML replaced, which
//! ends the stream) and a text where the number takes texts; a person goes on talking.

mod support;

use std::time::Duration;

use support::{spawn_app, AppOptions, TestApp};
use switchboard::sim::twilio::api::CallsApi;
use switchboard::sim::twilio::Event;

const TOKEN: &str = "twilio-token";
const OUR_NUMBER: &str = "+18005550100";
const CUSTOMER: &str = "+14155550101";
const LANDLINE: &str = "+14155550177";
const SECOND: Duration = Duration::from_secs(1);

fn with_number(settings: &mut switchboard::config::Settings) {
    settings.engine.twilio.phone_number = Some(OUR_NUMBER.into());
}

async fn app_with(api: &CallsApi) -> TestApp {
    spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        account_sid: Some(api.account_sid().into()),
        twilio_rest: Some(api.base.clone()),
        tweak: with_number,
        ..AppOptions::default()
    })
    .await
}

/// `POST /calls` from this machine (no admin token set: loopback access), JSON body.
async fn post_calls(app: &TestApp, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let mut response = awc::Client::default()
        .post(format!("{}/calls", app.base))
        .send_json(body)
        .await
        .expect("the server answers");
    let body = response.body().await.expect("body");
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[actix_web::test]
async fn a_placed_call_is_answered_and_opened_by_its_agent_with_the_reason() {
    let mut api = CallsApi::start(TOKEN, &[]).expect("simulated Twilio starts");
    let app = app_with(&api).await;
    let reason = "confirm tomorrow's 10:00 fitting";
    let (status, body) = post_calls(
        &app,
        &serde_json::json!({"to": CUSTOMER, "agent": "booking", "reason": reason}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let placed = api
        .next_call(5 * SECOND)
        .await
        .expect("the call is created");
    assert_eq!(body["call_sid"], placed.call_sid.as_str());
    assert_eq!(placed.field("To"), Some(CUSTOMER));
    assert_eq!(placed.field("From"), Some(OUR_NUMBER));
    let url = placed.field("Url").expect("Url");
    assert!(
        url.starts_with(&format!("{}/twilio/voice/outbound?", app.base)),
        "{url}"
    );
    assert_eq!(
        placed.field("StatusCallback").map(str::to_owned),
        Some(format!("{}/twilio/status", app.base))
    );
    assert_eq!(
        placed.fields("StatusCallbackEvent"),
        vec!["initiated", "answered", "completed"]
    );
    assert_eq!(placed.field("MachineDetection"), None, "not asked for");

    // The customer picks up: Twilio fetches the signed Url and opens the stream.
    let mut call = placed.answer().await.expect("the stream opens");
    assert_eq!(
        call.custom_parameters()
            .get("OutboundAgent")
            .map(String::as_str),
        Some("booking")
    );
    assert_eq!(
        call.custom_parameters().get("From").map(String::as_str),
        Some(CUSTOMER),
        "the customer is the call's other party"
    );
    support::voice::greeting_played_out(&mut call).await;
    let stats = app.mock.stats();
    let instructions = stats
        .last_session
        .as_ref()
        .and_then(|s| s["instructions"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        instructions.contains("You placed this call"),
        "{instructions}"
    );
    assert!(instructions.contains(reason), "{instructions}");
    assert!(stats.responses_started >= 1, "the agent speaks first");
    call.hang_up().await.expect("hang up");
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("no actor left");
    let record = app.call_record(&placed.call_sid).await;
    assert_eq!(record.agent, "booking");

    // Unsigned, the outbound webhook is refused.
    let path = url.trim_start_matches(&app.base);
    let (status, _) =
        support::unsigned_post(&app, path, &[("CallSid", placed.call_sid.as_str())]).await;
    assert_eq!(status, 403);
    app.handle.stop(false).await;
    api.stop().await;
}

#[actix_web::test]
async fn bad_requests_place_no_call() {
    let mut api = CallsApi::start(TOKEN, &[]).expect("simulated Twilio starts");
    let app = app_with(&api).await;
    for (body, status, says) in [
        (
            serde_json::json!({"to": "4155550101", "agent": "booking", "reason": "x"}),
            400,
            "E.164",
        ),
        (
            serde_json::json!({"to": CUSTOMER, "agent": "nobody", "reason": "x"}),
            400,
            "no agent named 'nobody'",
        ),
        (
            serde_json::json!({"to": CUSTOMER, "agent": "booking", "reason": ""}),
            400,
            "reason",
        ),
        (serde_json::json!({"to": CUSTOMER}), 400, "expected"),
    ] {
        let (got, answer) = post_calls(&app, &body).await;
        assert_eq!(got, status, "{body} → {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says) && !error.contains('\n'), "{error}");
    }
    // A form from another site's page is not an admin action.
    let mut response = awc::Client::default()
        .post(format!("{}/calls", app.base))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body("to=%2B14155550101&reason=x")
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 403);
    let _ = response.body().await;
    assert!(api.try_next_call().is_none(), "nothing was placed");
    assert!(api.requests().is_empty());
    app.handle.stop(false).await;

    // No credentials: 503, nothing sent.
    let bare = spawn_app(AppOptions {
        twilio_rest: Some(api.base.clone()),
        tweak: with_number,
        ..AppOptions::default()
    })
    .await;
    let (got, answer) = post_calls(
        &bare,
        &serde_json::json!({"to": CUSTOMER, "agent": "booking", "reason": "x"}),
    )
    .await;
    assert_eq!(got, 503, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap_or_default()
        .contains("credentials"));
    bare.handle.stop(false).await;

    // Every line taken: 409, nothing sent.
    let full = spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        account_sid: Some(api.account_sid().into()),
        twilio_rest: Some(api.base.clone()),
        tweak: |settings| {
            with_number(settings);
            settings.engine.limits.max_calls = 0;
        },
        ..AppOptions::default()
    })
    .await;
    let (got, answer) = post_calls(
        &full,
        &serde_json::json!({"to": CUSTOMER, "agent": "booking", "reason": "x"}),
    )
    .await;
    assert_eq!(got, 409, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap_or_default()
        .contains("max_calls"));
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    full.handle.stop(false).await;
    api.stop().await;
}

#[actix_web::test]
async fn a_machine_gets_the_voicemail_and_a_text_and_a_person_gets_the_agent() {
    let mut api = CallsApi::start(TOKEN, &[LANDLINE]).expect("simulated Twilio starts");
    let app = app_with(&api).await;
    let reason = "your order 1042 is ready for collection";

    // A mobile with a machine on it.
    let (status, _) = post_calls(
        &app,
        &serde_json::json!({"to": CUSTOMER, "agent": "booking", "reason": reason, "machine_detection": true}),
    )
    .await;
    assert_eq!(status, 202);
    let placed = api.next_call(5 * SECOND).await.expect("created");
    assert_eq!(placed.field("MachineDetection"), Some("DetectMessageEnd"));
    assert_eq!(placed.field("AsyncAmd"), Some("true"));
    let amd = placed
        .field("AsyncAmdStatusCallback")
        .expect("AMD callback");
    assert!(
        amd.starts_with(&format!("{}/twilio/voice/amd?", app.base)),
        "{amd}"
    );
    let mut call = placed.answer().await.expect("the stream opens");
    call.wait_for(support::voice::is_media, 5 * SECOND)
        .await
        .expect("the agent starts talking (to the machine's greeting)");
    placed
        .report_amd("machine_end_beep")
        .await
        .expect("the AMD callback is taken");
    let updates = api
        .wait_for("call_update", 1, 5 * SECOND)
        .await
        .expect("the call's TwiML is replaced");
    let update = &updates[0];
    assert_eq!(update.call_sid.as_deref(), Some(placed.call_sid.as_str()));
    let twiml = update.field("Twiml").expect("Twiml");
    assert!(twiml.contains(reason), "{twiml}");
    assert!(
        twiml.contains(&format!("call us back at {OUR_NUMBER}")),
        "{twiml}"
    );
    assert!(twiml.ends_with("<Hangup/></Response>"), "{twiml}");
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 5 * SECOND)
        .await
        .expect("the stream ends");
    let texts = api
        .wait_for("messages", 1, 5 * SECOND)
        .await
        .expect("the voicemail is texted");
    assert_eq!(texts[0].field("To"), Some(CUSTOMER));
    assert!(texts[0].field("Body").unwrap_or_default().contains(reason));

    // A landline's machine: the voicemail, and no text (Twilio refuses it).
    let (status, _) = post_calls(
        &app,
        &serde_json::json!({"to": LANDLINE, "agent": "booking", "reason": reason, "machine_detection": true}),
    )
    .await;
    assert_eq!(status, 202);
    let landline = api.next_call(5 * SECOND).await.expect("created");
    let mut line = landline.answer().await.expect("the stream opens");
    landline
        .report_amd("machine_end_silence")
        .await
        .expect("taken");
    api.wait_for("call_update", 2, 5 * SECOND)
        .await
        .expect("voicemail left");
    line.wait_for(|e| matches!(e, Event::Closed { .. }), 5 * SECOND)
        .await
        .expect("the stream ends");

    // A person: the agent goes on; nothing is replaced or texted.
    let (status, _) = post_calls(
        &app,
        &serde_json::json!({"to": CUSTOMER, "agent": "booking", "reason": reason, "machine_detection": true}),
    )
    .await;
    assert_eq!(status, 202);
    let human = api.next_call(5 * SECOND).await.expect("created");
    let mut person = human.answer().await.expect("the stream opens");
    support::voice::greeting_played_out(&mut person).await;
    let answer = human.report_amd("human").await.expect("taken");
    assert!(answer.contains("<Response"), "{answer}");
    let answer = human.report_amd("something_new").await.expect("taken");
    assert!(answer.contains("<Response"), "{answer}");
    support::voice::caller_turn_answered(&app, &mut person).await;
    person.hang_up().await.expect("hang up");
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("no actor left");
    let kinds: Vec<&str> = api.requests().iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "call_update").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "messages").count(),
        1,
        "{kinds:?}"
    );
    app.handle.stop(false).await;
    api.stop().await;
}

#[actix_web::test]
async fn the_terminal_command_places_a_call_through_the_server() {
    let mut api = CallsApi::start(TOKEN, &[]).expect("simulated Twilio starts");
    let app = app_with(&api).await;
    let order = switchboard::call_cli::CallOrder {
        target: &app.base,
        token: None,
        to: CUSTOMER,
        agent: Some("booking"),
        reason: "your table for four tonight",
        machine_detection: true,
    };
    let sid = switchboard::call_cli::place(&order)
        .await
        .expect("the call is placed");
    let placed = api.next_call(5 * SECOND).await.expect("created");
    assert_eq!(sid, placed.call_sid);
    assert_eq!(placed.field("MachineDetection"), Some("DetectMessageEnd"));
    let refused = switchboard::call_cli::place(&switchboard::call_cli::CallOrder {
        to: "not a number",
        ..order
    })
    .await
    .expect_err("refused");
    assert!(refused.to_string().starts_with("400 "), "{refused}");
    app.handle.stop(false).await;
    api.stop().await;
}

#[actix_web::test]
async fn twilio_requests_about_a_placed_call_keep_the_customer_as_the_caller() {
    let api = CallsApi::start(TOKEN, &[]).expect("simulated Twilio starts");
    let app = app_with(&api).await;
    // A placed call whose transfer nobody took: Twilio's request names our number as From.
    let (status, twiml) = app
        .post_twilio(
            "/twilio/voice/dial-result",
            &[
                ("CallSid", "CA00000000000000000000000000000c01"),
                ("From", OUR_NUMBER),
                ("To", CUSTOMER),
                ("Direction", "outbound-api"),
                ("DialCallStatus", "busy"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{twiml}");
    assert!(
        twiml.contains(&format!(r#"<Parameter name="From" value="{CUSTOMER}"/>"#))
            && twiml.contains(&format!(r#"<Parameter name="To" value="{OUR_NUMBER}"/>"#)),
        "the resumed call's caller is the customer: {twiml}"
    );
    app.handle.stop(false).await;
    api.stop().await;
}
