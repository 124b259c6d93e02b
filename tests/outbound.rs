//! SPEC §14: the Messages API and Conversations messages are never sent in a way that can
//! text someone twice. A send is repeated only when Twilio provably created nothing (the
//! connection could not be made, or it answered `429`); after a `5xx`, or a request read
//! and never answered, it is reported in the log and not sent again.
//!
//! The tests read the server's log, so they run one at a time in this binary, each with
//! the log buffer to itself.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use support::{spawn_app, AppOptions, FakeTwilioRest, HangUpServer, RestCall, TestApp};

const SECOND: Duration = Duration::from_secs(1);
const CUSTOMER: &str = "+14155550101";
const STORE_NUMBER: &str = "+18005550100";
const ACCOUNT_SID: &str = "AC00000000000000000000000000000042";
const AUTH_TOKEN: &str = "test-auth-token";
/// What the server logs when it sends a message again.
const RETRY_NOTICE: &str = "sending it again";

/// Everything the process logs at info and above.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `test` in its own actix system, one test at a time, starting with an empty log.
fn serially(test: impl std::future::Future<Output = ()>) {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _turn = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    log().lock().unwrap_or_else(PoisonError::into_inner).clear();
    actix_web::rt::System::new().block_on(test);
}

fn log_text() -> String {
    String::from_utf8_lossy(&log().lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

/// Waits until the log has a line containing every one of `needles` that is not a notice
/// of a retry; returns that line.
async fn logged(needles: &[&str], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = log_text();
        if let Some(line) = text.lines().find(|line| {
            !line.contains(RETRY_NOTICE) && needles.iter().all(|needle| line.contains(needle))
        }) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needles:?} within {within:?}:\n{text}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn rest_app(base: &str) -> TestApp {
    spawn_app(AppOptions {
        api_key: String::new(),
        auth_token: Some(AUTH_TOKEN.into()),
        account_sid: Some(ACCOUNT_SID.into()),
        twilio_rest: Some(base.to_owned()),
        ..AppOptions::default()
    })
    .await
}

async fn sms(app: &TestApp, sid: &str) {
    let (status, _) = app
        .post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", CUSTOMER),
                ("To", STORE_NUMBER),
                ("Body", "What are your hours?"),
            ],
        )
        .await;
    assert_eq!(status, 200);
}

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
}

fn calls(recorded: &Mutex<Vec<RestCall>>) -> Vec<RestCall> {
    recorded.lock().expect("lock").clone()
}

#[test]
fn a_500_from_the_messages_api_is_reported_and_never_sent_again() {
    serially(async {
        let rest = FakeTwilioRest::answering(vec![500]);
        let app = rest_app(&rest.base).await;
        sms(&app, "SM500").await;
        let line = logged(&["Twilio answered 500", "not retried"], 10 * SECOND).await;
        assert!(line.contains("ERROR") || line.contains("WARN"), "{line}");
        // The verdict is logged after the last attempt: there was exactly one.
        let sent = calls(&rest.calls);
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert_eq!(sent[0].path, messages_path());
        assert_eq!(sent[0].field("To"), Some(CUSTOMER));
        app.handle.stop(false).await;
        rest.handle.stop(false).await;
    });
}

#[test]
fn a_send_read_and_never_answered_is_reported_and_never_sent_again() {
    serially(async {
        let twilio = HangUpServer::start().await;
        let app = rest_app(&twilio.base).await;
        sms(&app, "SM501").await;
        logged(&["Twilio may or may not have sent it"], 20 * SECOND).await;
        let sent = calls(&twilio.calls);
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert_eq!(sent[0].path, messages_path());
        assert!(sent[0].field("Body").is_some_and(|b| !b.is_empty()));
        app.handle.stop(false).await;
    });
}

#[test]
fn a_conversations_reply_follows_the_same_rule() {
    serially(async {
        let rest = FakeTwilioRest::answering(vec![503]);
        let app = rest_app(&rest.base).await;
        let (status, _) = app
            .post_twilio(
                "/twilio/conversations",
                &[
                    ("EventType", "onMessageAdded"),
                    ("AccountSid", ACCOUNT_SID),
                    ("ConversationSid", "CH00000000000000000000000000000003"),
                    ("MessageSid", "IM503"),
                    ("Author", CUSTOMER),
                    ("Body", "What are your hours?"),
                ],
            )
            .await;
        assert_eq!(status, 200);
        logged(&["Twilio answered 503", "not retried"], 10 * SECOND).await;
        let sent = calls(&rest.calls);
        assert_eq!(sent.len(), 1, "{sent:#?}");
        assert_eq!(
            sent[0].path,
            "/v1/Conversations/CH00000000000000000000000000000003/Messages"
        );
        app.handle.stop(false).await;
        rest.handle.stop(false).await;
    });
}

#[test]
fn a_throttled_send_goes_again_until_twilio_takes_it() {
    serially(async {
        let rest = FakeTwilioRest::answering(vec![429]);
        let app = rest_app(&rest.base).await;
        sms(&app, "SM429").await;
        let sent = rest.wait_for(2, 10 * SECOND).await;
        assert_eq!(sent[0].form, sent[1].form, "the same message, sent again");
        assert_eq!(sent[1].path, messages_path());
        let text = log_text();
        assert!(
            text.lines()
                .any(|line| line.contains(RETRY_NOTICE) && line.contains("429")),
            "{text}"
        );
        // Taken the second time: nothing more follows and nothing is reported as lost.
        actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(calls(&rest.calls).len(), 2);
        let text = log_text();
        let reported = |line: &&str| {
            ["Twilio answered", "Twilio may", "Twilio unreachable"]
                .iter()
                .any(|failure| line.contains(failure))
        };
        assert!(
            !text
                .lines()
                .filter(|line| !line.contains(RETRY_NOTICE))
                .any(|line| reported(&line)),
            "{text}"
        );
        app.handle.stop(false).await;
        rest.handle.stop(false).await;
    });
}

#[test]
fn a_send_that_cannot_connect_is_tried_again_then_reported() {
    serially(async {
        // A port nobody listens on: the connection is refused, so nothing was created.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let app = rest_app(&base).await;
        sms(&app, "SM502").await;
        logged(&["Twilio unreachable"], 20 * SECOND).await;
        let text = log_text();
        let retries = text
            .lines()
            .filter(|line| line.contains(RETRY_NOTICE))
            .count();
        assert_eq!(retries, 2, "three attempts in all:\n{text}");
        assert!(!text.contains("may or may not"), "{text}");
        app.handle.stop(false).await;
    });
}
