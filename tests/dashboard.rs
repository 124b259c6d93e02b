//! The supervisor dashboard (SPEC §10): `/actors` negotiates JSON or the page, and a real
//! headless Chromium watches a live simulated call with its children, and an SMS
//! conversation, appear on the page and disappear when the caller hangs up and the
//! conversation goes idle. The screenshots are kept in `target/test-artifacts/`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actors::config::Secret;
use awc::ws;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use support::{spawn_app, AppOptions};
use switchboard::sim::twilio::LiveCall;

const SECOND: Duration = Duration::from_secs(1);
const CALL_SID: &str = "CA0000000000000000000000000000d001";
const FROM: &str = "+14155550101";
const TO: &str = "+18005550100";
const TEXTER: &str = "+14155550102";

#[actix_web::test]
async fn a_live_call_and_a_conversation_come_and_go_on_the_dashboard() {
    let Some(chromium) = chromium() else {
        return;
    };
    let app = spawn_app(AppOptions {
        // The conversation retires soon after its message, so the test sees it go.
        tweak: |settings| settings.engine.limits.idle_secs = 2,
        ..AppOptions::default()
    })
    .await;
    let mut browser = Browser::launch(&chromium).await;
    browser.navigate(&format!("{}/actors", app.base)).await;
    browser
        .wait_until(
            "the empty dashboard",
            "document.getElementById('status').classList.contains('live') \
             && document.body.innerText.includes('No live calls') \
             && document.body.innerText.includes('No live conversations')",
            10 * SECOND,
        )
        .await;

    let call = LiveCall::dial(&app.base, None, CALL_SID, FROM, TO)
        .await
        .expect("the call connects");
    let (status, _) = app
        .post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", "SM0000000000000000000000000000d001"),
                ("From", TEXTER),
                ("To", TO),
                ("Body", "Hello, are you open on Sundays?"),
                ("NumMedia", "0"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let conversation = "[...document.querySelectorAll('tbody[data-id]')].find(b => \
         b.rows[0].cells[1].textContent === 'conversation' \
         && b.rows[0].cells[3].textContent === 'sms')";
    let row = format!(
        "document.querySelector('tbody[data-id=\"' + {} + '\"]')",
        json!(CALL_SID)
    );
    let child = |kind: &str| format!("{row}.querySelector('[data-child-kind=\"{kind}\"]')");
    browser
        .wait_until(
            "the call with its realtime and tool_executor children",
            &format!(
                "{row} !== null && {realtime} !== null && {tools} !== null \
                 && {realtime}.innerText.includes('connected') \
                 && {row}.rows[0].innerText.includes('live') \
                 && document.getElementById('total-calls').textContent === '1' \
                 && {conversation} !== undefined \
                 && document.getElementById('total-conversations').textContent === '1'",
                realtime = child("realtime"),
                tools = child("tool_executor"),
            ),
            15 * SECOND,
        )
        .await;
    let shown = browser
        .evaluate(&format!(
            "({{ text: {row}.innerText, \
                 link: {row}.querySelector('a').getAttribute('href'), \
                 empty: document.body.innerText.includes('No live calls') }})"
        ))
        .await;
    let text = shown["text"].as_str().unwrap_or_default();
    // The row shows the call's id, channel and agent, and links to its transcript.
    assert!(text.contains(CALL_SID), "{shown}");
    assert!(text.contains("voice"), "{shown}");
    assert_eq!(
        shown["link"],
        format!("/actors/calls/{CALL_SID}"),
        "{shown}"
    );
    assert_eq!(shown["empty"], false, "{shown}");
    browser.screenshot("dashboard.png").await;

    // The call's link opens its live transcript, which shows the greeting.
    browser
        .navigate(&format!("{}/actors/calls/{CALL_SID}", app.base))
        .await;
    browser
        .wait_until(
            "the live transcript with the greeting",
            "document.getElementById('state').textContent === 'live' \
             && document.querySelectorAll('#turns li.assistant').length > 0",
            15 * SECOND,
        )
        .await;
    browser.screenshot("transcript.png").await;

    browser.navigate(&format!("{}/actors", app.base)).await;
    browser
        .wait_until("the call again", &format!("{row} !== null"), 10 * SECOND)
        .await;
    call.hang_up().await.expect("hang up");
    browser
        .wait_until(
            "the call and the idle conversation to leave the page",
            &format!(
                "{row} === null && document.body.innerText.includes('No live calls') \
                 && document.getElementById('total-calls').textContent === '0' \
                 && {conversation} === undefined \
                 && document.body.innerText.includes('No live conversations')"
            ),
            15 * SECOND,
        )
        .await;
    app.expect_idle().await;

    // The page says so when the server goes away.
    app.handle.stop(false).await;
    browser
        .wait_until(
            "that the connection was lost",
            "document.getElementById('status').innerText.includes('Connection lost')",
            10 * SECOND,
        )
        .await;
    browser.close().await;
}

#[actix_web::test]
async fn actors_answers_json_to_who_asks_for_it_and_the_page_to_everyone_else() {
    let app = spawn_app(AppOptions::default()).await;
    let client = awc::Client::default();
    let url = format!("{}/actors", app.base);

    let mut json = client
        .get(&url)
        .insert_header((header::ACCEPT, "application/json"))
        .send()
        .await
        .expect("/actors answers");
    assert_eq!(json.status(), 200);
    assert_eq!(content_type(&json), "application/json");
    assert_eq!(header_of(&json, header::VARY), "Accept");
    let body: Value = json.json().await.expect("JSON body");
    assert_eq!(body["registry"]["kind"], "registry");
    assert_eq!(body["registry"]["calls"], 0);
    assert_eq!(body["calls"], json!([]));
    assert_eq!(body["conversations"], json!([]));
    assert!(body["census"].is_object(), "{body}");

    for accept in [
        None,
        Some("*/*"),
        Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ] {
        let mut request = client.get(&url);
        if let Some(accept) = accept {
            request = request.insert_header((header::ACCEPT, accept));
        }
        let mut page = request.send().await.expect("/actors answers");
        assert_eq!(page.status(), 200, "{accept:?}");
        assert_eq!(
            content_type(&page),
            "text/html; charset=utf-8",
            "{accept:?}"
        );
        assert!(header_of(&page, header::CONTENT_SECURITY_POLICY).contains("default-src 'none'"));
        let html = String::from_utf8(page.body().await.expect("body").to_vec()).expect("utf-8");
        assert!(html.starts_with("<!doctype html>"), "{accept:?}");
        assert!(html.contains("No live"), "{accept:?}");
    }

    // A call the engine never saw is a 404 in both forms.
    for accept in ["application/json", "text/html"] {
        let missing = client
            .get(format!("{url}/calls/CA0000000000000000000000000000dead"))
            .insert_header((header::ACCEPT, accept))
            .send()
            .await
            .expect("transcript answers");
        assert_eq!(missing.status(), 404, "{accept}");
    }
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn with_an_admin_token_the_dashboard_needs_it() {
    let app = spawn_app(AppOptions {
        tweak: |settings| settings.engine.admin.token = Some(Secret::new("let-me-in")),
        ..AppOptions::default()
    })
    .await;
    let client = awc::Client::default();
    let url = format!("{}/actors", app.base);
    let refused = client.get(&url).send().await.expect("/actors answers");
    assert_eq!(refused.status(), 403);
    let allowed = client
        .get(&url)
        .insert_header((header::AUTHORIZATION, "Bearer let-me-in"))
        .send()
        .await
        .expect("/actors answers");
    assert_eq!(allowed.status(), 200);
    assert_eq!(content_type(&allowed), "text/html; charset=utf-8");
    app.handle.stop(false).await;
}

fn header_of<S>(response: &awc::ClientResponse<S>, name: header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn content_type<S>(response: &awc::ClientResponse<S>) -> String {
    header_of(response, header::CONTENT_TYPE)
}

/// The Chromium to drive, or `None` (with a message) to skip outside CI. In CI the browser
/// test must run: `.ci/run` installs Debian's `chromium`.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    match found {
        Some(path) => Some(path),
        None if in_ci => {
            panic!("CI is set but chromium is not installed (apt-get install chromium)")
        }
        None => {
            eprintln!(
                "SKIPPED the dashboard browser test: chromium is not installed \
                 (apt-get install chromium); CI always runs it"
            );
            None
        }
    }
}

/// Headless Chromium driven over the DevTools protocol with the awc WebSocket client the
/// product already uses: three commands (navigate, evaluate, screenshot) need no driver
/// crate, no chromedriver, and nothing is ever downloaded.
struct Browser {
    process: Child,
    /// The fresh profile, deleted with the browser.
    _profile: tempfile::TempDir,
    socket: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    next_id: u64,
}

impl Browser {
    /// Starts Chromium with the flags this machine needs (no sandbox as root, no background
    /// networking on a closed network), a fresh profile, and DevTools on a free port.
    async fn launch(chromium: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let process = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1360,820",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("chromium starts");
        let mut browser = Browser::attach(process, profile).await;
        browser.call("Runtime.enable", json!({})).await;
        browser
    }

    /// Chromium writes its DevTools port into the profile once it listens; the page target
    /// opened on `about:blank` is the one to drive.
    async fn attach(mut process: Child, profile: tempfile::TempDir) -> Browser {
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + 30 * SECOND;
        let port = loop {
            let port = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse::<u16>().ok());
            if let Some(port) = port {
                break port;
            }
            let exited = process.try_wait().expect("chromium status");
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(profile.path().join("chromium.log"));
                panic!("chromium did not open DevTools ({exited:?}): {log:?}");
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        };
        let client = awc::Client::default();
        let targets: Value = client
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .await
            .expect("DevTools lists targets")
            .json()
            .await
            .expect("target list is JSON");
        let page = targets
            .as_array()
            .and_then(|targets| targets.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target: {targets}"))
            .to_string();
        let (_, socket) = client
            .ws(page)
            .max_frame_size(64 << 20)
            .connect()
            .await
            .expect("DevTools socket opens");
        Browser {
            process,
            _profile: profile,
            socket,
            next_id: 0,
        }
    }

    /// Sends one command and returns its result, skipping the events in between.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(ws::Message::Text(command.to_string().into()))
            .await
            .expect("DevTools command sent");
        loop {
            let frame = actix_web::rt::time::timeout(30 * SECOND, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 30 s"))
                .unwrap_or_else(|| panic!("DevTools socket closed during {method}"))
                .expect("DevTools frame");
            let ws::Frame::Text(text) = frame else {
                continue;
            };
            let message: Value = serde_json::from_slice(&text).expect("DevTools JSON");
            if message["id"] != id {
                continue;
            }
            if let Some(error) = message.get("error") {
                panic!("{method} failed: {error}");
            }
            return message["result"].clone();
        }
    }

    async fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({ "url": url })).await;
        assert!(result.get("errorText").is_none(), "{url}: {result}");
        self.wait_until(
            &format!("{url} to load"),
            &format!(
                "location.href === {} && document.readyState === 'complete'",
                json!(url)
            ),
            10 * SECOND,
        )
        .await;
    }

    /// The value of a JavaScript expression in the page.
    async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls the page until `condition` is true, failing with what the page shows instead.
    async fn wait_until(&mut self, what: &str, condition: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let probe =
            format!("(() => {{ try {{ return !!({condition}); }} catch {{ return false; }} }})()");
        loop {
            if self.evaluate(&probe).await == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let shown = self
                    .evaluate("document.body ? document.body.innerText : ''")
                    .await;
                panic!("the page never showed {what} within {within:?}; it shows:\n{shown}");
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves what the page shows as `target/test-artifacts/{name}`.
    async fn screenshot(&mut self, name: &str) {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).expect("artifact dir");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("screenshot written");
        eprintln!("screenshot: {}", path.display());
    }

    /// Asks Chromium to quit, then makes sure it has.
    async fn close(mut self) {
        let _ = self
            .socket
            .send(ws::Message::Text(
                json!({ "id": 0, "method": "Browser.close" })
                    .to_string()
                    .into(),
            ))
            .await;
        let deadline = Instant::now() + 5 * SECOND;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    /// A failed test must not leave a browser behind.
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}
