//! Memory that survives: the real binary is killed with SIGKILL mid-conversation and
//! restarted on the same data directory; idle conversation actors stop and come back from
//! sled with their history.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actors::domain::transcript::Role;
use actors::store::{SledStore, Store, ThreadStore};
use support::{spawn_app, twiml_messages, AppOptions};

/// The customer of order 1001 in `config/catalog/orders.json`.
const CUSTOMER: &str = "+14155550101";

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts `switchboard serve` in local mode (no keys) on a free port.
    fn start(data_dir: &Path) -> Server {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.toml");
        Server::start_with(&config, data_dir)
    }

    /// Starts with the configuration file `config` (its folder holds agents, catalog, prompts).
    fn start_with(config: &Path, data_dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .env_remove("OPENAI_API_KEY")
            .env_remove("TWILIO_AUTH_TOKEN")
            .env_remove("TWILIO_ACCOUNT_SID")
            .env_remove("SWITCHBOARD_CONFIG")
            .env("PUBLIC_URL", &base)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the switchboard binary starts");
        Server { child, base }
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
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
            assert!(Instant::now() < deadline, "server never became healthy");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sms(&self, sid: &str, body: &str) -> String {
        let mut response = awc::Client::default()
            .post(format!("{}/twilio/messaging", self.base))
            .timeout(Duration::from_secs(15))
            .send_form(&[
                ("MessageSid", sid),
                ("From", CUSTOMER),
                ("To", "+18005550100"),
                ("Body", body),
            ])
            .await
            .expect("webhook answers");
        assert_eq!(response.status(), 200);
        let body = response.body().await.expect("body");
        twiml_messages(&String::from_utf8_lossy(&body)).join(" ")
    }

    /// SIGKILL: no shutdown code runs, nothing is flushed on the way out.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

#[actix_web::test]
async fn a_conversation_survives_kill_dash_nine() {
    let data = tempfile::tempdir().expect("temp dir");

    let server = Server::start(data.path());
    server.wait_healthy().await;
    let reply = server.sms("SMK1", "Hi, where is my order 1001?").await;
    assert!(reply.contains("shipped"), "{reply}");
    let reply = server
        .sms("SMK2", "I'd like to book a tune-up appointment")
        .await;
    assert!(reply.contains("S102"), "{reply}");
    let reply = server.sms("SMK3", "Please book S102, my name is Ada").await;
    assert!(reply.to_lowercase().contains("booked"), "{reply}");
    server.kill();

    // Same data directory: the booking and the thread are there.
    let server = Server::start(data.path());
    server.wait_healthy().await;
    // A retry of an acknowledged message is still recognised after the crash.
    let retried = server.sms("SMK3", "Please book S102, my name is Ada").await;
    assert!(retried.is_empty(), "{retried}");
    let reply = server
        .sms("SMK4", "Please cancel my appointment S102")
        .await;
    assert!(reply.to_lowercase().contains("cancel"), "{reply}");
    server.kill();

    let store = SledStore::open(data.path()).expect("store reopens");
    let turns = store.recent_turns(CUSTOMER, 100).await.expect("turns");
    let texts: Vec<(Role, &str)> = turns.iter().map(|t| (t.role, t.text.as_str())).collect();
    assert_eq!(turns.len(), 8, "{texts:#?}");
    assert_eq!(texts[0], (Role::User, "Hi, where is my order 1001?"));
    assert_eq!(texts[4], (Role::User, "Please book S102, my name is Ada"));
    assert_eq!(texts[6], (Role::User, "Please cancel my appointment S102"));
    assert!(texts
        .iter()
        .skip(1)
        .step_by(2)
        .all(|(role, _)| *role == Role::Assistant));
    assert!(
        store
            .bookings()
            .booking("S102")
            .expect("readable")
            .is_none(),
        "the cancellation after the restart found the booking made before it"
    );
}

#[actix_web::test]
async fn idle_conversations_stop_and_come_back_from_the_store() {
    let app = spawn_app(AppOptions {
        api_key: String::new(),
        tweak: |settings| settings.engine.limits.idle_secs = 1,
        ..AppOptions::default()
    })
    .await;
    let visitor = "returning-visitor-1";
    let reply = app
        .web_chat(visitor, "Where is my order?", Duration::from_secs(10))
        .await
        .text;
    assert!(reply.to_lowercase().contains("order number"), "{reply}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while app.engine.shared().census.snapshot().conversations > 0 {
        assert!(
            Instant::now() < deadline,
            "the idle conversation never stopped"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // A new actor, restored from sled: the answer only makes sense with the question.
    let reply = app
        .web_chat(visitor, "It's 1001", Duration::from_secs(10))
        .await
        .text;
    assert!(reply.contains("shipped"), "{reply}");
    assert_eq!(app.engine.shared().census.snapshot().conversations, 1);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn the_catalog_is_loaded_into_the_store_at_first_start_and_read_from_it_after() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = Server::start(data.path());
    server.wait_healthy().await;
    server.kill();

    // A configuration folder without `catalog/`: the data now comes from sled.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let config = tempfile::tempdir().expect("temp dir");
    for file in ["switchboard.toml", "agents.toml"] {
        std::fs::copy(shipped.join(file), config.path().join(file)).expect("copy");
    }
    let prompts = config.path().join("prompts");
    std::fs::create_dir_all(&prompts).expect("prompts dir");
    for prompt in ["hold.wav", "fallback.wav"] {
        std::fs::copy(shipped.join("prompts").join(prompt), prompts.join(prompt)).expect("copy");
    }
    let server = Server::start_with(&config.path().join("switchboard.toml"), data.path());
    server.wait_healthy().await;
    let reply = server.sms("SMCAT1", "Where is my order 1001?").await;
    assert!(reply.contains("shipped"), "{reply}");
    server.kill();
}
