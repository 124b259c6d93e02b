//! End-to-end text channels over real sockets: SMS and WhatsApp webhooks (inline TwiML and
//! REST replies), Twilio Conversations, and web chat, with agents, tools and handoffs.

mod support;

use std::time::Duration;

use support::{spawn_app, twiml_messages, AppOptions, FakeTwilioRest};

const SECOND: Duration = Duration::from_secs(1);
/// The customer of order 1001 in `config/catalog/orders.json`.
const CUSTOMER: &str = "+14155550101";
use support::{STORE_NUMBER, TEST_ACCOUNT_SID as ACCOUNT_SID};
const AUTH_TOKEN: &str = "test-auth-token";

fn local_model() -> AppOptions {
    AppOptions {
        api_key: String::new(),
        ..AppOptions::default()
    }
}

#[actix_web::test]
async fn an_sms_conversation_looks_up_hands_off_books_and_remembers() {
    let app = spawn_app(local_model()).await;

    let (status, twiml) = app
        .sms("SM001", CUSTOMER, "Hi, where is my order 1001?")
        .await;
    assert_eq!(status, 200);
    let reply = twiml_messages(&twiml).join(" ");
    assert!(
        reply.contains("1001") && reply.contains("shipped"),
        "{twiml}"
    );

    let reply = app
        .sms_reply("SM002", CUSTOMER, "I'd like to book a tune-up appointment")
        .await;
    assert!(
        reply.contains("S102"),
        "booking lists the open tune-up slots: {reply}"
    );

    let reply = app
        .sms_reply("SM003", CUSTOMER, "Please book S102, my name is Ada")
        .await;
    assert!(reply.to_lowercase().contains("booked"), "{reply}");

    // The booking is in the store, and the slot is no longer offered.
    let booking = app
        .engine
        .shared()
        .store
        .bookings()
        .booking("S102")
        .expect("store readable")
        .expect("slot S102 booked");
    assert_eq!(booking.customer, CUSTOMER);
    // Someone else cannot take the same slot.
    let reply = app
        .sms_reply("SM004", "+14155550199", "Please book appointment S102")
        .await;
    assert!(
        reply.to_lowercase().contains("already"),
        "double booking refused: {reply}"
    );

    // The next message continues the same thread with the same agent and memory.
    let reply = app
        .sms_reply("SM005", CUSTOMER, "Please cancel my appointment S102")
        .await;
    assert!(reply.to_lowercase().contains("cancel"), "{reply}");

    // The whole thread is in sled, in order.
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns(CUSTOMER, 100)
        .await
        .expect("store readable");
    assert_eq!(turns.len(), 8, "{turns:#?}");
    assert_eq!(turns[7].role, actors::domain::transcript::Role::Assistant);
    assert_eq!(turns[0].text, "Hi, where is my order 1001?");
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_retried_message_sid_is_answered_once() {
    let app = spawn_app(local_model()).await;
    let (_, first) = app
        .sms("SM100", CUSTOMER, "What are your opening hours?")
        .await;
    assert!(!twiml_messages(&first).is_empty(), "{first}");
    let (status, second) = app
        .sms("SM100", CUSTOMER, "What are your opening hours?")
        .await;
    assert_eq!(status, 200);
    assert!(twiml_messages(&second).is_empty(), "{second}");
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns(CUSTOMER, 100)
        .await
        .expect("store readable");
    assert_eq!(turns.len(), 2);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_form_without_body_is_a_400_naming_the_field() {
    let app = spawn_app(local_model()).await;
    let (status, body) = app
        .post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", "SM200"),
                ("From", CUSTOMER),
                ("To", STORE_NUMBER),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("Body"), "{body}");
    app.handle.stop(false).await;
}

fn rest_mode(rest: &FakeTwilioRest) -> AppOptions {
    AppOptions {
        api_key: String::new(),
        auth_token: Some(AUTH_TOKEN.into()),
        account_sid: Some(ACCOUNT_SID.into()),
        twilio_rest: Some(rest.base.clone()),
        ..AppOptions::default()
    }
}

fn basic_auth() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    )
}

#[actix_web::test]
async fn whatsapp_replies_go_back_over_rest_between_the_same_addresses() {
    let rest = FakeTwilioRest::start();
    let app = spawn_app(rest_mode(&rest)).await;
    let from = format!("whatsapp:{CUSTOMER}");
    let to = format!("whatsapp:{STORE_NUMBER}");
    let (status, twiml) = app
        .post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", "SM300"),
                ("AccountSid", ACCOUNT_SID),
                ("From", &from),
                ("To", &to),
                ("Body", "where is order 1001"),
                ("NumMedia", "0"),
                ("ProfileName", "Ada"),
                ("WaId", "14155550101"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        twiml_messages(&twiml).is_empty(),
        "REST mode answers <Response/>: {twiml}"
    );
    let calls = rest.wait_for(1, 10 * SECOND).await;
    let call = &calls[0];
    assert_eq!(
        call.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    assert_eq!(call.authorization.as_deref(), Some(basic_auth().as_str()));
    assert_eq!(call.field("To"), Some(from.as_str()));
    assert_eq!(call.field("From"), Some(to.as_str()));
    assert!(
        call.field("Body").is_some_and(|b| b.contains("shipped")),
        "{call:?}"
    );
    // WhatsApp and SMS share the customer's memory: the thread is keyed by the number.
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns(CUSTOMER, 10)
        .await
        .expect("store readable");
    assert_eq!(turns.len(), 2);

    // An unsigned webhook is refused and processes nothing.
    let mut refused = awc::Client::default()
        .post(format!("{}/twilio/messaging", app.base))
        .send_form(&[
            ("MessageSid", "SM301"),
            ("From", CUSTOMER),
            ("To", STORE_NUMBER),
            ("Body", "hi"),
        ])
        .await
        .expect("answers");
    assert_eq!(refused.status(), 403);
    let reason = refused.body().await.expect("body");
    assert!(String::from_utf8_lossy(&reason).contains("X-Twilio-Signature"));
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

#[actix_web::test]
async fn conversations_messages_are_answered_once_and_our_own_are_ignored() {
    let rest = FakeTwilioRest::start();
    let app = spawn_app(rest_mode(&rest)).await;
    let added =
        |sid: &'static str, author: &'static str, body: &'static str, retry: &'static str| {
            vec![
                ("EventType", "onMessageAdded"),
                ("AccountSid", ACCOUNT_SID),
                ("ConversationSid", "CH00000000000000000000000000000001"),
                ("MessageSid", sid),
                ("Author", author),
                ("Body", body),
                ("Source", "SMS"),
                ("RetryCount", retry),
            ]
        };
    let (status, _) = app
        .post_twilio(
            "/twilio/conversations",
            &added("IM001", CUSTOMER, "What are your hours?", "0"),
        )
        .await;
    assert_eq!(status, 200);
    let calls = rest.wait_for(1, 10 * SECOND).await;
    let reply = &calls[0];
    assert_eq!(
        reply.path,
        "/v1/Conversations/CH00000000000000000000000000000001/Messages"
    );
    assert_eq!(reply.authorization.as_deref(), Some(basic_auth().as_str()));
    assert_eq!(reply.field("Author"), Some("switchboard"));
    assert!(reply.field("Body").is_some_and(|b| !b.is_empty()));
    assert_only_author_and_body(reply);

    // Twilio retries the same message, and tells us about our own reply: neither is answered.
    app.post_twilio(
        "/twilio/conversations",
        &added("IM001", CUSTOMER, "What are your hours?", "1"),
    )
    .await;
    app.post_twilio(
        "/twilio/conversations",
        &added("IM002", "switchboard", "We open at 9.", "0"),
    )
    .await;
    // A different event type is acknowledged and ignored.
    app.post_twilio(
        "/twilio/conversations",
        &[
            ("EventType", "onConversationAdded"),
            ("ConversationSid", "CH1"),
        ],
    )
    .await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rest.calls.lock().expect("lock").len(), 1);
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

/// A Conversations reply carries our identity and the text, nothing else; and no
/// `X-Twilio-Webhook-Enabled`, so Twilio raises no `onMessageAdded` for it (no loop).
fn assert_only_author_and_body(reply: &support::RestCall) {
    let mut fields: Vec<&str> = reply.form.iter().map(|(k, _)| k.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["Author", "Body"], "{reply:?}");
    assert_eq!(reply.header("X-Twilio-Webhook-Enabled"), None, "{reply:?}");
}

#[actix_web::test]
async fn a_conversation_of_a_named_service_is_answered_under_that_service() {
    let rest = FakeTwilioRest::start();
    let app = spawn_app(rest_mode(&rest)).await;
    const SERVICE: &str = "IS00000000000000000000000000000007";
    const CONVERSATION: &str = "CH00000000000000000000000000000002";
    let (status, _) = app
        .post_twilio(
            "/twilio/conversations",
            &[
                ("EventType", "onMessageAdded"),
                ("AccountSid", ACCOUNT_SID),
                ("ChatServiceSid", SERVICE),
                ("ConversationSid", CONVERSATION),
                ("MessageSid", "IM101"),
                ("Author", CUSTOMER),
                ("Body", "What are your hours?"),
                ("Source", "SMS"),
                ("RetryCount", "0"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let calls = rest.wait_for(1, 10 * SECOND).await;
    let reply = &calls[0];
    assert_eq!(
        reply.path,
        format!("/v1/Services/{SERVICE}/Conversations/{CONVERSATION}/Messages")
    );
    assert_eq!(reply.authorization.as_deref(), Some(basic_auth().as_str()));
    assert_eq!(reply.field("Author"), Some("switchboard"));
    assert!(
        reply.field("Body").is_some_and(|b| !b.is_empty()),
        "{reply:?}"
    );
    assert_only_author_and_body(reply);

    // A service SID that could bend the REST path is refused at the edge, naming the field,
    // and nothing is processed.
    let (status, body) = app
        .post_twilio(
            "/twilio/conversations",
            &[
                ("EventType", "onMessageAdded"),
                ("ChatServiceSid", "IS1/../../2010-04-01"),
                ("ConversationSid", CONVERSATION),
                ("MessageSid", "IM102"),
                ("Author", CUSTOMER),
                ("Body", "hello?"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("ChatServiceSid"), "{body}");
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rest.calls.lock().expect("lock").len(), 1);
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

#[actix_web::test]
async fn web_chat_streams_tokens_then_the_answer() {
    let app = spawn_app(local_model()).await;
    let answer = app
        .web_chat("web-test-0001", "where is my order 1001?", 5 * SECOND)
        .await;
    assert!(
        answer.other.is_empty(),
        "unexpected frames {:?}",
        answer.other
    );
    let (tokens, done) = (answer.tokens, answer.text);
    assert!(!tokens.is_empty(), "streamed before the end");
    assert_eq!(tokens.trim(), done.trim());
    // A web customer has no phone number, so the order of a phone customer stays private.
    assert!(done.contains("1001"), "{done}");

    // The page itself is served with no build step.
    let mut page = awc::Client::default()
        .get(format!("{}/chat", app.base))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.body().await.expect("html");
    assert!(String::from_utf8_lossy(&html).contains("/chat/ws"));
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_customer_who_called_and_then_texts_is_remembered() {
    use switchboard::sim::twilio::{sine_ulaw, Event, LiveCall};
    // With an API key the call goes through the Realtime emulator and the text through
    // its Chat Completions endpoint.
    let app = spawn_app(AppOptions::default()).await;
    let mut call = LiveCall::dial(
        &app.base,
        None,
        "CA00000000000000000000000000000401",
        CUSTOMER,
        STORE_NUMBER,
    )
    .await
    .expect("call connects");
    call.wait_for(|e| matches!(e, Event::Media { .. }), 5 * SECOND)
        .await
        .expect("greeting");
    call.say(&sine_ulaw(320.0, 1000, 0.6)).await;
    app.wait_for_mock("the caller's turn", 10 * SECOND, |s| {
        s.responses_started >= 2
    })
    .await;
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    let customer = app.customer_record(CUSTOMER).await;
    assert_eq!(customer.calls.len(), 1);

    let (_, twiml) = app
        .sms("SM400", CUSTOMER, "Hi again, what are your hours?")
        .await;
    assert!(!twiml_messages(&twiml).is_empty(), "{twiml}");
    let told = app.mock.stats().last_chat_messages.expect("a chat request");
    let system = told
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        system.contains("earlier phone calls"),
        "the model was told about the call: {told}"
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_provider_429_is_retried_and_the_customer_still_gets_an_answer() {
    let app = spawn_app(AppOptions {
        mock: switchboard::sim::mock_openai::MockOptions {
            // The emulator refuses the first request with 429 + retry-after, then answers.
            fail_rate: 0.5,
            ..Default::default()
        },
        ..AppOptions::default()
    })
    .await;
    let (status, twiml) = app.sms("SM500", CUSTOMER, "where is my order 1001?").await;
    assert_eq!(status, 200);
    let reply = twiml_messages(&twiml).join(" ");
    assert!(reply.contains("shipped"), "{twiml}");
    let stats = app.mock.stats();
    assert!(stats.chat_failures_injected >= 1, "{stats:?}");
    assert!(
        stats.chat_requests > stats.chat_failures_injected,
        "{stats:?}"
    );
    app.handle.stop(false).await;
}
