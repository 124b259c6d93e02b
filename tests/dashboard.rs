//! The supervisor dashboard (SPEC §10, §15). `/actors` negotiates JSON or the page and is
//! opened with the admin token; in a real browser — Debian's `chromium`, driven through
//! `chromedriver` over WebDriver with `fantoccini` — a supervisor signs in, finds a live
//! simulated call by searching its CallSid, ends it from the page and sees it go, with the
//! live charts drawn. The screenshots are kept in `target/test-artifacts/`.

mod support;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actors::config::Secret;
use actors::domain::records::CallOutcome;
use actors::domain::transcript::Role;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{spawn_app, AppOptions};
use switchboard::sim::twilio::{Event, LiveCall};

const SECOND: Duration = Duration::from_secs(1);
const TOKEN: &str = "dashboard-admin-token";
const CALL_A: &str = "CA0000000000000000000000000000d001";
const CALL_B: &str = "CA0000000000000000000000000000d002";
const FROM_A: &str = "+14155550101";
const FROM_B: &str = "+14155550109";
const TO: &str = "+18005550100";
const TEXTER: &str = "+14155550102";

fn with_token(settings: &mut switchboard::config::Settings) {
    settings.engine.admin.token = Some(Secret::new(TOKEN));
}

/// With the token; and the conversation retires soon after its message, so the test can
/// see the engine idle at the end.
fn with_token_and_quick_idle(settings: &mut switchboard::config::Settings) {
    with_token(settings);
    settings.engine.limits.idle_secs = 2;
}

#[actix_web::test]
async fn a_supervisor_signs_in_finds_a_call_ends_it_and_watches_the_charts() {
    let Some(tools) = BrowserTools::find() else {
        return;
    };
    let app = spawn_app(AppOptions {
        tweak: with_token_and_quick_idle,
        ..AppOptions::default()
    })
    .await;
    let browser = Browser::launch(&tools).await;

    // Without a session the dashboard is the sign-in form; a wrong token is refused.
    browser.goto(&format!("{}/actors", app.base)).await;
    browser
        .wait_until(
            "the sign-in form",
            "document.getElementById('token') !== null",
            10 * SECOND,
        )
        .await;
    browser.type_into("#token", "not-the-token").await;
    browser.click("#submit").await;
    browser
        .wait_until(
            "the refusal",
            "document.getElementById('error').textContent.includes('not the admin token')",
            10 * SECOND,
        )
        .await;
    browser.clear("#token").await;
    browser.type_into("#token", TOKEN).await;
    browser.click("#submit").await;
    browser
        .wait_until(
            "the live dashboard",
            "document.getElementById('status').classList.contains('live') \
             && document.body.innerText.includes('No live calls or conversations')",
            15 * SECOND,
        )
        .await;
    // The session is an HttpOnly cookie: no script on the page can read it.
    assert_eq!(browser.evaluate("return document.cookie").await, json!(""));

    let mut call_a = LiveCall::dial(&app.base, None, CALL_A, FROM_A, TO)
        .await
        .expect("call A connects");
    let call_b = LiveCall::dial(&app.base, None, CALL_B, FROM_B, TO)
        .await
        .expect("call B connects");
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
    let row = |sid: &str| {
        format!(
            "document.querySelector('tbody[data-id=\"' + {} + '\"]')",
            json!(sid)
        )
    };
    browser
        .wait_until(
            "both calls, live with their children, and the conversation",
            &format!(
                "{a} !== null && {b} !== null \
                 && {a}.querySelector('[data-child-kind=\"realtime\"]') !== null \
                 && {b}.rows[0].innerText.includes('live') \
                 && document.querySelector('tbody[data-kind=\"conversation\"]') !== null \
                 && document.getElementById('total-calls').textContent === '2' \
                 && document.getElementById('total-conversations').textContent === '1'",
                a = row(CALL_A),
                b = row(CALL_B),
            ),
            20 * SECOND,
        )
        .await;
    let link = browser
        .evaluate(&format!(
            "return {}.querySelector('a').getAttribute('href')",
            row(CALL_A)
        ))
        .await;
    assert_eq!(link, json!(format!("/actors/calls/{CALL_A}")));

    // The conversation's page shows the thread; the supervisor takes it over there.
    let conversation = browser
        .evaluate(
            "return document.querySelector('tbody[data-kind=\"conversation\"] a').getAttribute('href')",
        )
        .await;
    let conversation = conversation.as_str().expect("a link").to_string();
    assert!(
        conversation.starts_with("/actors/conversations/c"),
        "{conversation}"
    );
    browser.goto(&format!("{}{conversation}", app.base)).await;
    browser
        .wait_until(
            "the thread with the customer's message",
            "[...document.querySelectorAll('#turns li.user')].some(li => \
             li.innerText.includes('open on Sundays')) \
             && !document.getElementById('takeover-row').hidden \
             && document.getElementById('call-actions').hidden",
            10 * SECOND,
        )
        .await;
    browser.click("#takeover").await;
    browser
        .wait_until(
            "the conversation taken over, with the reply box",
            "document.getElementById('state').textContent === 'taken over' \
             && !document.getElementById('reply-row').hidden \
             && document.getElementById('takeover-row').hidden \
             && [...document.querySelectorAll('#turns li.system')].some(li => \
                li.innerText.includes('supervisor: took over'))",
            10 * SECOND,
        )
        .await;
    browser.screenshot("conversation.png").await;
    browser.goto(&format!("{}/actors", app.base)).await;
    browser
        .wait_until(
            "the dashboard again, the conversation taken over",
            "document.querySelector('tbody[data-kind=\"conversation\"]') !== null \
             && document.querySelector('tbody[data-kind=\"conversation\"]').rows[0]\
                .innerText.includes('taken over')",
            10 * SECOND,
        )
        .await;

    // Search by number finds the caller although the page shows the number masked; by
    // CallSid, exactly that call.
    browser.type_into("#search", "(415) 555-0109").await;
    browser
        .wait_until(
            "only call B, found by its caller's number",
            &format!(
                "{b} !== null && {a} === null \
                 && document.querySelectorAll('tbody[data-id]').length === 1 \
                 && document.getElementById('range').textContent === '1–1 of 1'",
                a = row(CALL_A),
                b = row(CALL_B),
            ),
            10 * SECOND,
        )
        .await;
    browser.set_search("").await;
    browser.type_into("#search", &CALL_A.to_lowercase()).await;
    browser
        .wait_until(
            "only call A, found by its CallSid",
            &format!(
                "{a} !== null && {b} === null \
                 && document.querySelectorAll('tbody[data-id]').length === 1 \
                 && location.search.includes('q=')",
                a = row(CALL_A),
                b = row(CALL_B),
            ),
            10 * SECOND,
        )
        .await;
    browser.screenshot("dashboard-search.png").await;

    // The supervisor ends call A from the page: a dialog asks, the caller hears a goodbye,
    // the call hangs up and leaves the list.
    browser
        .click(&format!(
            "tbody[data-id=\"{CALL_A}\"] button[data-action=\"end\"]"
        ))
        .await;
    browser
        .wait_until(
            "the action dialog",
            "document.getElementById('action').open",
            5 * SECOND,
        )
        .await;
    browser.click("#action-confirm").await;
    let closed = call_a
        .wait_for(|e| matches!(e, Event::Closed { .. }), 20 * SECOND)
        .await
        .expect("the server hangs up call A");
    assert!(matches!(closed, Event::Closed { .. }), "{closed:?}");
    browser
        .wait_until(
            "call A gone, nothing left matching the search",
            &format!(
                "{a} === null && document.body.innerText.includes('Nothing matches')",
                a = row(CALL_A)
            ),
            15 * SECOND,
        )
        .await;
    let record = app.call_record(CALL_A).await;
    assert_eq!(record.outcome, Some(CallOutcome::Ended), "{record:?}");
    assert!(
        record
            .transcript
            .turns()
            .iter()
            .any(|t| t.role == Role::System && t.text == "supervisor: ended the call"),
        "{:?}",
        record.transcript
    );

    // The charts: calls over the last hour, latency, and the ended call under its agent.
    browser.set_search("").await;
    browser
        .wait_until(
            "the charts drawn with the ended call",
            "document.body.dataset.charts === 'drawn' \
             && document.querySelector('#chart-load polyline[data-series=\"calls\"]') !== null \
             && document.querySelector('#chart-latency rect[data-quantile=\"p99\"]') !== null \
             && document.querySelector('#chart-outcomes rect[data-outcome=\"ended\"]') !== null \
             && document.querySelector('tbody[data-id=\"CA0000000000000000000000000000d002\"]') !== null",
            20 * SECOND,
        )
        .await;
    browser.screenshot("dashboard-charts.png").await;

    // Call B's transcript page, from its link.
    browser
        .click(&format!("tbody[data-id=\"{CALL_B}\"] a"))
        .await;
    browser
        .wait_until(
            "call B's live transcript with the greeting and the supervisor panel",
            "document.getElementById('state').textContent === 'live' \
             && document.querySelectorAll('#turns li.assistant').length > 0 \
             && !document.getElementById('supervise').hidden",
            15 * SECOND,
        )
        .await;
    browser.screenshot("transcript.png").await;

    // Signing out ends the session: the dashboard asks for the token again.
    browser.goto(&format!("{}/actors", app.base)).await;
    browser
        .wait_until(
            "the dashboard",
            "!document.getElementById('logout').hidden",
            10 * SECOND,
        )
        .await;
    browser.click("#logout").await;
    browser
        .wait_until(
            "the sign-in form again",
            "document.getElementById('token') !== null",
            10 * SECOND,
        )
        .await;

    call_b.hang_up().await.expect("hang up");
    browser.close().await;
    // Given back to the assistant, the conversation may go idle again.
    let released = awc::Client::default()
        .post(format!("{}{conversation}/release", app.base))
        .insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
        .send()
        .await
        .expect("release answers");
    assert_eq!(released.status(), 200);
    app.wait_until_idle(15 * SECOND)
        .await
        .expect("nothing left once the call hung up and the conversation went idle");
    app.handle.stop(false).await;
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
    assert_eq!(body["order"], json!([]));
    assert_eq!(body["page"]["page"], 1);
    assert_eq!(body["page"]["matched"], 0);
    assert_eq!(body["access"]["via"], "local");
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
        let policy = header_of(&page, header::CONTENT_SECURITY_POLICY);
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("connect-src 'self'"), "{policy}");
        let html = String::from_utf8(page.body().await.expect("body").to_vec()).expect("utf-8");
        assert!(html.starts_with("<!doctype html>"), "{accept:?}");
        assert!(html.contains("No live"), "{accept:?}");
        // Nothing is loaded from elsewhere: no external script, style, image or font.
        assert!(!html.contains("src=\"http"), "{accept:?}");
        assert!(!html.contains("href=\"http"), "{accept:?}");
    }

    // The charts' JSON: the last hour (sampled at start already), latency, outcomes.
    let mut stats = client
        .get(format!("{url}/stats"))
        .send()
        .await
        .expect("/actors/stats answers");
    assert_eq!(stats.status(), 200);
    let stats: Value = stats.json().await.expect("JSON body");
    assert!(
        !stats["series"].as_array().expect("series").is_empty(),
        "{stats}"
    );
    assert_eq!(stats["now"]["calls"], 0);
    for series in ["hop_inbound", "hop_outbound", "voice_turn", "text_turn"] {
        assert!(stats["latency"][series]["count"].is_u64(), "{stats}");
    }
    assert!(stats["outcomes"].is_array(), "{stats}");

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
async fn with_an_admin_token_the_dashboard_needs_it_or_a_session_from_signing_in() {
    let app = spawn_app(AppOptions {
        tweak: with_token,
        ..AppOptions::default()
    })
    .await;
    let client = awc::Client::default();
    let url = format!("{}/actors", app.base);

    // A browser without rights gets the sign-in form; a script gets 403.
    let mut refused = client.get(&url).send().await.expect("/actors answers");
    assert_eq!(refused.status(), 401);
    assert!(header_of(&refused, header::WWW_AUTHENTICATE).starts_with("Bearer"));
    let html = String::from_utf8(refused.body().await.expect("body").to_vec()).expect("utf-8");
    assert!(html.contains("id=\"token\""), "{html}");
    assert!(!html.contains("tbody"), "nothing of the dashboard: {html}");
    let json = client
        .get(&url)
        .insert_header((header::ACCEPT, "application/json"))
        .send()
        .await
        .expect("/actors answers");
    assert_eq!(json.status(), 403);

    // The bearer token keeps working for scripts.
    let allowed = client
        .get(&url)
        .insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
        .send()
        .await
        .expect("/actors answers");
    assert_eq!(allowed.status(), 200);
    assert_eq!(content_type(&allowed), "text/html; charset=utf-8");

    // Signing in: only JSON, only the right token.
    let login = format!("{url}/login");
    let form = client
        .post(&login)
        .send_form(&[("token", TOKEN)])
        .await
        .expect("login answers");
    assert_eq!(
        form.status(),
        403,
        "a form (another site's, say) cannot sign in"
    );
    let wrong = client
        .post(&login)
        .send_json(&json!({ "token": "nope" }))
        .await
        .expect("login answers");
    assert_eq!(wrong.status(), 403);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());
    let signed_in = client
        .post(&login)
        .send_json(&json!({ "token": TOKEN }))
        .await
        .expect("login answers");
    assert_eq!(signed_in.status(), 200);
    let set_cookie = header_of(&signed_in, header::SET_COOKIE);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "http PUBLIC_URL: {set_cookie}"
    );
    assert!(
        !set_cookie.contains(TOKEN),
        "the token is never in the cookie: {set_cookie}"
    );
    let session = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();

    let mut with_session = client
        .get(&url)
        .insert_header((header::ACCEPT, "application/json"))
        .insert_header((header::COOKIE, session.clone()))
        .send()
        .await
        .expect("/actors answers");
    assert_eq!(with_session.status(), 200);
    let body: Value = with_session.json().await.expect("JSON");
    assert_eq!(body["access"]["via"], "session");
    let metrics = client
        .get(format!("{}/metrics", app.base))
        .insert_header((header::COOKIE, session.clone()))
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(metrics.status(), 200);

    // A tampered cookie is nobody's.
    let tampered = format!("{}x", session.trim_end_matches('A'));
    let refused = client
        .get(&url)
        .insert_header((header::ACCEPT, "application/json"))
        .insert_header((header::COOKIE, tampered))
        .send()
        .await
        .expect("/actors answers");
    assert_eq!(refused.status(), 403);

    // Signing out ends the session for good, even if the cookie is kept.
    let logout = client
        .post(format!("{url}/logout"))
        .insert_header((header::COOKIE, session.clone()))
        .send_json(&json!({}))
        .await
        .expect("logout answers");
    assert_eq!(logout.status(), 200);
    assert!(header_of(&logout, header::SET_COOKIE).contains("Max-Age=0"));
    let after = client
        .get(&url)
        .insert_header((header::ACCEPT, "application/json"))
        .insert_header((header::COOKIE, session))
        .send()
        .await
        .expect("/actors answers");
    assert_eq!(after.status(), 403);
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

/// Debian's `chromium` and `chromedriver` (package `chromium-driver`), or `None` (with a
/// message) to skip outside CI. In CI the browser test must run: `.ci/run` installs both.
struct BrowserTools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl BrowserTools {
    fn find() -> Option<BrowserTools> {
        let find = |names: &[&str]| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
                    .find(|candidate| candidate.is_file())
            })
        };
        let chromium = find(&["chromium", "chromium-browser"]);
        let chromedriver = find(&["chromedriver"]);
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Some(BrowserTools {
                chromium,
                chromedriver,
            }),
            (chromium, _) => {
                let missing = if chromium.is_none() {
                    "chromium is not installed (apt-get install chromium chromium-driver)"
                } else {
                    "chromedriver is not installed (apt-get install chromium-driver)"
                };
                assert!(!in_ci, "CI is set but {missing}");
                eprintln!("SKIPPED the dashboard browser test: {missing}; CI always runs it");
                None
            }
        }
    }
}

/// Headless Chromium in a fresh profile, driven over WebDriver by `fantoccini` through a
/// `chromedriver` of our own on a free loopback port. Nothing is ever downloaded.
struct Browser {
    driver: Child,
    client: Client,
    /// The fresh profile and the driver's log, deleted with the browser.
    profile: tempfile::TempDir,
}

impl Browser {
    async fn launch(tools: &BrowserTools) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let (driver, port) = start_driver(&tools.chromedriver, profile.path()).await;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": tools.chromium,
                // The flags that matter on a closed network, as root, without a display.
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--no-first-run",
                    "--hide-scrollbars",
                    "--window-size=1360,1100",
                    format!("--user-data-dir={}", profile.path().join("chrome").display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|err| {
                let log = std::fs::read_to_string(profile.path().join("chromedriver.log"));
                panic!("no WebDriver session: {err}; chromedriver log: {log:?}")
            });
        Browser {
            driver,
            client,
            profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// The value a script returns (`return …`).
    async fn evaluate(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|err| panic!("{script} failed: {err}"))
    }

    async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|err| panic!("no {selector}: {err}"))
            .click()
            .await
            .unwrap_or_else(|err| panic!("{selector} not clickable: {err}"));
    }

    async fn type_into(&self, selector: &str, text: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|err| panic!("no {selector}: {err}"))
            .send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("cannot type into {selector}: {err}"));
    }

    async fn clear(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|err| panic!("no {selector}: {err}"))
            .clear()
            .await
            .unwrap_or_else(|err| panic!("cannot clear {selector}: {err}"));
    }

    /// Sets the search box as a person editing it would (the page listens to `input`).
    async fn set_search(&self, text: &str) {
        self.client
            .execute(
                "const box = document.getElementById('search'); box.value = arguments[0]; \
                 box.dispatchEvent(new Event('input')); return true;",
                vec![json!(text)],
            )
            .await
            .expect("search set");
    }

    /// Polls the page until `condition` is true, failing with what the page shows instead.
    async fn wait_until(&self, what: &str, condition: &str, within: Duration) {
        let deadline = Instant::now() + within;
        let probe = format!("try {{ return !!({condition}); }} catch (e) {{ return false; }}");
        loop {
            if self.evaluate(&probe).await == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let shown = self
                    .evaluate("return document.body ? document.body.innerText : ''")
                    .await;
                panic!(
                    "the page never showed {what} within {within:?}; it shows:\n{}",
                    shown.as_str().unwrap_or_default()
                );
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves what the page shows as `target/test-artifacts/{name}`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).expect("artifact dir");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("screenshot written");
        eprintln!("screenshot: {}", path.display());
    }

    /// Ends the WebDriver session (Chromium quits), then the driver.
    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = &self.profile;
    }
}

impl Drop for Browser {
    /// A failed test must not leave a driver behind (Chromium exits with it: the driver
    /// talks to it over a pipe).
    fn drop(&mut self) {
        if let Ok(None) = self.driver.try_wait() {
            let _ = self.driver.kill();
            let _ = self.driver.wait();
        }
    }
}

/// Starts `chromedriver` on a free loopback port and waits until it listens. A port taken
/// between choosing and binding it (another process was quicker) is retried with another.
async fn start_driver(chromedriver: &Path, dir: &Path) -> (Child, u16) {
    for _ in 0..5 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("log file");
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + 30 * SECOND;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return (driver, port);
            }
            if driver.try_wait().expect("chromedriver status").is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}: {:?}",
                std::fs::read_to_string(dir.join("chromedriver.log"))
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!(
        "chromedriver would not start: {:?}",
        std::fs::read_to_string(dir.join("chromedriver.log"))
    );
}
