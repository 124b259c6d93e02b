//! The simulated Twilio REST API (protocols-more.md §1): the Calls API a server places calls
//! with, the live-call update it leaves voicemails with, and the Messages API its texts go
//! to. It checks what Twilio would check — basic auth with the account's credentials, the
//! create form's fields — and answers as Twilio does (`201` and the resource's JSON, or a
//! Twilio error body).
//!
//! A created call is handed to whoever plays the callee ([`CallsApi::next_call`]); answering
//! it ([`PlacedCall::answer`]) fetches its `Url` and opens the stream as Twilio would. An
//! update whose `Twiml` replaces the call's document stops that stream, as Twilio does.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use serde_json::json;
use tokio::sync::mpsc;

use super::line::{post_webhook, ACCOUNT_SID};
use super::{LiveCall, SimError, Stopper};
use actors::domain::catalog::is_e164;
use actors::protocol::twilio::webhook::{form_get, parse_form};

/// A call the server created.
#[derive(Clone, Debug)]
pub struct PlacedCall {
    pub call_sid: String,
    /// The create request's form, as sent.
    pub form: Vec<(String, String)>,
    auth_token: Option<String>,
    stoppers: Arc<Mutex<HashMap<String, Stopper>>>,
}

impl PlacedCall {
    pub fn field(&self, name: &str) -> Option<&str> {
        form_get(&self.form, name)
    }

    /// Every value of a repeated field (`StatusCallbackEvent`).
    pub fn fields(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The callee picks up: Twilio fetches `Url` and opens the stream it answers with.
    pub async fn answer(&self) -> Result<LiveCall, SimError> {
        let url = self.field("Url").unwrap_or_default().to_owned();
        let call = LiveCall::answer(
            &url,
            self.auth_token.as_deref(),
            &self.call_sid,
            self.field("From").unwrap_or_default(),
            self.field("To").unwrap_or_default(),
        )
        .await?;
        if let Ok(mut stoppers) = self.stoppers.lock() {
            stoppers.insert(self.call_sid.clone(), call.stopper());
        }
        Ok(call)
    }

    /// Asynchronous AMD's verdict (`human`, `machine_end_beep`, …) posted to
    /// `AsyncAmdStatusCallback`, signed. Returns the server's answer.
    pub async fn report_amd(&self, answered_by: &str) -> Result<String, SimError> {
        let url = self
            .field("AsyncAmdStatusCallback")
            .ok_or_else(|| SimError::Webhook {
                url: String::new(),
                reason: "the call was created without AsyncAmdStatusCallback".into(),
            })?
            .to_owned();
        let form = [
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", self.call_sid.as_str()),
            ("AnsweredBy", answered_by),
            ("MachineDetectionDuration", "2400"),
        ];
        post_webhook(&client(), &url, self.auth_token.as_deref(), &form).await
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(15))
        .finish()
}

/// A REST request the API took: which resource, and its form.
#[derive(Clone, Debug)]
pub struct RestRequest {
    /// `calls`, `call_update` or `messages`.
    pub kind: &'static str,
    /// The call an update is for.
    pub call_sid: Option<String>,
    pub form: Vec<(String, String)>,
}

impl RestRequest {
    pub fn field(&self, name: &str) -> Option<&str> {
        form_get(&self.form, name)
    }
}

struct State {
    auth_token: String,
    /// Numbers that cannot take texts (landlines): Messages answers them with 21614.
    landlines: Vec<String>,
    requests: Vec<RestRequest>,
    placed: mpsc::UnboundedSender<PlacedCall>,
    /// The same calls by SID, for [`CallsApiHandle::take`].
    by_sid: HashMap<String, PlacedCall>,
    next_sid: u64,
}

/// The simulated REST API, listening on a port of its own.
pub struct CallsApi {
    /// Its origin: what the server's `twilio.api_base` is set to.
    pub base: String,
    state: Arc<Mutex<State>>,
    stoppers: Arc<Mutex<HashMap<String, Stopper>>>,
    placed: mpsc::UnboundedReceiver<PlacedCall>,
    /// The token webhooks are signed with (the account's auth token).
    auth_token: String,
    handle: actix_web::dev::ServerHandle,
}

impl CallsApi {
    /// Starts the API for account [`ACCOUNT_SID`] with `auth_token`, on the current actix
    /// system. `landlines` cannot take texts.
    pub fn start(auth_token: &str, landlines: &[&str]) -> std::io::Result<CallsApi> {
        let (placed_tx, placed) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(State {
            auth_token: auth_token.to_owned(),
            landlines: landlines.iter().map(|n| (*n).to_owned()).collect(),
            requests: Vec::new(),
            placed: placed_tx,
            by_sid: HashMap::new(),
            next_sid: 1,
        }));
        let stoppers: Arc<Mutex<HashMap<String, Stopper>>> = Default::default();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(Shared {
            state: state.clone(),
            stoppers: stoppers.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/2010-04-01/Accounts/{account}/Calls.json",
                    web::post().to(create_call),
                )
                .route(
                    "/2010-04-01/Accounts/{account}/Calls/{call}.json",
                    web::post().to(update_call),
                )
                .route(
                    "/2010-04-01/Accounts/{account}/Messages.json",
                    web::post().to(create_message),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(CallsApi {
            base: format!("http://127.0.0.1:{port}"),
            state,
            stoppers,
            placed,
            auth_token: auth_token.to_owned(),
            handle,
        })
    }

    /// The account the API serves.
    pub fn account_sid(&self) -> &'static str {
        ACCOUNT_SID
    }

    pub fn auth_token(&self) -> &str {
        &self.auth_token
    }

    /// The next call the server created, waiting up to `within`.
    pub async fn next_call(&mut self, within: Duration) -> Result<PlacedCall, SimError> {
        match tokio::time::timeout(within, self.placed.recv()).await {
            Ok(Some(mut call)) => {
                call.auth_token = Some(self.auth_token.clone());
                call.stoppers = self.stoppers.clone();
                Ok(call)
            }
            Ok(None) => Err(SimError::Ended),
            Err(_) => Err(SimError::Timeout(within)),
        }
    }

    /// A call created since, if any, without waiting.
    pub fn try_next_call(&mut self) -> Option<PlacedCall> {
        let mut call = self.placed.try_recv().ok()?;
        call.auth_token = Some(self.auth_token.clone());
        call.stoppers = self.stoppers.clone();
        Some(call)
    }

    /// Every REST request taken so far, in order.
    pub fn requests(&self) -> Vec<RestRequest> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// Waits until `n` requests of `kind` were taken, up to `within`; returns them.
    pub async fn wait_for(
        &self,
        kind: &str,
        n: usize,
        within: Duration,
    ) -> Result<Vec<RestRequest>, SimError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let found: Vec<RestRequest> = self
                .requests()
                .into_iter()
                .filter(|r| r.kind == kind)
                .collect();
            if found.len() >= n {
                return Ok(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Timeout(within));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// A handle other threads answer calls with (the load test's generators).
    pub fn handle(&self) -> CallsApiHandle {
        CallsApiHandle {
            state: self.state.clone(),
            stoppers: self.stoppers.clone(),
            auth_token: self.auth_token.clone(),
        }
    }
}

/// The API's calls, reachable from any thread.
#[derive(Clone)]
pub struct CallsApiHandle {
    state: Arc<Mutex<State>>,
    stoppers: Arc<Mutex<HashMap<String, Stopper>>>,
    auth_token: String,
}

impl CallsApiHandle {
    /// The call created with SID `call_sid`, once (the caller then answers it).
    pub fn take(&self, call_sid: &str) -> Option<PlacedCall> {
        let mut call = self.state.lock().ok()?.by_sid.remove(call_sid)?;
        call.auth_token = Some(self.auth_token.clone());
        call.stoppers = self.stoppers.clone();
        Some(call)
    }
}

struct Shared {
    state: Arc<Mutex<State>>,
    stoppers: Arc<Mutex<HashMap<String, Stopper>>>,
}

/// Twilio's error body.
fn error(status: u16, code: u32, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    }))
}

/// Basic auth with the account's SID and token, for the account in the path.
fn authorized(req: &HttpRequest, shared: &Shared, account: &str) -> bool {
    let Some(encoded) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    let token = shared
        .state
        .lock()
        .map(|s| s.auth_token.clone())
        .unwrap_or_default();
    account == ACCOUNT_SID && decoded == format!("{ACCOUNT_SID}:{token}").as_bytes()
}

fn absolute(url: Option<&str>) -> bool {
    url.and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// What Twilio would refuse in a create request (protocols-more.md §1.1).
fn check_create(form: &[(String, String)]) -> Result<(), (u32, String)> {
    let to = form_get(form, "To").unwrap_or_default();
    if !is_e164(to) {
        return Err((
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    if !is_e164(form_get(form, "From").unwrap_or_default()) {
        return Err((
            21212,
            "The 'From' number is not a valid phone number.".into(),
        ));
    }
    if !absolute(form_get(form, "Url")) && form_get(form, "Twiml").is_none() {
        return Err((21205, "Url is not a valid URL.".into()));
    }
    if form_get(form, "StatusCallback").is_some() && !absolute(form_get(form, "StatusCallback")) {
        return Err((21609, "StatusCallback is not a valid URL.".into()));
    }
    match form_get(form, "MachineDetection") {
        None | Some("Enable" | "DetectMessageEnd") => {}
        Some(_) => return Err((21218, "Invalid MachineDetection value.".into())),
    }
    if form_get(form, "AsyncAmd") == Some("true") {
        if form_get(form, "MachineDetection").is_none() {
            return Err((21218, "AsyncAmd needs MachineDetection.".into()));
        }
        if !absolute(form_get(form, "AsyncAmdStatusCallback")) {
            return Err((
                21262,
                "AsyncAmd without an AsyncAmdStatusCallback URL.".into(),
            ));
        }
    }
    Ok(())
}

fn call_resource(sid: &str, form: &[(String, String)], status: &str) -> serde_json::Value {
    json!({
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": form_get(form, "To"),
        "from": form_get(form, "From"),
        "status": status,
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "answered_by": null,
        "price": null,
        "queue_time": "0",
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"),
    })
}

async fn create_call(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if !authorized(&req, &shared, &path) {
        return error(401, 20003, "Authenticate");
    }
    let Ok(form) = parse_form(&body) else {
        return error(400, 21205, "unreadable form");
    };
    if let Err((code, message)) = check_create(&form) {
        return error(400, code, &message);
    }
    let Ok(mut state) = shared.state.lock() else {
        return error(500, 20500, "internal error");
    };
    let sid = format!("CA{:032x}", state.next_sid);
    state.next_sid += 1;
    state.requests.push(RestRequest {
        kind: "calls",
        call_sid: Some(sid.clone()),
        form: form.clone(),
    });
    let placed = PlacedCall {
        call_sid: sid.clone(),
        form: form.clone(),
        auth_token: None,
        stoppers: Default::default(),
    };
    state.by_sid.insert(sid.clone(), placed.clone());
    let _ = state.placed.send(placed);
    HttpResponse::Created().json(call_resource(&sid, &form, "queued"))
}

async fn update_call(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (account, call_sid) = path.into_inner();
    if !authorized(&req, &shared, &account) {
        return error(401, 20003, "Authenticate");
    }
    let Ok(form) = parse_form(&body) else {
        return error(400, 21205, "unreadable form");
    };
    if form_get(&form, "Twiml").is_some() && form_get(&form, "Url").is_some() {
        return error(400, 21205, "Twiml and Url are mutually exclusive");
    }
    if let Ok(mut state) = shared.state.lock() {
        state.requests.push(RestRequest {
            kind: "call_update",
            call_sid: Some(call_sid.clone()),
            form: form.clone(),
        });
    }
    // New TwiML (or `Status=completed`) ends the stream the call is in.
    let stopper = shared
        .stoppers
        .lock()
        .ok()
        .and_then(|mut s| s.remove(&call_sid));
    if let Some(stopper) = stopper {
        stopper.stop();
    }
    HttpResponse::Ok().json(call_resource(&call_sid, &form, "in-progress"))
}

async fn create_message(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if !authorized(&req, &shared, &path) {
        return error(401, 20003, "Authenticate");
    }
    let Ok(form) = parse_form(&body) else {
        return error(400, 21205, "unreadable form");
    };
    let Ok(mut state) = shared.state.lock() else {
        return error(500, 20500, "internal error");
    };
    let to = form_get(&form, "To").unwrap_or_default().to_owned();
    if state.landlines.contains(&to) {
        return error(400, 21614, "'To' number is not a valid mobile number");
    }
    state.requests.push(RestRequest {
        kind: "messages",
        call_sid: None,
        form,
    });
    let sid = format!("SM{:032x}", state.next_sid);
    state.next_sid += 1;
    HttpResponse::Created().json(json!({ "sid": sid, "status": "queued", "to": to }))
}
