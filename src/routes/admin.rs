//! `/health`, `/actors` and `/metrics`: what operators and load balancers look at.
//! `/actors` and `/metrics` need the admin bearer token, or a loopback client when no token
//! is set (SPEC §9).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::RouteError;
use actors::call::messages::CurrentTranscript;
use actors::registry::messages::{DescribeCalls, FindCall};
use actors::Engine;

/// `200 {"status":"ok"}`, or `503` with the reasons the service is degraded.
pub async fn health(engine: web::Data<Engine>) -> HttpResponse {
    let mut problems = engine.shared().health.problems();
    if let Err(err) = engine.shared().store.flush() {
        problems.push(format!("store: {err}"));
    }
    if problems.is_empty() {
        HttpResponse::Ok().json(json!({ "status": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "degraded", "reasons": problems }))
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
        None => match req.peer_addr() {
            Some(peer) if peer.ip().is_loopback() => Ok(()),
            _ => Err(RouteError::Forbidden(
                "admin pages are for loopback clients unless SWITCHBOARD_ADMIN_TOKEN is set",
            )),
        },
    }
}

/// The live actor tree as JSON: the registry, every call with its children, and the
/// engine's actor census.
pub async fn actors(
    engine: web::Data<Engine>,
    req: HttpRequest,
) -> Result<HttpResponse, RouteError> {
    authorize(&engine, &req)?;
    let calls = engine
        .registry()
        .send(DescribeCalls)
        .await
        .map_err(|_| RouteError::Unavailable("engine is shutting down".into()))?;
    Ok(HttpResponse::Ok().json(json!({
        "registry": { "kind": "registry", "calls": calls.len() },
        "calls": calls,
        "census": engine.shared().census.snapshot(),
    })))
}

/// One call's transcript: live from its actor while the call lasts, else from its record.
pub async fn call_transcript(
    engine: web::Data<Engine>,
    req: HttpRequest,
    call_sid: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    authorize(&engine, &req)?;
    let call_sid = call_sid.into_inner();
    let live = engine
        .registry()
        .send(FindCall(call_sid.clone()))
        .await
        .map_err(|_| RouteError::Unavailable("engine is shutting down".into()))?;
    if let Some(call) = live {
        if let Ok(transcript) = call.send(CurrentTranscript).await {
            return Ok(HttpResponse::Ok().json(json!({
                "call_sid": call_sid,
                "live": true,
                "transcript": transcript,
            })));
        }
    }
    let record = engine
        .shared()
        .store
        .get_call(&call_sid)
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    match record {
        Some(record) => Ok(HttpResponse::Ok().json(json!({
            "call_sid": call_sid,
            "live": false,
            "outcome": record.outcome,
            "transcript": record.transcript,
            "tools_used": record.tools_used,
        }))),
        None => Ok(HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no call {call_sid}\n"))),
    }
}

/// Prometheus text exposition.
pub async fn metrics(
    engine: web::Data<Engine>,
    req: HttpRequest,
) -> Result<HttpResponse, RouteError> {
    authorize(&engine, &req)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(actors::metrics::render()))
}
