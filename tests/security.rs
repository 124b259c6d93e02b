//! SPEC §9 and §12 at the edges: signatures on every Twilio route and handshake, admin
//! surfaces closed to tunnels and proxies without the admin token, refusal to start on a bad
//! data directory, configuration or public bind, and the operators' `verify-signature`
//! command on Twilio's own test vectors.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{spawn_app, AppOptions, TunnelProxy};
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
        .await
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

/// Where a request through the tunnel says it was addressed, as `ngrok http 8080` does.
const PUBLIC_HOST: &str = "switchboard-test.ngrok.app";
const ADMIN_TOKEN: &str = "admin-secret-for-tests";

/// Production-like: Twilio credentials and an https `PUBLIC_URL`, the tunnel's origin.
fn behind_a_tunnel(settings: &mut switchboard::config::Settings) {
    settings.engine.server.public_url = format!("https://{PUBLIC_HOST}");
}

/// Every admin surface (status of each), fetched from `base` with the given extra headers.
async fn admin_statuses(base: &str, headers: &[(&str, &str)]) -> Vec<(String, u16)> {
    let client = awc::Client::default();
    let mut statuses = Vec::new();
    for (path, accept) in [
        ("/actors", "application/json"),
        ("/actors", "text/html"),
        (
            "/actors/calls/CA00000000000000000000000000000399",
            "application/json",
        ),
        ("/metrics", "text/plain"),
    ] {
        let mut request = client
            .get(format!("{base}{path}"))
            .insert_header(("Accept", accept));
        for header in headers {
            request = request.append_header(*header);
        }
        let response = request.send().await.expect("answers");
        statuses.push((format!("{path} ({accept})"), response.status().as_u16()));
    }
    statuses
}

fn all_are(statuses: &[(String, u16)], allowed: &[u16]) -> bool {
    statuses.iter().all(|(_, status)| allowed.contains(status))
}

/// Refused with a token set: `403` for every script, and for a browser asking for a page
/// the sign-in form with `401` (`/actors` is the dashboard's sign-in page then).
fn refused_or_asked_to_sign_in(statuses: &[(String, u16)]) -> bool {
    statuses.iter().all(|(what, status)| {
        *status
            == if what == "/actors (text/html)" {
                401
            } else {
                403
            }
    })
}

/// Served: `200`, and `404` for the transcript of a call the engine never saw — past the
/// access check either way.
fn served(statuses: &[(String, u16)]) -> bool {
    statuses.iter().all(|(what, status)| {
        *status
            == if what.starts_with("/actors/calls/") {
                404
            } else {
                200
            }
    })
}

#[actix_web::test]
async fn admin_surfaces_are_never_served_through_a_tunnel_without_the_token() {
    let app = spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        account_sid: Some("AC00000000000000000000000000000042".into()),
        tweak: behind_a_tunnel,
        ..AppOptions::default()
    })
    .await;
    // Straight from this machine: open, as SPEC §9 allows without a token.
    let direct = admin_statuses(&app.base, &[]).await;
    assert!(served(&direct), "{direct:?}");

    // Through a real forwarding proxy, like ngrok: from 127.0.0.1 too, but refused.
    let tunnel = TunnelProxy::start(&app.base, PUBLIC_HOST, "203.0.113.7").await;
    let proxied = admin_statuses(&tunnel.base, &[]).await;
    assert!(all_are(&proxied, &[403]), "{proxied:?}");
    // Also when the client adds its own forwarding header.
    let spoofing = admin_statuses(&tunnel.base, &[("X-Forwarded-For", "127.0.0.1")]).await;
    assert!(all_are(&spoofing, &[403]), "{spoofing:?}");
    let mut refused = awc::Client::default()
        .get(format!("{}/metrics", tunnel.base))
        .send()
        .await
        .expect("answers");
    let reason = refused.body().await.expect("body");
    let reason = String::from_utf8_lossy(&reason);
    assert!(
        reason.contains("SWITCHBOARD_ADMIN_TOKEN") && reason.lines().count() == 1,
        "{reason}"
    );
    // Nothing of the dashboard leaks into the refusal.
    assert!(!reason.contains("switchboard_"), "{reason}");

    // A proxy that forwards from loopback with any forwarding header, or with the public
    // name as Host, is refused too (nginx with `proxy_set_header`, a header-stripping tunnel).
    for headers in [
        &[("X-Forwarded-For", "203.0.113.7")][..],
        &[("X-Real-IP", "203.0.113.7")],
        &[("Forwarded", "for=203.0.113.7;proto=https")],
        &[("X-Forwarded-Proto", "https")],
        &[("Host", PUBLIC_HOST)],
    ] {
        let statuses = admin_statuses(&app.base, headers).await;
        assert!(all_are(&statuses, &[403]), "{headers:?}: {statuses:?}");
    }

    // The public routes still work through the tunnel.
    let health = awc::Client::default()
        .get(format!("{}/health", tunnel.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(health.status(), 200);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn the_admin_token_opens_admin_surfaces_through_a_tunnel() {
    let app = spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        tweak: |settings| {
            behind_a_tunnel(settings);
            settings.engine.admin.token = Some(actors::config::Secret::new(ADMIN_TOKEN));
        },
        ..AppOptions::default()
    })
    .await;
    let tunnel = TunnelProxy::start(&app.base, PUBLIC_HOST, "203.0.113.7").await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let allowed = admin_statuses(&tunnel.base, &[("Authorization", &bearer)]).await;
    assert!(served(&allowed), "{allowed:?}");
    for wrong in ["Bearer nope", "admin-secret-for-tests", ""] {
        let refused = admin_statuses(&tunnel.base, &[("Authorization", wrong)]).await;
        assert!(
            refused_or_asked_to_sign_in(&refused),
            "{wrong:?}: {refused:?}"
        );
    }
    // With a token set, the token is what counts, from anywhere.
    let direct = admin_statuses(&app.base, &[]).await;
    assert!(refused_or_asked_to_sign_in(&direct), "{direct:?}");
    let direct = admin_statuses(&app.base, &[("Authorization", &bearer)]).await;
    assert!(served(&direct), "{direct:?}");
    app.handle.stop(false).await;
}

/// Runs `switchboard serve` until its start-up banner; returns what it wrote to stderr.
fn start_up_output(configure: impl FnOnce(&mut Command)) -> String {
    use std::io::{BufRead, BufReader};
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut command = switchboard();
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(repo_config())
        .arg("--data-dir")
        .arg(scratch.path().join("data"))
        .env_remove("SWITCHBOARD_ADMIN_TOKEN")
        .env_remove("PUBLIC_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    configure(&mut command);
    let mut child = command.spawn().expect("runs");
    let stderr = child.stderr.take().expect("stderr");
    let mut output = String::new();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        output.push_str(&line);
        output.push('\n');
        if line.contains("switchboard is up") {
            break;
        }
    }
    // This test's own child, stopped by its handle.
    let _ = child.kill();
    let _ = child.wait();
    output
}

#[test]
fn start_up_says_when_admin_pages_are_loopback_only() {
    let warning = "SWITCHBOARD_ADMIN_TOKEN is not set";
    let output = start_up_output(|command| {
        command
            .env("TWILIO_AUTH_TOKEN", TOKEN)
            .env("PUBLIC_URL", format!("https://{PUBLIC_HOST}"));
    });
    assert!(output.contains("switchboard is up"), "{output}");
    let lines: Vec<&str> = output.lines().filter(|l| l.contains(warning)).collect();
    assert_eq!(lines.len(), 1, "one clear line:\n{output}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("/actors") && lines[0].contains("/metrics"),
        "{}",
        lines[0]
    );
    // With the token set there is nothing to warn about.
    let output = start_up_output(|command| {
        command
            .env("TWILIO_AUTH_TOKEN", TOKEN)
            .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN);
    });
    assert!(output.contains("switchboard is up"), "{output}");
    assert!(!output.contains(warning), "{output}");
}
