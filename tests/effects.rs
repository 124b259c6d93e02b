//! Effect tools end to end (SPEC §14): one implementation for every channel. `send_sms` from a
//! Realtime call and from an SMS conversation reaches the Messages API — the exact path and
//! fields Twilio takes — with the text; escalation and handoffs follow the same rules on
//! both. (The relay-call case is in `tests/relay.rs`, next to its fake ConversationRelay.)

mod support;

use std::time::Duration;

use support::voice::{greeting_played_out, speech};
use support::{script, spawn_app, twiml_messages, AppOptions, FakeTwilioRest, RestCall, TestApp};
use switchboard::config::Settings;
use switchboard::sim::mock_openai::MockOptions;
use switchboard::sim::twilio::LiveCall;

const SECOND: Duration = Duration::from_secs(1);
/// The customer of order 1001 in `config/catalog/orders.json`.
const CUSTOMER: &str = "+14155550101";
const STORE_NUMBER: &str = "+18005550100";
const HUMAN: &str = "+15555550100";
const ACCOUNT_SID: &str = "AC00000000000000000000000000000042";
const AUTH_TOKEN: &str = "test-auth-token";

/// Twilio credentials and a store number, so `send_sms` can text; text replies stay inline
/// (TwiML), so every request the fake REST API sees is one the agent asked for.
fn with_twilio(rest: &FakeTwilioRest) -> AppOptions {
    AppOptions {
        auth_token: Some(AUTH_TOKEN.into()),
        account_sid: Some(ACCOUNT_SID.into()),
        twilio_rest: Some(rest.base.clone()),
        human_number: Some(HUMAN.into()),
        tweak: |settings: &mut Settings| {
            settings.engine.twilio.phone_number = Some(STORE_NUMBER.into());
            settings.engine.messaging.reply_mode = actors::config::ReplyMode::Twiml;
        },
        ..AppOptions::default()
    }
}

/// The one text the fake Messages API received, checked the way Twilio would take it.
fn the_text_sent(calls: &[RestCall]) -> &RestCall {
    let [call] = calls else {
        panic!("expected exactly one REST request: {calls:#?}");
    };
    assert_eq!(
        call.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    assert!(call
        .authorization
        .as_deref()
        .is_some_and(|auth| auth.starts_with("Basic ")));
    assert_eq!(call.field("To"), Some(CUSTOMER));
    assert_eq!(call.field("From"), Some(STORE_NUMBER));
    call
}

#[actix_web::test]
async fn a_realtime_call_hands_off_then_texts_the_caller() {
    let rest = FakeTwilioRest::start();
    let mut options = with_twilio(&rest);
    options.mock = MockOptions {
        script: script(
            r#"[{"say": "Northwind Cycles, how can I help?"},
                {"call": {"name": "transfer_to_orders", "arguments": {}}},
                {"call": {"name": "send_sms", "arguments": {"message": "Your tracking number is 1Z999AA10123456784."}}},
                {"say": "I have texted you the tracking number."}]"#,
        ),
        ..MockOptions::default()
    };
    let app = spawn_app(options).await;
    let call_sid = "CA00000000000000000000000000000901";
    let mut call = LiveCall::dial(
        &app.base,
        Some(AUTH_TOKEN),
        call_sid,
        CUSTOMER,
        STORE_NUMBER,
    )
    .await
    .expect("the call connects");
    greeting_played_out(&mut call).await;
    call.say(&speech()).await;
    let sent = rest.wait_for(1, 10 * SECOND).await;
    let text = the_text_sent(&sent);
    assert_eq!(
        text.field("Body"),
        Some("Your tracking number is 1Z999AA10123456784.")
    );
    app.wait_for_mock("the answer after the text", 10 * SECOND, |s| {
        s.responses_completed >= 4
    })
    .await;
    // The handoff gave the session the orders agent's instructions and tools.
    let session = app.mock.stats().last_session.expect("a session");
    assert!(session["instructions"]
        .as_str()
        .is_some_and(|i| i.starts_with("You handle orders")));
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.agent, "orders");
    assert_eq!(
        record.tools_used,
        vec!["transfer_to_orders".to_string(), "send_sms".to_string()]
    );
    // The model was told the text went out, not merely that it was queued.
    assert!(record
        .transcript
        .turns()
        .iter()
        .any(|t| t.text.starts_with("send_sms → ") && t.text.contains(r#""status":"sent""#)));
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_caller_without_a_number_cannot_be_texted_and_is_not_anyone_else() {
    let rest = FakeTwilioRest::start();
    let mut options = with_twilio(&rest);
    options.mock = MockOptions {
        script: script(
            r#"[{"say": "Hello."},
                {"call": {"name": "transfer_to_booking", "arguments": {}}},
                {"call": {"name": "book_appointment", "arguments": {"slot_id": "S101", "name": "Ann"}}},
                {"call": {"name": "send_sms", "arguments": {"message": "Booked S101."}}},
                {"say": "Done."}]"#,
        ),
        ..MockOptions::default()
    };
    let app = spawn_app(options).await;
    let call_sid = "CA00000000000000000000000000000902";
    let mut call = LiveCall::dial(
        &app.base,
        Some(AUTH_TOKEN),
        call_sid,
        "anonymous",
        STORE_NUMBER,
    )
    .await
    .expect("the call connects");
    greeting_played_out(&mut call).await;
    call.say(&speech()).await;
    app.wait_for_mock("the last answer", 15 * SECOND, |s| {
        s.responses_completed >= 5
    })
    .await;
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    assert!(
        rest.calls.lock().expect("lock").is_empty(),
        "nothing was texted"
    );
    let record = app.call_record(call_sid).await;
    assert_eq!(
        record.customer, None,
        "no lasting identity for an anonymous caller"
    );
    let said: Vec<&str> = record
        .transcript
        .turns()
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    assert!(
        said.iter()
            .any(|t| t.starts_with("send_sms → ") && t.contains("phone number is unknown")),
        "{said:?}"
    );
    // The booking belongs to this call alone, not to every anonymous caller.
    let booking = app
        .engine
        .shared()
        .store
        .bookings()
        .booking("S101")
        .expect("store readable")
        .expect("booked");
    assert_eq!(booking.customer, format!("call:{call_sid}"));
    app.handle.stop(false).await;
}

async fn sms(app: &TestApp, sid: &str, body: &str) -> String {
    let (status, twiml) = app
        .post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", CUSTOMER),
                ("To", STORE_NUMBER),
                ("Body", body),
                ("NumMedia", "0"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{twiml}");
    twiml_messages(&twiml).join(" ")
}

#[actix_web::test]
async fn an_sms_conversation_texts_what_it_said_and_escalates_to_a_person() {
    let rest = FakeTwilioRest::start();
    let mut options = with_twilio(&rest);
    options.api_key = String::new();
    let app = spawn_app(options).await;
    let order = sms(&app, "SM901", "Where is my order 1001?").await;
    assert!(
        order.contains("1001") && order.contains("shipped"),
        "{order}"
    );
    let texted = sms(&app, "SM902", "Can you text me that?").await;
    assert!(texted.contains("sent that to you by text"), "{texted}");
    let sent = rest.wait_for(1, 5 * SECOND).await;
    assert_eq!(the_text_sent(&sent).field("Body"), Some(order.as_str()));

    let before = app
        .metric(r#"switchboard_escalations_total{channel="text"}"#)
        .await;
    let person = sms(&app, "SM903", "I want to talk to a real person").await;
    assert!(person.contains("colleague"), "{person}");
    let after = app
        .metric(r#"switchboard_escalations_total{channel="text"}"#)
        .await;
    assert_eq!(after, before + 1.0);
    app.handle.stop(false).await;
}
