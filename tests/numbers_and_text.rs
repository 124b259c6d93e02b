//! End-to-end "Numbers and identity" and "Text channels" (issue 9): one E.164 key per
//! number whatever the channel wrote, the text history's time to live, the active agent
//! kept across retirement and restart, escalation by SMS to a person, Lookup v2 line types
//! and Verify v2 codes — read off the REST traffic the way Twilio would see it.

mod support;

use std::time::Duration;

use actors::domain::transcript::Role;
use support::{spawn_app, twiml_messages, AppOptions, TestApp};

#[allow(dead_code)]
const SECOND: Duration = Duration::from_secs(1);
/// The customer of order 1001 in `config/catalog/orders.json`.
const CUSTOMER: &str = "+14155550101";
const STORE_NUMBER: &str = "+18005550100";
const ACCOUNT_SID: &str = "AC00000000000000000000000000000042";

async fn sms(app: &TestApp, sid: &str, from: &str, body: &str) -> (u16, String) {
    app.post_twilio(
        "/twilio/messaging",
        &[
            ("MessageSid", sid),
            ("AccountSid", ACCOUNT_SID),
            ("From", from),
            ("To", STORE_NUMBER),
            ("Body", body),
            ("NumMedia", "0"),
        ],
    )
    .await
}

async fn sms_reply(app: &TestApp, sid: &str, from: &str, body: &str) -> String {
    let (status, twiml) = sms(app, sid, from, body).await;
    assert_eq!(status, 200, "{twiml}");
    twiml_messages(&twiml).join(" ")
}

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
    let reply = sms_reply(
        &app,
        "SM001",
        "whatsapp:+14155550101",
        "Where is my order 1001?",
    )
    .await;
    assert!(
        reply.contains("1001") && reply.contains("shipped"),
        "{reply}"
    );
    let reply = sms_reply(&app, "SM002", " 14155550101", "And my order 1001 again?").await;
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
