//! The operations kit in `deploy/` matches the server: every series the Grafana dashboard
//! and the Prometheus rules name — with every label value they select — is one a live
//! server's `/metrics` exports; the systemd unit leaves the drain its time.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use support::{spawn_app, AppOptions};

fn deploy(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(file),
    )
    .unwrap_or_else(|err| panic!("deploy/{file}: {err}"))
}

/// Every `expr` of the dashboard's panels.
fn dashboard_exprs() -> Vec<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&deploy("grafana/switchboard.json")).expect("dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|panel| {
            panel["targets"]
                .as_array()
                .expect("every panel has targets")
                .iter()
                .map(|target| target["expr"].as_str().expect("an expr").to_owned())
        })
        .collect();
    assert!(exprs.len() >= panels.len());
    exprs
}

/// Every rule's `expr` (one line each, as the file's header promises), checked against the
/// number of alerts so none is missed.
fn rule_exprs() -> Vec<String> {
    let rules = deploy("prometheus/alerts.yml");
    let alerts = rules
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    let exprs: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect();
    assert_eq!(exprs.len(), alerts, "one single-line expr per alert");
    assert!(exprs.iter().all(|e| !e.is_empty() && e != "|" && e != ">"));
    exprs
}

/// The metric names in a PromQL expression, each with the `label="value"` matchers used on
/// it.
fn selectors(expr: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("switchboard_") {
        rest = &rest[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = rest[..end].to_owned();
        rest = &rest[end..];
        let mut matchers = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let close = inner.find('}').expect("a closed selector");
            for matcher in inner[..close].split(',').filter(|m| !m.trim().is_empty()) {
                let (label, value) = matcher.split_once("=").expect("label=value");
                assert!(!label.ends_with('!'), "only = matchers are checked: {expr}");
                matchers.push((
                    label.trim().to_owned(),
                    value.trim().trim_matches('"').to_owned(),
                ));
            }
            rest = &inner[close..];
        }
        found.push((name, matchers));
    }
    found
}

/// `/metrics` as series name → the label sets seen.
fn exported(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut series: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        if line[name_end..].starts_with('{') {
            let close = line.find('}').expect("closed labels");
            for pair in line[name_end + 1..close].split("\",") {
                if let Some((k, v)) = pair.split_once('=') {
                    labels.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
        }
        series.entry(name).or_default().push(labels);
    }
    series
}

#[actix_web::test]
async fn every_series_of_the_dashboard_and_the_alerts_is_exported() {
    let app = spawn_app(AppOptions::default()).await;
    // Series labelled by what happened (route and status) exist once it has happened.
    let (status, _) = app
        .post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", "SMdeploy1"),
                ("From", "+14155550101"),
                ("To", "+18005550100"),
                ("Body", "What are your opening hours?"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let mut response = awc::Client::default()
        .get(format!("{}/metrics", app.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status(), 200);
    let body = response.body().limit(4 << 20).await.expect("metrics body");
    let series = exported(&String::from_utf8_lossy(&body));

    let mut referenced = BTreeSet::new();
    for (source, exprs) in [("dashboard", dashboard_exprs()), ("alerts", rule_exprs())] {
        for expr in exprs {
            let used = selectors(&expr);
            assert!(
                !used.is_empty(),
                "{source}: no switchboard series in {expr}"
            );
            for (name, matchers) in used {
                let Some(label_sets) = series.get(&name) else {
                    panic!("{source}: {name} (in {expr}) is not exported");
                };
                for (label, value) in matchers {
                    assert!(
                        label_sets
                            .iter()
                            .any(|labels| labels.get(&label) == Some(&value)),
                        "{source}: {name}{{{label}=\"{value}\"}} is not exported"
                    );
                }
                referenced.insert(name);
            }
        }
    }
    // The kit covers what SPEC §10 and the issue name.
    for name in [
        "switchboard_calls_active",
        "switchboard_calls_total",
        "switchboard_conversations_active",
        "switchboard_webhooks_total",
        "switchboard_rate_limited_total",
        "switchboard_model_reconnects_total",
        "switchboard_model_failures_total",
        "switchboard_model_auth_failures_total",
        "switchboard_hop_latency_seconds_bucket",
        "switchboard_turn_latency_seconds_bucket",
        "switchboard_tool_calls_total",
        "switchboard_bad_frames_total",
        "switchboard_store_errors_total",
    ] {
        assert!(referenced.contains(name), "the kit never uses {name}");
    }
    app.handle.stop(false).await;
}

#[test]
fn the_systemd_unit_gives_the_drain_its_time() {
    let unit = deploy("systemd/switchboard.service");
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= missing"))
            .trim()
            .to_owned()
    };
    assert_eq!(setting("KillSignal"), "SIGTERM");
    let stop_secs: u64 = setting("TimeoutStopSec").parse().expect("seconds");
    let drain = actors::config::ServerConfig::default().drain_secs;
    assert!(
        stop_secs > drain,
        "TimeoutStopSec {stop_secs} ≤ drain_secs {drain}"
    );
    assert_eq!(setting("DynamicUser"), "yes");
    assert_eq!(setting("StateDirectory"), "switchboard");
    assert!(setting("ExecStart").contains("switchboard serve"));
}
