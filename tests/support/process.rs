//! The real `switchboard` binary as a separate process, for what only a process shows:
//! signals, exit codes, running from another directory.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `switchboard` with a clean environment: no keys, no Twilio credentials, no configuration
/// from the caller's shell, logs at `warn`.
pub fn command(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .current_dir(cwd)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_DATA_DIR")
        .env_remove("SWITCHBOARD_BIND")
        .env_remove("SWITCHBOARD_ADMIN_TOKEN")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("RUST_LOG", "warn");
    command
}

pub struct ServerProcess {
    pub child: Child,
    pub base: String,
}

impl ServerProcess {
    /// Starts `switchboard serve --bind 127.0.0.1:<free port>` with `extra` arguments, in
    /// `cwd`, after `setup` adjusted the command (environment, say).
    pub fn start(cwd: &Path, extra: &[&str], setup: impl FnOnce(&mut Command)) -> ServerProcess {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut command = command(cwd);
        command
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("PUBLIC_URL", &base)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        setup(&mut command);
        let child = command.spawn().expect("the switchboard binary starts");
        ServerProcess { child, base }
    }

    pub async fn wait_healthy(&self) {
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

    /// `GET /health`: status and body.
    pub async fn health(&self) -> Option<(u16, String)> {
        let mut response = awc::Client::default()
            .get(format!("{}/health", self.base))
            .send()
            .await
            .ok()?;
        let body = response.body().await.ok()?;
        Some((
            response.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }

    /// Sends a signal (`TERM`, `INT`, …) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit on its own; fails the test after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {within:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    /// A test that failed half-way leaves no server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
