//! End-to-end "Numbers and identity" and "Text channels" (issue 9): one E.164 key per
//! number whatever the channel wrote, the text history's time to live, the active agent
//! kept across retirement and restart, escalation by SMS to a person, Lookup v2 line types
//! and Verify v2 codes — read off the REST traffic the way Twilio would see it.

mod support;

use std::time::Duration;

use actors::domain::transcript::Role;
use support::{spawn_app, twiml_messages, AppOptions, FakeTwilioRest, TestApp};

const SECOND: Duration = Duration::from_secs(1);
/// The customer of order 1001 in `config/catalog/orders.json`.
const CUSTOMER: &str = "+14155550101";
use support::{STORE_NUMBER, TEST_ACCOUNT_SID as ACCOUNT_SID};

fn local_model() -> AppOptions {
    AppOptions {
        api_key: String::new(),
        ..AppOptions::default()
    }
}

#[actix_web::test]
async fn one_number_written_any_way_is_one_customer() {
    let app = spawn_app(local_model()).await;
    // WhatsApp's prefix, and a `+` a form encoder left raw (decoded as a space): both are
    // the customer of order 1001, who may hear about it.
    let reply = app
        .sms_reply("SM001", "whatsapp:+14155550101", "Where is my order 1001?")
        .await;
    assert!(
        reply.contains("1001") && reply.contains("shipped"),
        "{reply}"
    );
    let reply = app
        .sms_reply("SM002", " 14155550101", "And my order 1001 again?")
        .await;
    assert!(
        reply.contains("shipped") && !reply.contains("different phone number"),
        "{reply}"
    );
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns(CUSTOMER, 100)
        .await
        .expect("store readable");
    assert_eq!(turns.len(), 4, "one thread under the E.164 key: {turns:#?}");
    assert_eq!(turns[0].role, Role::User);
    for other in ["whatsapp:+14155550101", " 14155550101", "14155550101"] {
        let stray = app
            .engine
            .shared()
            .store
            .recent_turns(other, 10)
            .await
            .expect("store readable");
        assert!(stray.is_empty(), "nothing keyed by {other:?}");
    }
    app.handle.stop(false).await;
}

// --- Text channels ----------------------------------------------------------------

const HOUR_MS: u64 = 3_600_000;

#[actix_web::test]
async fn turns_older_than_the_history_ttl_leave_the_models_context_but_stay_stored() {
    let app = spawn_app(AppOptions::default()).await;
    let store = &app.engine.shared().store;
    let now = actors::clock::wall_clock_ms();
    let turn = |role, text: &str, at_ms| actors::domain::transcript::Turn {
        role,
        text: text.into(),
        at_ms,
    };
    // Yesterday's exchange (past the default 24 h) and this morning's.
    for t in [
        turn(
            Role::User,
            "my old question about red bikes",
            now - 30 * HOUR_MS,
        ),
        turn(Role::Assistant, "an old answer", now - 30 * HOUR_MS + 1),
        turn(Role::User, "a recent question", now - HOUR_MS),
        turn(Role::Assistant, "a recent answer", now - HOUR_MS + 1),
    ] {
        store.append_turn(CUSTOMER, &t).await.expect("seeded");
    }
    let reply = app
        .sms_reply("SM010", CUSTOMER, "What are your opening hours?")
        .await;
    assert!(!reply.is_empty());
    let stats = app
        .wait_for_mock("a chat request", 5 * SECOND, |s| s.chat_requests >= 1)
        .await;
    let sent = stats
        .last_chat_messages
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(sent.contains("a recent question"), "{sent}");
    assert!(sent.contains("What are your opening hours?"), "{sent}");
    assert!(
        !sent.contains("red bikes") && !sent.contains("an old answer"),
        "{sent}"
    );
    // The store keeps them (until storage.retention_days).
    let stored = store.recent_turns(CUSTOMER, 100).await.expect("readable");
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[0].text, "my old question about red bikes");
    app.handle.stop(false).await;
}

/// The agent the customer's live conversation is with, as the dashboard shows it.
async fn live_agent(app: &TestApp) -> Option<String> {
    let views = app
        .engine
        .registry()
        .send(actors::registry::messages::DescribeConversations)
        .await
        .expect("registry answers");
    views
        .into_iter()
        .find(|v| v.kind == "conversation" && v.customer_key.as_deref() == Some(CUSTOMER))
        .map(|v| v.agent)
}

#[actix_web::test]
async fn a_customer_handed_to_booking_is_still_with_booking_after_an_idle_retirement() {
    let app = spawn_app(AppOptions {
        api_key: String::new(),
        tweak: |settings| settings.engine.limits.idle_secs = 1,
        ..AppOptions::default()
    })
    .await;
    let reply = app
        .sms_reply("SM020", CUSTOMER, "I'd like to book a tune-up appointment")
        .await;
    assert!(reply.contains("S102"), "{reply}");
    assert_eq!(live_agent(&app).await.as_deref(), Some("booking"));
    assert_eq!(
        app.customer_record(CUSTOMER).await.text_agent.as_deref(),
        Some("booking")
    );
    app.wait_until_idle(10 * SECOND)
        .await
        .expect("the idle conversation retires");
    // The customer's page (an escalation's link) still shows the thread, from the store.
    let thread = |key: &'static str| {
        let url = format!("{}/actors/conversations/{key}", app.base);
        async move {
            let mut page = awc::Client::default()
                .get(url)
                .insert_header(("Accept", "application/json"))
                .send()
                .await
                .expect("the dashboard answers");
            let status = page.status().as_u16();
            let body = page.body().limit(1 << 20).await.expect("body");
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).ok(),
            )
        }
    };
    let (status, page) = thread("%2B14155550101").await;
    assert_eq!(status, 200);
    let page = page.expect("JSON");
    assert_eq!(page["live"], false, "{page}");
    assert!(page["transcript"].to_string().contains("tune-up"), "{page}");
    assert_eq!(thread("%2B14155550199").await.0, 404, "nobody's thread");
    // A message no agent's keywords claim: whoever has the conversation answers it.
    app.sms_reply("SM021", CUSTOMER, "thanks, one more thing")
        .await;
    assert_eq!(live_agent(&app).await.as_deref(), Some("booking"));
    app.handle.stop(false).await;
}

/// The real binary on a data directory, in local mode, so it can be restarted on it.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    fn start(data_dir: &std::path::Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .env_remove("OPENAI_API_KEY")
            .env_remove("TWILIO_AUTH_TOKEN")
            .env_remove("TWILIO_ACCOUNT_SID")
            .env_remove("SWITCHBOARD_CONFIG")
            .env("PUBLIC_URL", &base)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the switchboard binary starts");
        Server { child, base }
    }

    async fn wait_healthy(&self) {
        let deadline = std::time::Instant::now() + 20 * SECOND;
        loop {
            if let Ok(response) = awc::Client::default()
                .get(format!("{}/health", self.base))
                .send()
                .await
            {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server never became healthy"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sms(&self, sid: &str, body: &str) -> String {
        let mut response = awc::Client::default()
            .post(format!("{}/twilio/messaging", self.base))
            .timeout(15 * SECOND)
            .send_form(&[
                ("MessageSid", sid),
                ("From", CUSTOMER),
                ("To", STORE_NUMBER),
                ("Body", body),
            ])
            .await
            .expect("webhook answers");
        assert_eq!(response.status(), 200);
        let body = response.body().await.expect("body");
        twiml_messages(&String::from_utf8_lossy(&body)).join(" ")
    }

    /// The dashboard's JSON (a loopback client needs no token without one set).
    async fn actors_json(&self) -> serde_json::Value {
        let mut response = awc::Client::default()
            .get(format!("{}/actors", self.base))
            .insert_header(("Accept", "application/json"))
            .send()
            .await
            .expect("dashboard answers");
        assert_eq!(response.status(), 200);
        response.json().limit(1 << 20).await.expect("JSON")
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

#[actix_web::test]
async fn a_customer_handed_to_booking_is_still_with_booking_after_a_restart() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = Server::start(data.path());
    server.wait_healthy().await;
    let reply = server
        .sms("SMR1", "I'd like to book a tune-up appointment")
        .await;
    assert!(reply.contains("S102"), "{reply}");
    server.kill();

    let server = Server::start(data.path());
    server.wait_healthy().await;
    server.sms("SMR2", "thanks, one more thing").await;
    let dashboard = server.actors_json().await.to_string();
    assert!(
        dashboard.contains(r#""agent":"booking""#) && !dashboard.contains(r#""agent":"triage""#),
        "{dashboard}"
    );
    server.kill();
}

const AUTH_TOKEN: &str = "test-auth-token";
const HUMAN: &str = "+14155550199";

fn basic_auth() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    )
}

/// Signed webhooks, REST credentials against the fake Twilio, inline TwiML replies, a
/// person to escalate to, and the local model.
fn with_twilio(rest: &FakeTwilioRest) -> AppOptions {
    AppOptions {
        api_key: String::new(),
        auth_token: Some(AUTH_TOKEN.into()),
        account_sid: Some(ACCOUNT_SID.into()),
        twilio_rest: Some(rest.base.clone()),
        human_number: Some(HUMAN.into()),
        tweak: |settings| {
            settings.engine.twilio.phone_number = Some(STORE_NUMBER.into());
            settings.engine.messaging.reply_mode = actors::config::ReplyMode::Twiml;
        },
        ..AppOptions::default()
    }
}

#[actix_web::test]
async fn escalating_a_text_conversation_texts_the_person_with_a_summary_and_the_thread() {
    let rest = FakeTwilioRest::start();
    let app = spawn_app(with_twilio(&rest)).await;
    let reply = app
        .sms_reply(
            "SM030",
            CUSTOMER,
            "I was charged twice, I want to talk to a real person",
        )
        .await;
    // The customer is told what happens next.
    assert!(
        reply.contains("passed our conversation to a colleague") && reply.contains("reply to you"),
        "{reply}"
    );
    let calls = rest.wait_for(1, 10 * SECOND).await;
    let [sms] = &calls[..] else {
        panic!("one text to the person: {calls:#?}")
    };
    assert_eq!(
        sms.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    assert_eq!(sms.authorization.as_deref(), Some(basic_auth().as_str()));
    assert_eq!(sms.field("To"), Some(HUMAN));
    assert_eq!(sms.field("From"), Some(STORE_NUMBER));
    let body = sms.field("Body").unwrap_or_default();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{body}");
    assert!(
        lines[0].contains(CUSTOMER) && lines[0].contains("(sms) needs a person"),
        "{body}"
    );
    assert_eq!(
        lines[1],
        "They last wrote: \"I was charged twice, I want to talk to a real person\""
    );
    let link = lines[2].strip_prefix("Thread: ").expect("a link");
    assert_eq!(
        link,
        format!("{}/actors/conversations/%2B14155550101", app.base),
        "the customer's own key: it outlives the conversation's actor"
    );
    // The link is the dashboard's page of that conversation, thread included.
    let mut page = awc::Client::default()
        .get(link)
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .expect("the dashboard answers");
    assert_eq!(page.status(), 200);
    let page: serde_json::Value = page.json().limit(1 << 20).await.expect("JSON");
    assert!(
        page["transcript"].to_string().contains("charged twice"),
        "{page}"
    );
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

#[actix_web::test]
async fn media_in_a_conversations_message_is_acknowledged_as_for_mms() {
    let rest = FakeTwilioRest::start();
    let app = spawn_app(with_twilio(&rest)).await;
    let media = r#"[{"sid":"ME00000000000000000000000000000001","content_type":"image/jpeg","filename":"broken-wheel.jpg","size":48213}]"#;
    let (status, _) = app
        .post_twilio(
            "/twilio/conversations",
            &[
                ("EventType", "onMessageAdded"),
                ("AccountSid", ACCOUNT_SID),
                ("ConversationSid", "CH00000000000000000000000000000009"),
                ("MessageSid", "IM090"),
                ("Author", "whatsapp:+14155550101"),
                ("Body", ""),
                ("Media", media),
                ("Source", "WHATSAPP"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let calls = rest.wait_for(1, 10 * SECOND).await;
    assert_eq!(
        calls[0].path,
        "/v1/Conversations/CH00000000000000000000000000000009/Messages"
    );
    // The WhatsApp participant is the SMS customer, and the attachment is in their words.
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns(CUSTOMER, 10)
        .await
        .expect("readable");
    assert_eq!(
        turns[0].text,
        "[The customer attached 1 file(s): broken-wheel.jpg]"
    );
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

// --- Lookup -----------------------------------------------------------------------

const VERIFY_SERVICE: &str = "VA00000000000000000000000000000007";
const LANDLINE: &str = "+14155550123";
const FLAKY: &str = "+14155550124";

fn fake_twilio() -> FakeTwilioRest {
    FakeTwilioRest::with_identity(
        support::twilio_identity::FakeIdentity::new(ACCOUNT_SID, AUTH_TOKEN, VERIFY_SERVICE)
            .line(LANDLINE, "landline")
            .failing(FLAKY),
    )
}

/// As [`with_twilio`], with Lookup on, the emulator's chat model, and idle conversations
/// retiring after a second.
fn with_lookup(rest: &FakeTwilioRest) -> AppOptions {
    AppOptions {
        api_key: "sk-test".into(),
        tweak: |settings| {
            settings.engine.twilio.phone_number = Some(STORE_NUMBER.into());
            settings.engine.messaging.reply_mode = actors::config::ReplyMode::Twiml;
            settings.engine.lookup.enabled = true;
            settings.engine.limits.idle_secs = 1;
        },
        ..with_twilio(rest)
    }
}

fn lookups(rest: &FakeTwilioRest) -> Vec<support::RestCall> {
    rest.requests_under("/v2/PhoneNumbers/")
}

#[actix_web::test]
async fn a_landline_is_looked_up_once_and_never_offered_texts() {
    let rest = fake_twilio();
    let app = spawn_app(with_lookup(&rest)).await;
    let reply = app
        .sms_reply("SM040", LANDLINE, "Where is my order 1001?")
        .await;
    assert!(!reply.is_empty());
    let asked = lookups(&rest);
    let [lookup] = &asked[..] else {
        panic!("one Lookup: {asked:#?}")
    };
    assert_eq!(lookup.method, "GET");
    assert_eq!(lookup.path, "/v2/PhoneNumbers/%2B14155550123");
    assert_eq!(lookup.query, "Fields=line_type_intelligence");
    assert_eq!(lookup.authorization.as_deref(), Some(basic_auth().as_str()));
    let line = app.customer_record(LANDLINE).await.line.expect("cached");
    assert_eq!(line.line_type, "landline");
    // The orders agent answered, without send_sms, and was told why.
    let stats = app.mock.stats();
    assert!(
        stats.last_chat_tools.iter().any(|t| t == "lookup_order")
            && !stats.last_chat_tools.iter().any(|t| t == "send_sms"),
        "{:?}",
        stats.last_chat_tools
    );
    let told = stats
        .last_chat_messages
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(
        told.contains("landline and cannot receive text messages"),
        "{told}"
    );

    // The next contact, after the conversation retired, reads the cache.
    app.wait_until_idle(10 * SECOND).await.expect("retires");
    app.sms_reply("SM041", LANDLINE, "Where is my order 1001 now?")
        .await;
    assert_eq!(lookups(&rest).len(), 1, "cached on the customer record");

    // A mobile number is offered texts as before.
    app.sms_reply("SM042", CUSTOMER, "Where is my order 1001?")
        .await;
    let stats = app.mock.stats();
    assert!(
        stats.last_chat_tools.iter().any(|t| t == "send_sms"),
        "{:?}",
        stats.last_chat_tools
    );
    assert_eq!(
        app.customer_record(CUSTOMER)
            .await
            .line
            .map(|l| l.line_type)
            .as_deref(),
        Some("mobile")
    );
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

#[actix_web::test]
async fn a_failed_lookup_never_blocks_and_is_tried_again_at_the_next_contact() {
    let rest = fake_twilio();
    let app = spawn_app(with_lookup(&rest)).await;
    let reply = app
        .sms_reply("SM050", FLAKY, "What are your opening hours?")
        .await;
    assert!(!reply.is_empty(), "answered without the line type");
    assert_eq!(lookups(&rest).len(), 1);
    let record = app
        .engine
        .shared()
        .store
        .customer(FLAKY)
        .await
        .expect("readable");
    assert!(record.and_then(|r| r.line).is_none(), "nothing cached");
    app.wait_until_idle(10 * SECOND).await.expect("retires");
    app.sms_reply("SM051", FLAKY, "And on Sunday?").await;
    assert_eq!(lookups(&rest).len(), 2, "asked again");
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

// --- Verification -------------------------------------------------------------------

/// The local model, with a Verify Service on the fake Twilio.
fn with_verify(rest: &FakeTwilioRest) -> AppOptions {
    AppOptions {
        tweak: |settings| {
            settings.engine.twilio.phone_number = Some(STORE_NUMBER.into());
            settings.engine.messaging.reply_mode = actors::config::ReplyMode::Twiml;
            settings.engine.twilio.verify_service_sid = Some(VERIFY_SERVICE.into());
        },
        ..with_twilio(rest)
    }
}

fn verify_calls(rest: &FakeTwilioRest) -> Vec<support::RestCall> {
    rest.requests_under("/v2/Services/")
}

#[actix_web::test]
async fn an_order_from_another_number_is_given_after_a_verify_code() {
    let rest = fake_twilio();
    let app = spawn_app(with_verify(&rest)).await;
    // Order 1003 was placed from +14155550102: offered verification, not refused flat.
    let reply = app
        .sms_reply("SM060", CUSTOMER, "Where is my order 1003?")
        .await;
    assert!(
        reply.contains("different phone number") && reply.contains("verif"),
        "{reply}"
    );
    assert!(!reply.contains("processing"), "nothing disclosed: {reply}");

    let reply = app
        .sms_reply(
            "SM061",
            CUSTOMER,
            "Yes please, send a code to verify order 1003",
        )
        .await;
    assert!(reply.contains("ending in 0102"), "{reply}");
    let calls = verify_calls(&rest);
    let [start] = &calls[..] else {
        panic!("one verification started: {calls:#?}")
    };
    assert_eq!(start.method, "POST");
    assert_eq!(
        start.path,
        format!("/v2/Services/{VERIFY_SERVICE}/Verifications")
    );
    assert_eq!(start.authorization.as_deref(), Some(basic_auth().as_str()));
    assert_eq!(start.field("To"), Some("+14155550102"));
    assert_eq!(start.field("Channel"), Some("sms"));

    // A wrong code is not enough (Verify answers `pending`).
    let reply = app.sms_reply("SM062", CUSTOMER, "My code is 654321").await;
    assert!(reply.contains("not right"), "{reply}");
    assert!(!reply.contains("processing"), "{reply}");

    let reply = app
        .sms_reply("SM063", CUSTOMER, "Sorry, my code is 123456")
        .await;
    assert!(
        reply.contains("confirmed") && reply.contains("1003") && reply.contains("prepared"),
        "{reply}"
    );
    let checks: Vec<_> = verify_calls(&rest)
        .into_iter()
        .filter(|c| c.path.ends_with("/VerificationCheck"))
        .collect();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[1].field("To"), Some("+14155550102"));
    assert_eq!(checks[1].field("Code"), Some("123456"));
    // The proved number is remembered: the order can be asked about again.
    let record = app.customer_record(CUSTOMER).await;
    assert!(record.verified.iter().any(|v| v.number == "+14155550102"));
    let reply = app
        .sms_reply("SM064", CUSTOMER, "What was my order 1003 again?")
        .await;
    assert!(reply.contains("prepared"), "{reply}");
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

#[actix_web::test]
async fn without_a_verify_service_the_order_is_refused_and_no_code_is_offered() {
    let rest = fake_twilio();
    let app = spawn_app(with_twilio(&rest)).await;
    let reply = app
        .sms_reply("SM070", CUSTOMER, "Where is my order 1003?")
        .await;
    assert!(
        reply.contains("can only be discussed from that number"),
        "{reply}"
    );
    let reply = app
        .sms_reply("SM071", CUSTOMER, "Send a code to verify order 1003")
        .await;
    assert!(!reply.contains("ending in"), "{reply}");
    assert!(verify_calls(&rest).is_empty());
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

// --- Bad input and replies --------------------------------------------------------

#[actix_web::test]
async fn a_reply_goes_to_the_e164_address_on_the_channel_written_on() {
    let rest = fake_twilio();
    let app = spawn_app(AppOptions {
        tweak: |settings| {
            settings.engine.twilio.phone_number = Some(STORE_NUMBER.into());
            settings.engine.messaging.reply_mode = actors::config::ReplyMode::Rest;
        },
        ..with_twilio(&rest)
    })
    .await;
    // A `+` left unencoded by whoever built the form arrives as a space.
    let (status, twiml) = app
        .sms("SM080", "whatsapp: 14155550101", "Hi, are you open?")
        .await;
    assert_eq!(status, 200);
    assert!(
        twiml_messages(&twiml).is_empty(),
        "answered over REST: {twiml}"
    );
    let calls = rest.wait_for(1, 10 * SECOND).await;
    assert_eq!(calls[0].field("To"), Some("whatsapp:+14155550101"));
    assert_eq!(
        app.engine
            .shared()
            .store
            .recent_turns(CUSTOMER, 10)
            .await
            .expect("readable")
            .len(),
        2
    );
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

#[actix_web::test]
async fn unreadable_conversations_media_is_still_acknowledged_and_bad_forms_store_nothing() {
    let rest = fake_twilio();
    let app = spawn_app(with_twilio(&rest)).await;
    let form = |sid: &'static str, media: &'static str| {
        vec![
            ("EventType", "onMessageAdded"),
            ("AccountSid", ACCOUNT_SID),
            ("ConversationSid", "CH00000000000000000000000000000010"),
            ("MessageSid", sid),
            ("Author", CUSTOMER),
            ("Body", "look"),
            ("Media", media),
        ]
    };
    let (status, _) = app
        .post_twilio("/twilio/conversations", &form("IM100", "{not json"))
        .await;
    assert_eq!(status, 200);
    rest.wait_for(1, 10 * SECOND).await;
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns(CUSTOMER, 10)
        .await
        .expect("readable");
    assert_eq!(
        turns[0].text,
        "look\n[The customer attached 1 file(s): (an attachment)]"
    );
    // Unsigned: 403, nothing processed or stored (SPEC §12).
    let (status, _) =
        support::unsigned_post(&app, "/twilio/conversations", &form("IM101", "[]")).await;
    assert_eq!(status, 403);
    // Signed but without its Author: 400 naming the field, nothing stored.
    let (status, body) = app
        .post_twilio(
            "/twilio/conversations",
            &[
                ("EventType", "onMessageAdded"),
                ("ConversationSid", "CH00000000000000000000000000000010"),
                ("MessageSid", "IM102"),
                ("Body", "x"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("Author"), "{body}");
    let after = app
        .engine
        .shared()
        .store
        .recent_turns(CUSTOMER, 10)
        .await
        .expect("readable");
    assert_eq!(after.len(), turns.len());
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}

#[actix_web::test]
async fn a_landline_caller_is_looked_up_and_the_realtime_session_offers_no_texts() {
    let rest = fake_twilio();
    let app = spawn_app(AppOptions {
        api_key: "sk-test".into(),
        tweak: |settings| {
            settings.engine.lookup.enabled = true;
            // The agent with send_sms answers the phone.
            settings.agents.default_agent = "orders".into();
        },
        ..with_twilio(&rest)
    })
    .await;
    let call = switchboard::sim::twilio::LiveCall::dial(
        &app.base,
        Some(AUTH_TOKEN),
        "CA00000000000000000000000000000123",
        "+1 (415) 555-0123",
        STORE_NUMBER,
    )
    .await
    .expect("the call connects");
    let stats = app
        .wait_for_mock("the session configured", 10 * SECOND, |s| {
            s.session_updates >= 1 && s.last_session.is_some()
        })
        .await;
    let session = stats.last_session.expect("a session");
    let tools: Vec<&str> = session["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tools.contains(&"lookup_order") && !tools.contains(&"send_sms"),
        "{tools:?}"
    );
    assert!(session["instructions"]
        .as_str()
        .is_some_and(|i| i.contains("landline")));
    let asked = lookups(&rest);
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert_eq!(asked[0].path, "/v2/PhoneNumbers/%2B14155550123");
    assert_eq!(
        app.customer_record(LANDLINE)
            .await
            .line
            .map(|l| l.line_type)
            .as_deref(),
        Some("landline")
    );
    drop(call);
    app.handle.stop(false).await;
    rest.handle.stop(false).await;
}
