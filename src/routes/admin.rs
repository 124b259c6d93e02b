//! `/health`, `/actors` and `/metrics`: what operators and load balancers look at.
//! `/actors` and `/metrics` need the admin bearer token, or — when no token is set — a
//! client on this machine that did not come through a tunnel or proxy (SPEC §9).
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
use super::RouteError;
use actors::call::messages::CurrentTranscript;
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
/// * with `SWITCHBOARD_ADMIN_TOKEN` set, `Authorization: Bearer <token>` (constant-time);
/// * without it, only a request straight from this machine: a loopback peer with no
///   forwarding header and a loopback `Host`. A request through `ngrok http 8080` also
///   comes from 127.0.0.1, so loopback alone would open the dashboard to the internet.
pub struct Admin(pub web::Data<Engine>);

impl FromRequest for Admin {
    type Error = RouteError;
    type Future = Ready<Result<Self, RouteError>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let Some(engine) = req.app_data::<web::Data<Engine>>() else {
            return ready(Err(RouteError::Unavailable("engine not running".into())));
        };
        ready(authorize(engine, req).map(|()| Admin(engine.clone())))
    }
}

fn authorize(engine: &Engine, req: &HttpRequest) -> Result<(), RouteError> {
    match &engine.shared().config.admin.token {
        Some(token) => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
                Ok(())
            } else {
                Err(RouteError::Forbidden("admin bearer token required"))
            }
        }
        None if is_direct_local(req) => Ok(()),
        None => Err(RouteError::Forbidden(
            "without SWITCHBOARD_ADMIN_TOKEN, admin pages answer only clients on this machine, \
             never requests through a tunnel or proxy",
        )),
    }
}

/// The supervisor dashboard: renders the `/actors` JSON, polled every second.
const DASHBOARD_PAGE: &str = include_str!("dashboard.html");
/// One call's transcript, polled while the call is live.
const TRANSCRIPT_PAGE: &str = include_str!("transcript.html");

/// The pages load nothing from elsewhere and talk only to their own origin; their inline
/// script and style are the only ones allowed to run.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Whether the client ranks `application/json` above `text/html`. A browser, `*/*`, a missing
/// or unreadable `Accept` all get the page: JSON is for clients that ask for it by name.
fn wants_json(req: &HttpRequest) -> bool {
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
fn live_json(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::VARY, "Accept"))
        .json(body)
}

fn page(html: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::VARY, "Accept"))
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(html)
}

/// The live actor tree: the registry, every call and conversation with its children, and the
/// engine's actor census — as JSON, or as the supervisor dashboard that polls it.
pub async fn actors(Admin(engine): Admin, req: HttpRequest) -> Result<HttpResponse, RouteError> {
    if !wants_json(&req) {
        return Ok(page(DASHBOARD_PAGE));
    }
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
    Ok(live_json(&json!({
        "registry": {
            "kind": "registry",
            "node": engine.shared().node_id,
            "calls": calls.len(),
            "conversations": conversations.len(),
        },
        "calls": calls,
        "conversations": conversations,
        "census": engine.shared().census.snapshot(),
        "cluster": nodes.map(|nodes| json!({ "nodes": nodes, "calls_total": cluster_calls })),
    })))
}

/// One call's transcript — live from its actor while the call lasts, else from its record —
/// as JSON, or as a page that polls it. `404` for a call the engine has never seen.
pub async fn call_transcript(
    Admin(engine): Admin,
    req: HttpRequest,
    call_sid: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
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
    if let Some(call) = live {
        if let Ok(transcript) = call.transcript.send(CurrentTranscript).await {
            return Ok(Some(json!({
                "call_sid": call_sid,
                "live": true,
                "transcript": transcript,
            })));
        }
    }
    let record = engine
        .shared()
        .store
        .get_call(call_sid)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    Ok(record.map(|record| {
        json!({
            "call_sid": call_sid,
            "live": false,
            "outcome": record.outcome,
            "transcript": record.transcript,
            "tools_used": record.tools_used,
        })
    }))
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
    fn anything_else_gets_the_page() {
        assert!(!accepting("*/*"));
        assert!(!accepting("text/plain"));
        assert!(!accepting("application/json;q=0, text/plain"));
        assert!(!accepting("not a media type"));
        assert!(!wants_json(&TestRequest::default().to_http_request()));
    }
}
