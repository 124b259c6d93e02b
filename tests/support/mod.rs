//! Test harness: the real application on port 0, wired to the product's own OpenAI
//! emulator, with a fresh data directory per test.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use actors::config::{AudioMode, Secret};
use actors::domain::agents::ToolKind;
use actors::registry::messages::ListCalls;
use actors::Engine;
use switchboard::config::{load_with_env, Settings};
use switchboard::sim::mock_openai::{MockOptions, MockServer, Script};
use switchboard::startup::Application;

pub struct TestApp {
    pub base: String,
    pub engine: Engine,
    pub mock: MockServer,
    pub handle: actix_web::dev::ServerHandle,
    pub data_dir: tempfile::TempDir,
}

/// What a test may change about the server and the emulator.
pub struct AppOptions {
    pub audio_mode: AudioMode,
    pub mock: MockOptions,
    pub api_key: String,
    pub auth_token: Option<String>,
    pub human_number: Option<String>,
    pub hold_after_ms: u64,
    pub session_cap_secs: u64,
    pub reconnect_attempts: u32,
    pub reconnect_base_ms: u64,
    pub greet: bool,
    /// Edit the settings last, for anything else.
    pub tweak: fn(&mut Settings),
    /// Replaces the `url` of HTTP tools whose url is `PLACEHOLDER` (set by `tweak`).
    pub tool_url: Option<String>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            audio_mode: AudioMode::Pcmu,
            mock: MockOptions::default(),
            api_key: "sk-test".into(),
            auth_token: None,
            human_number: None,
            hold_after_ms: 1200,
            session_cap_secs: 3300,
            reconnect_attempts: 5,
            reconnect_base_ms: 100,
            greet: true,
            tweak: |_| {},
            tool_url: None,
        }
    }
}

pub fn script(json: &str) -> Option<Script> {
    Some(Script::parse(json).expect("test script parses"))
}

/// Starts the emulator and the application; must run inside an actix system.
pub async fn spawn_app(options: AppOptions) -> TestApp {
    let mock = MockServer::start("127.0.0.1:0", options.mock).expect("emulator starts");
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.toml");
    let mut settings = load_with_env(&config, |_| None).expect("shipped config loads");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local addr").port();
    let base = format!("http://127.0.0.1:{port}");
    let engine = &mut settings.engine;
    engine.server.bind = format!("127.0.0.1:{port}");
    engine.server.public_url = base.clone();
    engine.openai.base_url = mock.base_url();
    engine.openai.api_key = Some(Secret::new(options.api_key));
    engine.twilio.auth_token = options.auth_token.map(Secret::new);
    engine.twilio.human_number = options.human_number;
    engine.storage.data_dir = data_dir.path().to_path_buf();
    engine.voice.audio_mode = options.audio_mode;
    engine.voice.hold_after_ms = options.hold_after_ms;
    engine.voice.session_cap_secs = options.session_cap_secs;
    engine.voice.greet = options.greet;
    engine.voice.reconnect.max_attempts = options.reconnect_attempts;
    engine.voice.reconnect.base_ms = options.reconnect_base_ms;
    engine.voice.reconnect.max_ms = options.reconnect_base_ms * 4;
    (options.tweak)(&mut settings);
    if let Some(url) = options.tool_url {
        for tool in &mut settings.agents.tools {
            if let ToolKind::Http {
                url: placeholder, ..
            } = &mut tool.kind
            {
                if placeholder == "PLACEHOLDER" {
                    placeholder.clone_from(&url);
                }
            }
        }
    }
    let app = Application::build_on(settings, listener).expect("application builds");
    let engine = app.engine().clone();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        base,
        engine,
        mock,
        handle,
        data_dir,
    }
}

impl TestApp {
    pub fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }

    /// Waits until the engine has no live call and no actor of any kind left.
    pub async fn wait_until_idle(&self, within: Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let calls = self
                .engine
                .registry()
                .send(ListCalls)
                .await
                .map_err(|e| e.to_string())?;
            let census = self.engine.shared().census.snapshot();
            if calls.is_empty() && census.total() == 0 {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "still alive after {within:?}: {} calls in the registry, census {census:?}",
                    calls.len()
                ));
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the emulator's counters until `pred` holds.
    pub async fn wait_for_mock(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&switchboard::sim::mock_openai::MockStats) -> bool,
    ) -> switchboard::sim::mock_openai::MockStats {
        let deadline = std::time::Instant::now() + within;
        loop {
            let stats = self.mock.stats();
            if pred(&stats) {
                return stats;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "emulator never saw {what} within {within:?}: {stats:#?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
