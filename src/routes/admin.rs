//! `/health`, `/actors` and `/metrics`: what operators and load balancers look at.
//! `/actors` and `/metrics` need the admin bearer token (or the dashboard's session cookie,
//! `session.rs`), or — when no token is set — a client on this machine that did not come
//! through a tunnel or proxy (SPEC §9). The supervisor's actions under `/actors/…` are in
//! `supervise.rs`; they take [`AdminAction`], which adds the checks that keep other sites'
//! pages from acting in an operator's name.
//!
//! `/actors` and `/actors/calls/{call_sid}` answer JSON to a client whose `Accept` prefers it
//! and a page to everyone else (SPEC §10). The pages are static vanilla HTML/JS, compiled in,
//! that poll their own URL for the JSON: no build step, no template, and nothing from the
//! data is ever written into markup by the server.

use std::future::{ready, Ready};

use actix_web::http::header::{self, Header as _};
use actix_web::{mime, web, FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::client::is_direct_local;
use super::listing::{self, ListQuery};
use super::{session, RouteError};
use actors::call::messages::{CurrentTranscript, Describe};
use actors::registry::messages::{DescribeCalls, DescribeConversations, FindCall};
use actors::Engine;

/// `200 {"status":"ok"}`, or `503` with the reasons the service is degraded — or
/// `503 {"status":"draining"}` from the moment the process is asked to stop, so load
/// balancers send nothing new.
pub async fn health(engine: web::Data<Engine>) -> HttpResponse {
    if engine.shared().health.drain.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "status": "draining" }));
    }
    let mut problems = engine.shared().health.problems();
    if let Err(err) = engine.shared().store.flush().await {
        problems.push(format!("store: {err}"));
    }
    if problems.is_empty() {
        HttpResponse::Ok().json(json!({ "status": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "degraded", "reasons": problems }))
    }
}

/// Proof that a request may see admin surfaces, and the engine they show. Every admin
/// handler takes one — it is how such a handler gets the engine — so the access rule is
/// written once, here, for every admin endpoint there is and will be:
/// * with `SWITCHBOARD_ADMIN_TOKEN` set, `Authorization: Bearer <token>` (constant-time),
///   or the session cookie the dashboard's sign-in sets (`session.rs`);
/// * without it, only a request straight from this machine: a loopback peer with no
///   forwarding header and a loopback `Host`. A request through `ngrok http 8080` also
///   comes from 127.0.0.1, so loopback alone would open the dashboard to the internet.
pub struct Admin(pub web::Data<Engine>);

/// How a request proved its admin rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`: a script; a browser never adds it on its own.
    Bearer,
    /// The dashboard's session cookie.
    Session,
    /// No token is set, and the request came straight from this machine.
    Local,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Bearer => "bearer",
            Via::Session => "session",
            Via::Local => "local",
        }
    }
}

impl FromRequest for Admin {
    type Error = RouteError;
    type Future = Ready<Result<Self, RouteError>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        ready(admin_engine(req).map(|(engine, _)| Admin(engine)))
    }
}

fn admin_engine(req: &HttpRequest) -> Result<(web::Data<Engine>, Via), RouteError> {
    let Some(engine) = req.app_data::<web::Data<Engine>>() else {
        return Err(RouteError::Unavailable("engine not running".into()));
    };
    authorize(engine, req).map(|via| (engine.clone(), via))
}

/// Admin rights for a state-changing request (a supervisor's action): [`Admin`]'s rule,
/// and unless the request carries the bearer token — which no browser adds by itself —
/// proof that it does not come from another site's page: a JSON body
/// (`Content-Type: application/json`, which a cross-site form cannot send and a cross-site
/// script can only send after a CORS preflight this server never grants), an `Origin` (when
/// sent) of this very server, and no `Sec-Fetch-Site` other than `same-origin`. With the
/// `SameSite=Strict` cookie, that is three locks on one door. Refused: `403`, nothing done.
pub struct AdminAction {
    pub engine: web::Data<Engine>,
    pub via: Via,
}

impl FromRequest for AdminAction {
    type Error = RouteError;
    type Future = Ready<Result<Self, RouteError>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        ready(admin_engine(req).and_then(|(engine, via)| {
            if via != Via::Bearer {
                json_only(req)?;
                same_origin(req)?;
            }
            Ok(AdminAction { engine, via })
        }))
    }
}

/// Refuses a request whose body is not declared JSON.
pub fn json_only(req: &HttpRequest) -> Result<(), RouteError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.type_() == mime::APPLICATION && m.subtype() == mime::JSON);
    if json {
        Ok(())
    } else {
        Err(RouteError::Forbidden(
            "admin actions take a JSON body (Content-Type: application/json)",
        ))
    }
}

/// Refuses a request a browser says came from another site.
fn same_origin(req: &HttpRequest) -> Result<(), RouteError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err(RouteError::Forbidden(
                "admin actions are taken only from the dashboard's own pages",
            ));
        }
    }
    if let Some(origin) = header("origin") {
        // `scheme://host[:port]`: the authority this request was sent to, or `PUBLIC_URL`'s
        // origin (a reverse proxy may hand us its own `Host`).
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        let sent_to = authority.is_some() && authority == header("host");
        let public = req.app_data::<web::Data<Engine>>().is_some_and(|engine| {
            let public = engine
                .shared()
                .config
                .server
                .public_url
                .trim_end_matches('/');
            !public.is_empty() && public.eq_ignore_ascii_case(origin)
        });
        if !sent_to && !public {
            return Err(RouteError::Forbidden(
                "admin actions are taken only from the dashboard's own pages",
            ));
        }
    }
    Ok(())
}

fn authorize(engine: &Engine, req: &HttpRequest) -> Result<Via, RouteError> {
    match &engine.shared().config.admin.token {
        Some(token) => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
                Ok(Via::Bearer)
            } else if session::has_session(token.expose(), req) {
                Ok(Via::Session)
            } else {
                Err(RouteError::Forbidden("admin bearer token required"))
            }
        }
        None if is_direct_local(req) => Ok(Via::Local),
        None => Err(RouteError::Forbidden(
            "without SWITCHBOARD_ADMIN_TOKEN, admin pages answer only clients on this machine, \
             never requests through a tunnel or proxy",
        )),
    }
}

/// For a page: the engine, or — to a browser without rights, when a token is set — the
/// sign-in form (`401`), or the refusal.
pub fn page_access(req: &HttpRequest) -> Result<(web::Data<Engine>, Via), Box<HttpResponse>> {
    match admin_engine(req) {
        Ok(granted) => Ok(granted),
        Err(refusal) => {
            let token_set = req
                .app_data::<web::Data<Engine>>()
                .is_some_and(|e| e.shared().config.admin.token.is_some());
            if token_set && !wants_json(req) && matches!(refusal, RouteError::Forbidden(_)) {
                let mut login = page(LOGIN_PAGE);
                *login.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
                login.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"switchboard\""),
                );
                Err(Box::new(login))
            } else {
                Err(Box::new(actix_web::ResponseError::error_response(&refusal)))
            }
        }
    }
}

/// The supervisor dashboard: renders the `/actors` JSON, polled every second.
const DASHBOARD_PAGE: &str = include_str!("dashboard.html");
/// One call's transcript or one conversation's thread, polled while it is live, with the
/// supervisor's actions.
pub(super) const TRANSCRIPT_PAGE: &str = include_str!("transcript.html");
/// The sign-in form shown instead of a page to a browser without admin rights.
const LOGIN_PAGE: &str = include_str!("login.html");

/// The pages load nothing from elsewhere and talk only to their own origin; their inline
/// script and style are the only ones allowed to run.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Whether the client ranks `application/json` above `text/html`. A browser, `*/*`, a missing
/// or unreadable `Accept` all get the page: JSON is for clients that ask for it by name.
pub(super) fn wants_json(req: &HttpRequest) -> bool {
    let Ok(accept) = header::Accept::parse(req) else {
        return false;
    };
    // `q=0` means "not acceptable", which `ranked` would still list.
    let acceptable = header::Accept(
        accept
            .0
            .into_iter()
            .filter(|item| item.quality > header::Quality::ZERO)
            .collect(),
    );
    acceptable
        .ranked()
        .iter()
        .find_map(|mime| match (mime.type_(), mime.subtype()) {
            (mime::APPLICATION, mime::JSON) => Some(true),
            (mime::TEXT, mime::HTML) => Some(false),
            _ => None,
        })
        .unwrap_or(false)
}

/// Live data: never cached, and a cache must key it on `Accept` since one URL has two forms.
pub(super) fn live_json(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::VARY, "Accept"))
        .json(body)
}

pub(super) fn page(html: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::VARY, "Accept"))
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(html)
}

/// The live actor tree — the registry, the calls and conversations that match the query
/// (search, kind, sort, one page of them) with their children, and the engine's actor
/// census — as JSON, or as the supervisor dashboard that polls it. A browser without
/// rights gets the sign-in form when a token is set.
pub async fn actors(req: HttpRequest) -> Result<HttpResponse, RouteError> {
    let (engine, via) = match page_access(&req) {
        Ok(granted) => granted,
        Err(answer) => return Ok(*answer),
    };
    if !wants_json(&req) {
        return Ok(page(DASHBOARD_PAGE));
    }
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|err| RouteError::BadRequest(format!("query: {err}")))?;
    let stopped = |_| RouteError::Unavailable("engine is shutting down".into());
    let calls = engine
        .registry()
        .send(DescribeCalls)
        .await
        .map_err(stopped)?;
    let conversations = engine
        .registry()
        .send(DescribeConversations)
        .await
        .map_err(stopped)?;
    // In a cluster: every node, alive or not, with what it last published.
    let nodes = match engine.cluster_nodes().await {
        Some(nodes) => Some(nodes.map_err(|err| RouteError::Unavailable(err.to_string()))?),
        None => None,
    };
    let cluster_calls: Option<u64> = nodes.as_ref().map(|nodes| {
        nodes
            .iter()
            .filter(|n| n["alive"] == true)
            .filter_map(|n| n["calls_total"].as_u64())
            .sum()
    });
    let scheduled = scheduled_calls(&engine).await?;
    let (total_calls, total_conversations) = (calls.len(), conversations.len());
    let listed = listing::list(calls, conversations, &query);
    Ok(live_json(&json!({
        "registry": {
            "kind": "registry",
            "node": engine.shared().node_id,
            "calls": total_calls,
            "conversations": total_conversations,
        },
        "calls": listed.calls,
        "conversations": listed.conversations,
        "order": listed.order,
        "page": listed.page,
        "census": engine.shared().census.snapshot(),
        "access": {
            "via": via.as_str(),
            "human_number": engine.shared().config.twilio.human_number.is_some(),
        },
        "cluster": nodes.map(|nodes| json!({ "nodes": nodes, "calls_total": cluster_calls })),
        "scheduled_calls": scheduled,
    })))
}

/// How many promised call backs `/actors` lists.
const SCHEDULED_SHOWN: usize = 50;

/// The promised call backs (`schedule_callback`): pending ones by due time, then the rest,
/// numbers masked.
async fn scheduled_calls(engine: &Engine) -> Result<Vec<Value>, RouteError> {
    let calls = engine
        .shared()
        .store
        .scheduled_calls(SCHEDULED_SHOWN)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    Ok(calls
        .into_iter()
        .map(|call| {
            json!({
                "id": call.id,
                "to": actors::domain::records::mask_phone(&call.to),
                "agent": call.agent,
                "reason": call.reason,
                "due_at_ms": call.due_at_ms,
                "due": actors::domain::outreach::format_ms(call.due_at_ms),
                "state": call.state.as_str(),
                "attempts": call.attempts,
                "node": call.node,
                "call_sid": call.call_sid,
                "note": call.note,
            })
        })
        .collect())
}

/// One call's transcript — live from its actor while the call lasts, else from its record —
/// as JSON, or as a page that polls it. `404` for a call the engine has never seen.
pub async fn call_transcript(
    req: HttpRequest,
    call_sid: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let engine = match page_access(&req) {
        Ok((engine, _)) => engine,
        Err(answer) => return Ok(*answer),
    };
    let call_sid = call_sid.into_inner();
    match transcript(&engine, &call_sid).await? {
        Some(body) if wants_json(&req) => Ok(live_json(&body)),
        Some(_) => Ok(page(TRANSCRIPT_PAGE)),
        None => Ok(HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no call {call_sid}\n"))),
    }
}

async fn transcript(engine: &Engine, call_sid: &str) -> Result<Option<Value>, RouteError> {
    let live = engine
        .registry()
        .send(FindCall(call_sid.to_string()))
        .await
        .map_err(|_| RouteError::Unavailable("engine is shutting down".into()))?;
    // What Twilio's callbacks wrote (transcription, recordings) is in the store, live or not.
    let record = engine
        .shared()
        .store
        .get_call(call_sid)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    let (transcriptions, recordings) = record
        .as_ref()
        .map(|r| (r.transcriptions.clone(), r.recordings.clone()))
        .unwrap_or_default();
    // Voicemails left on this call live in the customer's record (with their recording).
    let voicemails: Vec<actors::domain::records::Voicemail> =
        match record.as_ref().and_then(|r| r.customer.as_deref()) {
            Some(customer) => engine
                .shared()
                .store
                .customer(customer)
                .await
                .map_err(|err| RouteError::Unavailable(err.to_string()))?
                .map(|customer| customer.voicemails)
                .unwrap_or_default()
                .into_iter()
                .filter(|voicemail| voicemail.call_sid == call_sid)
                .collect(),
            None => Vec::new(),
        };
    if let Some(call) = live {
        if let Ok(transcript) = call.transcript.send(CurrentTranscript).await {
            // How the call is carried (`listen`: people talk, we only transcribe).
            let audio_mode = call
                .describe
                .send(Describe {
                    sent_at: std::time::Instant::now(),
                })
                .await
                .map(|view| view.audio_mode)
                .ok();
            return Ok(Some(json!({
                "kind": "call",
                "call_sid": call_sid,
                "live": true,
                "audio_mode": audio_mode,
                "human_number": engine.shared().config.twilio.human_number.is_some(),
                "transcript": transcript,
                "transcriptions": transcriptions,
                "recordings": recordings,
                "voicemails": voicemails,
            })));
        }
    }
    Ok(record.map(|record| {
        json!({
            "kind": "call",
            "call_sid": call_sid,
            "live": false,
            "outcome": record.outcome,
            "audio_mode": record.audio_mode,
            "transcript": record.transcript,
            "tools_used": record.tools_used,
            "transcriptions": record.transcriptions,
            "recordings": record.recordings,
            "voicemails": voicemails,
        })
    }))
}

/// Every admin route: the dashboard, its sign-in, the supervisor's actions, `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use super::supervise;
    cfg.route("/actors", web::get().to(actors))
        .route("/actors/login", web::post().to(session::login))
        .route("/actors/logout", web::post().to(session::logout))
        .route("/actors/stats", web::get().to(supervise::stats))
        .route("/actors/calls/{call_sid}", web::get().to(call_transcript))
        .route(
            "/actors/calls/{call_sid}/{action}",
            web::post().to(supervise::call_action),
        )
        .route(
            "/actors/conversations/{key}",
            web::get().to(supervise::conversation),
        )
        .route(
            "/actors/conversations/{key}/{action}",
            web::post().to(supervise::conversation_action),
        )
        .route("/metrics", web::get().to(metrics));
}

/// Prometheus text exposition.
pub async fn metrics(_admin: Admin) -> Result<HttpResponse, RouteError> {
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(actors::metrics::render()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn accepting(accept: &str) -> bool {
        wants_json(
            &TestRequest::default()
                .insert_header((header::ACCEPT, accept))
                .to_http_request(),
        )
    }

    #[test]
    fn json_only_when_ranked_above_html() {
        assert!(accepting("application/json"));
        assert!(accepting("text/html;q=0.5, application/json"));
        assert!(accepting("application/json, */*;q=0.1"));
        assert!(!accepting("text/html, application/json;q=0.9"));
        assert!(!accepting(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
    }

    #[test]
    fn actions_come_only_from_the_servers_own_pages() {
        let request = |headers: &[(&str, &str)]| {
            let mut req = TestRequest::default().insert_header((header::HOST, "127.0.0.1:8080"));
            for (name, value) in headers {
                req = req.insert_header((*name, *value));
            }
            same_origin(&req.to_http_request()).is_ok()
        };
        assert!(request(&[]), "curl sends neither");
        assert!(request(&[("Origin", "http://127.0.0.1:8080")]));
        assert!(request(&[
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", "http://127.0.0.1:8080")
        ]));
        assert!(request(&[("Sec-Fetch-Site", "none")]));
        assert!(!request(&[("Origin", "http://evil.example")]));
        assert!(!request(&[("Origin", "http://127.0.0.1:8081")]));
        assert!(!request(&[("Origin", "null")]));
        assert!(!request(&[("Sec-Fetch-Site", "cross-site")]));
        assert!(!request(&[("Sec-Fetch-Site", "same-site")]));
    }

    #[test]
    fn anything_else_gets_the_page() {
        assert!(!accepting("*/*"));
        assert!(!accepting("text/plain"));
        assert!(!accepting("application/json;q=0, text/plain"));
        assert!(!accepting("not a media type"));
        assert!(!wants_json(&TestRequest::default().to_http_request()));
    }
}
