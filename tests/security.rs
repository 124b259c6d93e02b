//! SPEC §9 and §12 at the edges: signatures on every Twilio route and handshake, refusal
//! to start on a bad data directory, configuration or public bind, and the operators'
//! `verify-signature` command on Twilio's own test vectors.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{spawn_app, AppOptions};
use switchboard::sim::twilio::{Event, LiveCall};

const TOKEN: &str = "test-auth-token";

#[actix_web::test]
async fn every_twilio_route_refuses_a_missing_or_wrong_signature() {
    let app = spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        ..AppOptions::default()
    })
    .await;
    let client = awc::Client::default();
    let form = [
        ("CallSid", "CA00000000000000000000000000000301"),
        ("MessageSid", "SM301"),
        ("From", "+14155550101"),
        ("To", "+18005550100"),
        ("Body", "hi"),
        ("EventType", "onMessageAdded"),
        ("ConversationSid", "CH1"),
        ("Author", "+14155550101"),
        ("CallStatus", "completed"),
    ];
    for path in [
        "/twilio/voice",
        "/twilio/voice/next",
        "/twilio/status",
        "/twilio/messaging",
        "/twilio/conversations",
    ] {
        let mut missing = client
            .post(format!("{}{path}", app.base))
            .send_form(&form)
            .await
            .expect("answers");
        assert_eq!(missing.status(), 403, "{path} without a signature");
        let body = missing.body().await.expect("body");
        let reason = String::from_utf8_lossy(&body);
        assert!(
            reason.contains("X-Twilio-Signature") && reason.lines().count() == 1,
            "{reason}"
        );
        let wrong = client
            .post(format!("{}{path}", app.base))
            .insert_header(("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8="))
            .send_form(&form)
            .await
            .expect("answers");
        assert_eq!(wrong.status(), 403, "{path} with a wrong signature");
    }
    // Nothing was processed: no message stored, no call registered.
    let turns = app
        .engine
        .shared()
        .store
        .recent_turns("+14155550101", 10)
        .expect("store readable");
    assert!(turns.is_empty());

    // The media socket's handshake is checked too; a correctly signed call goes through.
    let unsigned = awc::Client::new()
        .ws(format!("{}/twilio/media", app.ws_base()))
        .connect()
        .await;
    let status = match unsigned {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => status.as_u16(),
        other => panic!(
            "unsigned handshake was not refused: {:?}",
            other.map(|_| ())
        ),
    };
    assert_eq!(status, 403);
    let mut call = LiveCall::dial(
        &app.base,
        Some(TOKEN),
        "CA00000000000000000000000000000302",
        "+14155550101",
        "+18005550100",
    )
    .await
    .expect("signed webhook and signed handshake are accepted");
    call.wait_for(
        |e| matches!(e, Event::Media { .. } | Event::Text(_)),
        Duration::from_secs(5),
    )
    .await
    .expect("the call is live");
    call.hang_up().await.expect("hang up");
    app.handle.stop(false).await;
}

fn switchboard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .env_remove("OPENAI_API_KEY")
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("SWITCHBOARD_CONFIG")
        .env("RUST_LOG", "error");
    command
}

fn repo_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/switchboard.toml")
}

#[test]
fn the_server_refuses_to_start_on_bad_ground_and_says_why() {
    let scratch = tempfile::tempdir().expect("temp dir");

    // A data "directory" that is a file.
    let file = scratch.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("file");
    let out = switchboard()
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(repo_config())
        .arg("--data-dir")
        .arg(&file)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-directory"), "{stderr}");

    // A configuration file with a wrong type names the file and the key.
    let dir = scratch.path().join("config");
    std::fs::create_dir_all(&dir).expect("dir");
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    std::fs::copy(config_dir.join("agents.toml"), dir.join("agents.toml")).expect("copy");
    std::fs::write(
        dir.join("switchboard.toml"),
        "[limits]\nmax_calls = \"many\"\n",
    )
    .expect("write");
    let out = switchboard()
        .args(["serve", "--config"])
        .arg(dir.join("switchboard.toml"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("switchboard.toml") && stderr.contains("max_calls"),
        "{stderr}"
    );

    // Local mode (no auth token) will not listen publicly without --insecure-public.
    let out = switchboard()
        .args(["serve", "--bind", "0.0.0.0:0", "--config"])
        .arg(repo_config())
        .arg("--data-dir")
        .arg(scratch.path().join("data"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--insecure-public"), "{stderr}");
}

#[test]
fn verify_signature_agrees_with_every_twilio_vector() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/twilio_signature_vectors.json");
    let text = std::fs::read_to_string(&path).expect("vectors beside the repo");
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).expect("vector JSON");
    let input: String = vectors
        .iter()
        .map(|v| {
            serde_json::json!({
                "url": v["url"], "params": v["params"], "body": v["body"],
                "auth_token": v["auth_token"], "signature": v["signature"],
            })
            .to_string()
                + "\n"
        })
        .collect();
    let mut child = switchboard()
        .arg("verify-signature")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("written");
    let out = child.wait_with_output().expect("finishes");
    assert!(out.status.success());
    let answers: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| line == "true")
        .collect();
    let expected: Vec<bool> = vectors.iter().map(|v| v["valid"] == true).collect();
    assert_eq!(answers, expected);
    assert!(expected.iter().any(|v| *v) && expected.iter().any(|v| !*v));
}

#[actix_web::test]
async fn an_oversize_form_is_refused_before_it_is_read() {
    let app = spawn_app(AppOptions::default()).await;
    let big = "x".repeat(70 * 1024);
    let response = awc::Client::default()
        .post(format!("{}/twilio/messaging", app.base))
        .send_form(&[
            ("MessageSid", "SM999"),
            ("From", "+14155550101"),
            ("Body", big.as_str()),
        ])
        .await
        .expect("answers");
    assert_eq!(response.status(), 413);
    app.handle.stop(false).await;
}
