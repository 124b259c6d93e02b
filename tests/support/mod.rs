//! Test harness: the real application on port 0, wired to the product's own OpenAI
//! emulator, with a fresh data directory per test.

#![allow(dead_code)]

pub mod process;
pub mod sockets;
pub mod twilio_identity;
pub mod voice;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use actors::config::{AudioMode, Secret};
use actors::domain::agents::ToolKind;
use actors::domain::records::{CallRecord, CustomerRecord};
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
    /// With `auth_token`, REST credentials: replies go through the Messages API.
    pub account_sid: Option<String>,
    /// Base URL of a fake Twilio REST API (Messages and Conversations).
    pub twilio_rest: Option<String>,
    /// A PostgreSQL store (cluster mode) instead of a fresh sled directory: several apps on
    /// one database are nodes of one cluster, or one node before and after a restart.
    pub database_url: Option<String>,
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
            account_sid: None,
            twilio_rest: None,
            database_url: None,
        }
    }
}

pub fn script(json: &str) -> Option<Script> {
    Some(Script::parse(json).expect("test script parses"))
}

/// The store's phone number in the tests' SMS (the `To` of every inbound message).
pub const STORE_NUMBER: &str = "+18005550100";
/// The account the tests' webhooks say they come from.
pub const TEST_ACCOUNT_SID: &str = "AC00000000000000000000000000000042";

/// The text of every `<Message>` in a TwiML answer, XML entities decoded.
pub fn twiml_messages(twiml: &str) -> Vec<String> {
    twiml
        .split("<Message>")
        .skip(1)
        .filter_map(|part| part.split("</Message>").next())
        .map(|m| {
            m.replace("&apos;", "'")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
        })
        .collect()
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
    // An empty key means none: the offline local model answers text turns.
    engine.openai.api_key = Some(options.api_key)
        .filter(|key| !key.is_empty())
        .map(Secret::new);
    engine.twilio.account_sid = options.account_sid;
    if let Some(rest) = &options.twilio_rest {
        engine.twilio.api_base = rest.clone();
        engine.twilio.conversations_api_base = rest.clone();
        engine.twilio.lookup_api_base = rest.clone();
        engine.twilio.verify_api_base = rest.clone();
    }
    engine.twilio.auth_token = options.auth_token.map(Secret::new);
    engine.twilio.human_number = options.human_number;
    engine.storage.data_dir = data_dir.path().to_path_buf();
    engine.storage.database_url = options.database_url.map(Secret::new);
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
    let app = Application::build_on(settings, listener)
        .await
        .expect("application builds");
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
    /// The port the application listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("the base URL ends with the port")
    }

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

    /// Waits up to five seconds for every actor to stop; the test fails otherwise.
    pub async fn expect_idle(&self) {
        self.wait_until_idle(Duration::from_secs(5))
            .await
            .expect("no actor left");
    }

    /// The stored record of `call_sid`, which the test expects to have been written.
    /// The final record of `call_sid`, which the test expects the call to have written
    /// when it ended (records are written just after the call's actor stops).
    pub async fn call_record(&self, call_sid: &str) -> CallRecord {
        let store = &self.engine.shared().store;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let record = store.get_call(call_sid).await.expect("store readable");
            match record {
                Some(record) if !record.is_live() => return record,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "no final record of {call_sid}: {other:?}"
                ),
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The stored memory of customer `id`, which the test expects to exist.
    pub async fn customer_record(&self, id: &str) -> CustomerRecord {
        let store = &self.engine.shared().store;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(record) = store.customer(id).await.expect("store readable") {
                return record;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "customer {id} not remembered"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The current value of one `/metrics` series (its full name with labels); 0 when
    /// the series has not been written yet.
    pub async fn metric(&self, series: &str) -> f64 {
        let mut response = awc::Client::default()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics answer");
        let body = response.body().await.expect("metrics body");
        String::from_utf8_lossy(&body)
            .lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
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

/// What the server streamed back for one web-chat message.
pub struct WebChatAnswer {
    /// The `token` events, concatenated.
    pub tokens: String,
    /// The text of the closing `done` event.
    pub text: String,
    /// Any other events seen on the way, in order.
    pub other: Vec<serde_json::Value>,
}

impl TestApp {
    /// Sends one message on a fresh `/chat/ws?id=` socket, as a (returning) visitor would,
    /// and reads up to the `done` event; each frame must come within `within`.
    pub async fn web_chat(&self, id: &str, text: &str, within: Duration) -> WebChatAnswer {
        use awc::ws::{Frame, Message};
        use futures_util::{SinkExt as _, StreamExt as _};
        let (_response, mut socket) = awc::Client::new()
            .ws(format!("{}/chat/ws?id={id}", self.ws_base()))
            .connect()
            .await
            .expect("chat socket opens");
        let message = serde_json::json!({"type": "message", "text": text});
        socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("sent");
        let mut answer = WebChatAnswer {
            tokens: String::new(),
            text: String::new(),
            other: Vec::new(),
        };
        loop {
            let frame = tokio::time::timeout(within, socket.next())
                .await
                .expect("an answer in time")
                .expect("socket open")
                .expect("frame");
            let Frame::Text(bytes) = frame else { continue };
            let event: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON frame");
            match event["type"].as_str() {
                Some("token") => answer
                    .tokens
                    .push_str(event["text"].as_str().unwrap_or_default()),
                Some("done") => {
                    answer.text = event["text"].as_str().unwrap_or_default().to_string();
                    return answer;
                }
                _ => answer.other.push(event),
            }
        }
    }

    /// One inbound SMS to the store's number (`STORE_NUMBER`), as Twilio posts it to
    /// `/twilio/messaging`: status and body of the answer.
    pub async fn sms(&self, sid: &str, from: &str, body: &str) -> (u16, String) {
        self.post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", sid),
                ("AccountSid", TEST_ACCOUNT_SID),
                ("From", from),
                ("To", STORE_NUMBER),
                ("Body", body),
                ("NumMedia", "0"),
            ],
        )
        .await
    }

    /// The text of the inline TwiML answer to one SMS, its `<Message>`s joined.
    pub async fn sms_reply(&self, sid: &str, from: &str, body: &str) -> String {
        let (status, twiml) = self.sms(sid, from, body).await;
        assert_eq!(status, 200, "{twiml}");
        twiml_messages(&twiml).join(" ")
    }

    /// POSTs a Twilio form webhook, signed like Twilio when the app has an auth token.
    pub async fn post_twilio(&self, path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut request = awc::Client::default().post(&url);
        if let Some(token) = &self.engine.shared().config.twilio.auth_token {
            let owned: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let signature =
                actors::protocol::twilio::signature::compute(token.expose(), &url, &owned);
            request = request.insert_header(("X-Twilio-Signature", signature));
        }
        let mut response = request.send_form(&params).await.expect("webhook answers");
        let body = response.body().limit(1 << 20).await.expect("body");
        (
            response.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }
}

/// POSTs a form without any signature, as someone other than Twilio would.
pub async fn unsigned_post(app: &TestApp, path: &str, params: &[(&str, &str)]) -> (u16, String) {
    let mut response = awc::Client::default()
        .post(format!("{}{path}", app.base))
        .send_form(&params)
        .await
        .expect("the server answers");
    let body = response.body().limit(1 << 20).await.expect("body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// One request the fake Twilio REST API received.
#[derive(Clone, Debug)]
pub struct RestCall {
    pub method: String,
    pub path: String,
    /// The query string as sent (empty without one).
    pub query: String,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
    /// Every header, names lower-case.
    pub headers: Vec<(String, String)>,
}

impl RestCall {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A stand-in for api.twilio.com and conversations.twilio.com that records what it is
/// sent and answers `201` like Twilio.
pub struct FakeTwilioRest {
    pub base: String,
    pub calls: std::sync::Arc<std::sync::Mutex<Vec<RestCall>>>,
    pub handle: actix_web::dev::ServerHandle,
}

impl FakeTwilioRest {
    pub fn start() -> FakeTwilioRest {
        Self::answering(Vec::new())
    }

    /// Answers its first requests with these statuses (with Twilio's error JSON), then
    /// `201` to every other.
    pub fn answering(statuses: Vec<u16>) -> FakeTwilioRest {
        Self::serve(statuses, None)
    }

    /// Also Lookup v2 and Verify v2 at their paths, for these credentials
    /// ([`twilio_identity::FakeIdentity`]).
    pub fn with_identity(identity: twilio_identity::FakeIdentity) -> FakeTwilioRest {
        Self::serve(Vec::new(), Some(std::sync::Arc::new(identity)))
    }

    fn serve(
        statuses: Vec<u16>,
        identity: Option<std::sync::Arc<twilio_identity::FakeIdentity>>,
    ) -> FakeTwilioRest {
        use actix_web::http::StatusCode;
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let calls: std::sync::Arc<std::sync::Mutex<Vec<RestCall>>> = Default::default();
        let recorded = calls.clone();
        let statuses = std::sync::Arc::new(statuses);
        let server = HttpServer::new(move || {
            let recorded = recorded.clone();
            let statuses = statuses.clone();
            let identity = identity.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let recorded = recorded.clone();
                let statuses = statuses.clone();
                let identity = identity.clone();
                async move {
                    let form =
                        actors::protocol::twilio::webhook::parse_form(&body).unwrap_or_default();
                    let call = RestCall {
                        method: req.method().to_string(),
                        path: req.path().to_string(),
                        query: req.query_string().to_string(),
                        authorization: req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                        form,
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect(),
                    };
                    let identity_answer = identity.as_ref().and_then(|id| id.answer(&call));
                    let index = {
                        let mut recorded = recorded.lock().expect("lock");
                        recorded.push(call);
                        recorded.len() - 1
                    };
                    if let Some(answer) = identity_answer {
                        return answer;
                    }
                    match statuses.get(index) {
                        Some(&status) => {
                            let status = StatusCode::from_u16(status).expect("a status code");
                            HttpResponse::build(status).json(serde_json::json!({
                                "code": 20500, "message": "scripted failure",
                                "more_info": "https://www.twilio.com/docs/errors/20500",
                                "status": status.as_u16(),
                            }))
                        }
                        None => HttpResponse::Created()
                            .json(serde_json::json!({"sid": "SMfake", "status": "queued"})),
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("fake REST binds");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeTwilioRest {
            base: format!("http://{addr}"),
            calls,
            handle,
        }
    }

    /// Waits until `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<RestCall> {
        wait_for_calls(&self.calls, n, within).await
    }

    /// The requests so far whose path starts with `prefix`, in order.
    pub fn requests_under(&self, prefix: &str) -> Vec<RestCall> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// A Twilio REST stand-in that reads each request whole — so, for all the client can tell,
/// Twilio may have acted on it — then closes the connection without answering.
pub struct HangUpServer {
    pub base: String,
    pub calls: std::sync::Arc<std::sync::Mutex<Vec<RestCall>>>,
}

/// Reads one HTTP/1.1 request head and its `Content-Length` body; `None` on EOF or garbage.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    use tokio::io::AsyncReadExt as _;
    let (head, mut body) = read_head(stream).await?;
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut chunk = [0u8; 4096];
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, headers, body))
}

/// Waits until `n` requests arrived; returns them all.
async fn wait_for_calls(
    calls: &std::sync::Mutex<Vec<RestCall>>,
    n: usize,
    within: Duration,
) -> Vec<RestCall> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let calls = calls.lock().expect("lock").clone();
        if calls.len() >= n {
            return calls;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fake Twilio REST got {} of {n} requests: {calls:#?}",
            calls.len()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

impl HangUpServer {
    pub async fn start() -> HangUpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("hang-up server binds");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let calls: std::sync::Arc<std::sync::Mutex<Vec<RestCall>>> = Default::default();
        let recorded = calls.clone();
        actix_web::rt::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                actix_web::rt::spawn(async move {
                    if let Some((path, headers, body)) = read_request(&mut stream).await {
                        let call = RestCall {
                            method: "POST".into(),
                            path,
                            query: String::new(),
                            authorization: headers
                                .iter()
                                .find(|(k, _)| k == "authorization")
                                .map(|(_, v)| v.clone()),
                            form: actors::protocol::twilio::webhook::parse_form(&body)
                                .unwrap_or_default(),
                            headers,
                        };
                        recorded.lock().expect("lock").push(call);
                    }
                    // Dropping the stream closes the connection, unanswered.
                });
            }
        });
        HangUpServer { base, calls }
    }

    /// Waits until `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<RestCall> {
        wait_for_calls(&self.calls, n, within).await
    }
}

/// A reverse proxy on loopback that forwards to the app the way `ngrok http` does: it keeps
/// the public `Host` it was reached at and adds `X-Forwarded-For` (appended to whatever the
/// client sent), `X-Forwarded-Proto: https` and `X-Forwarded-Host`. The internet client's
/// address is `client_ip`, since every test client is really on loopback. One request per
/// connection (the forwarded request says `Connection: close`) so that every request gets
/// the headers; a WebSocket upgrade is piped both ways once forwarded.
pub struct TunnelProxy {
    pub base: String,
}

impl TunnelProxy {
    pub async fn start(upstream: &str, public_host: &str, client_ip: &str) -> TunnelProxy {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let public_host = public_host.to_owned();
        let client_ip = client_ip.to_owned();
        actix_web::rt::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (upstream, public_host, client_ip) =
                    (upstream.clone(), public_host.clone(), client_ip.clone());
                actix_web::rt::spawn(async move {
                    let Some((head, leftover)) = read_head(&mut inbound).await else {
                        return;
                    };
                    let mut lines = head.split("\r\n");
                    let request_line = lines.next().unwrap_or_default().to_owned();
                    let mut upgrade = false;
                    let mut forwarded_for = None;
                    let mut out = format!("{request_line}\r\n");
                    for line in lines {
                        let Some((name, value)) = line.split_once(':') else {
                            continue;
                        };
                        let (name_lc, value) = (name.trim().to_ascii_lowercase(), value.trim());
                        match name_lc.as_str() {
                            "host" => {}
                            "x-forwarded-for" => forwarded_for = Some(value.to_owned()),
                            "upgrade" => {
                                upgrade = true;
                                out.push_str(&format!("{line}\r\n"));
                            }
                            "connection" | "keep-alive" => {
                                if value.to_ascii_lowercase().contains("upgrade") {
                                    out.push_str(&format!("{line}\r\n"));
                                }
                            }
                            _ => out.push_str(&format!("{line}\r\n")),
                        }
                    }
                    let forwarded_for = match forwarded_for {
                        Some(earlier) => format!("{earlier}, {client_ip}"),
                        None => client_ip,
                    };
                    out.push_str(&format!("Host: {public_host}\r\n"));
                    out.push_str(&format!("X-Forwarded-For: {forwarded_for}\r\n"));
                    out.push_str(&format!("X-Forwarded-Host: {public_host}\r\n"));
                    out.push_str("X-Forwarded-Proto: https\r\n");
                    if !upgrade {
                        out.push_str("Connection: close\r\n");
                    }
                    out.push_str("\r\n");
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    if outbound.write_all(out.as_bytes()).await.is_err()
                        || outbound.write_all(&leftover).await.is_err()
                    {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        TunnelProxy { base }
    }

    pub fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }
}

/// Reads up to the end of a request head; returns it and whatever came after it.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt as _;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..at]).into_owned();
            return Some((head, buffer[at + 4..].to_vec()));
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buffer.len() > 64 * 1024 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}
