//! `switchboard chat`: the terminal client, run as the real binary against a real server,
//! with its input piped in like a script.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{spawn_app, AppOptions};

#[actix_web::test]
async fn the_terminal_client_streams_answers_from_the_web_chat_socket() {
    let app = spawn_app(AppOptions {
        api_key: String::new(),
        ..AppOptions::default()
    })
    .await;
    let base = app.base.clone();
    let running = actix_web::rt::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["chat", "--target", &base, "--id", "terminal-test-01"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchboard chat starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"where is my order 1001?\n")
            .expect("typed");
        child.wait_with_output().expect("exits after the answer")
    });
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), running)
        .await
        .expect("the client answers and exits in time")
        .expect("joined");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("agent> ") && stdout.contains("1001"),
        "{stdout}"
    );
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns("web:terminal-test-01", 10)
        .await
        .expect("store readable");
    assert_eq!(
        turns.len(),
        2,
        "the question and the answer are in the thread"
    );
    app.handle.stop(false).await;
}
