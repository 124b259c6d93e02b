//! The self-contained binary: the real `switchboard`, run from an empty directory, needs no
//! file of the repository — the configuration, agents, catalog and prompts are built in —
//! and `init` / `check-config` do what they say.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::process::{command, ServerProcess};
use support::twiml_messages;

fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command(cwd);
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the switchboard binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[actix_web::test]
async fn the_binary_serves_from_an_empty_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(dir.path(), &[], |_| {});
    server.wait_healthy().await;
    // The built-in catalog and agents answer.
    let mut response = awc::Client::default()
        .post(format!("{}/twilio/messaging", server.base))
        .timeout(Duration::from_secs(15))
        .send_form(&[
            ("MessageSid", "SMbin1"),
            ("From", "+14155550101"),
            ("To", "+18005550100"),
            ("Body", "Hi, where is my order 1001?"),
        ])
        .await
        .expect("the messaging webhook answers");
    let body = text(&response.body().await.expect("body"));
    let reply = twiml_messages(&body).join(" ");
    assert!(reply.contains("shipped"), "{body}");
    // Its data went to ./data of the working directory.
    assert!(dir.path().join("data").is_dir());
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));
}

#[test]
fn init_writes_the_defaults_and_refuses_to_overwrite_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = run(dir.path(), &["init"], &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let said = text(&first.stdout);
    for file in [
        "switchboard.toml",
        "agents.toml",
        "catalog/orders.json",
        "prompts/goodbye.wav",
        "prompts/caller.wav",
    ] {
        assert!(dir.path().join("config").join(file).is_file(), "{file}");
        assert!(said.contains(file), "{said}");
    }
    let again = run(dir.path(), &["init"], &[]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    let forced = run(dir.path(), &["init", "--force", "elsewhere"], &[]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(dir.path().join("elsewhere/agents.toml").is_file());

    // What was written is what is built in: check-config reads it without a complaint.
    let checked = run(dir.path(), &["check-config"], &[]);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    let shown = text(&checked.stdout);
    assert!(shown.contains("config/switchboard.toml"), "{shown}");
    assert!(
        shown.contains("catalog/orders.json: config/catalog/orders.json"),
        "{shown}"
    );
}

#[test]
fn check_config_shows_the_configuration_in_force_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run(
        dir.path(),
        &["check-config"],
        &[
            ("OPENAI_API_KEY", "sk-do-not-print-me"),
            ("TWILIO_AUTH_TOKEN", "twilio-secret-token"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let shown = text(&output.stdout);
    assert!(!shown.contains("sk-do-not-print-me"), "{shown}");
    assert!(!shown.contains("twilio-secret-token"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(shown.contains("drain_secs = 30"), "{shown}");
    assert!(shown.contains("agents.toml: built-in"), "{shown}");
    assert!(shown.contains("OPENAI_API_KEY"), "{shown}");
}

#[test]
fn check_config_reports_every_problem_with_its_file_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("catalog")).expect("dirs");
    std::fs::write(
        config.join("switchboard.toml"),
        "[voice]\nhold_after_ms = \"soon\"\n\n[limits]\nmax_calls = 10\nmax_callz = 3\n",
    )
    .expect("write");
    std::fs::write(config.join("agents.toml"), "default_agent = 7\n").expect("write");
    std::fs::write(config.join("catalog/hours.json"), "{ not json").expect("write");
    let output = run(
        dir.path(),
        &["check-config"],
        &[("PUBLIC_URL", "ftp://example.com")],
    );
    assert_eq!(output.status.code(), Some(1));
    let said = text(&output.stderr);
    assert!(said.contains("5 problems"), "{said}");
    for expected in [
        "switchboard.toml: voice.hold_after_ms",
        "expected u64",
        "switchboard.toml: limits.max_callz",
        "unknown field",
        "agents.toml",
        "hours.json",
        "PUBLIC_URL",
    ] {
        assert!(said.contains(expected), "{expected} missing from:\n{said}");
    }
    // The same file through --config, from another directory.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let config_file = config.join("switchboard.toml");
    let output = run(
        elsewhere.path(),
        &[
            "check-config",
            "--config",
            config_file.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("4 problems"),
        "{}",
        text(&output.stderr)
    );
    // A --config that does not exist is an error, not the built-in configuration.
    let output = run(
        elsewhere.path(),
        &["check-config", "--config", "missing/switchboard.toml"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("missing/switchboard.toml"));
}

#[test]
fn loadtest_runs_from_an_empty_directory_with_the_built_in_caller() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run(
        dir.path(),
        &[
            "loadtest",
            "--target",
            "local",
            "--calls",
            "1",
            "--ramp",
            "0",
            "--duration",
            "2",
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}
