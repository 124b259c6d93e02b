//! A supervisor who can act (SPEC §15): every action of the dashboard is also a JSON
//! endpoint under `/actors/…`, for scripts.
//!
//! | endpoint | body | what happens |
//! |---|---|---|
//! | `POST /actors/calls/{CallSid}/end` | — | a short goodbye, then the call hangs up |
//! | `POST /actors/calls/{CallSid}/transfer` | — | handed to `twilio.human_number` now (`409` without one) |
//! | `POST /actors/calls/{CallSid}/instruct` | `{"text": …}` | the live agent gets it at once |
//! | `GET /actors/conversations/{key}` | — | the conversation and its thread (JSON, or the page) |
//! | `POST /actors/conversations/{key}/instruct` | `{"text": …}` | the model has it from its next turn |
//! | `POST /actors/conversations/{key}/takeover` | — | the assistant falls silent for the customer |
//! | `POST /actors/conversations/{key}/reply` | `{"text": …}` | sent to the customer on their channel |
//! | `POST /actors/conversations/{key}/release` | — | the assistant answers again |
//! | `GET /actors/stats` | — | the dashboard's charts: the last hour, latency, outcomes per agent |
//!
//! Answers: `200 {"ok": true, "action", "target", "note"}`; a refusal is
//! `{"ok": false, "error"}` with `400` (bad request), `404` (no such live call or
//! conversation), `409` (not possible now: no human number, not taken over, the customer
//! unreachable, the call ending) or `502` (the channel refused the message). Without admin
//! rights: `403` and nothing is done ([`AdminAction`]). Each action is recorded on the call's
//! transcript or the customer's thread as a `System` turn `supervisor: …`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::{live_json, page, page_access, wants_json, Admin, AdminAction, TRANSCRIPT_PAGE};
use super::RouteError;
use actors::domain::records::mask_phone;
use actors::registry::messages::FindCall;
use actors::registry::supervise::FindConversation;
use actors::supervise::{Done, Refusal, RefusalKind, Supervise, SupervisorAction};

/// How long an action may take before the supervisor is told it did not answer (a text
/// message's delivery waits for Twilio's REST API).
const ACTION_TIMEOUT: Duration = Duration::from_secs(20);

/// The body of `instruct` and `reply`.
#[derive(Deserialize)]
struct Text {
    text: String,
}

/// Reads the action named in the path, with its body where it takes one; or why not.
fn action(name: &str, body: &[u8]) -> Result<SupervisorAction, (StatusCode, &'static str)> {
    let text = || {
        serde_json::from_slice::<Text>(body)
            .map(|t| t.text)
            .map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    "expected a JSON body {\"text\": \"…\"}",
                )
            })
    };
    Ok(match name {
        "end" => SupervisorAction::End,
        "transfer" => SupervisorAction::Transfer,
        "instruct" => SupervisorAction::Instruct(text()?),
        "takeover" => SupervisorAction::TakeOver,
        "reply" => SupervisorAction::Reply(text()?),
        "release" => SupervisorAction::Release,
        _ => {
            return Err((
                StatusCode::NOT_FOUND,
                "unknown action: end, transfer, instruct, takeover, reply or release",
            ))
        }
    })
}

fn refused(status: StatusCode, error: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "ok": false, "error": error }))
}

/// The answer to an action the target carried out or refused.
fn outcome(
    action: &str,
    target: &str,
    answer: Result<Result<Done, Refusal>, actix::MailboxError>,
) -> HttpResponse {
    match answer {
        Ok(Ok(done)) => HttpResponse::Ok().json(json!({
            "ok": true,
            "action": action,
            "target": target,
            "note": done.note,
        })),
        Ok(Err(refusal)) => {
            let status = match refusal.kind() {
                RefusalKind::BadRequest => StatusCode::BAD_REQUEST,
                RefusalKind::Conflict => StatusCode::CONFLICT,
                RefusalKind::Upstream => StatusCode::BAD_GATEWAY,
            };
            refused(status, &refusal.to_string())
        }
        // The call or conversation ended meanwhile, or did not answer in time.
        Err(actix::MailboxError::Closed) => refused(StatusCode::NOT_FOUND, "it has just ended"),
        Err(actix::MailboxError::Timeout) => refused(
            StatusCode::GATEWAY_TIMEOUT,
            "no answer in time; the action may still be carried out",
        ),
    }
}

fn unavailable(_: actix::MailboxError) -> RouteError {
    RouteError::Unavailable("engine is shutting down".into())
}

/// `POST /actors/calls/{CallSid}/{end|transfer|instruct}`.
pub async fn call_action(
    admin: AdminAction,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let (call_sid, name) = path.into_inner();
    let action = match action(&name, &body) {
        Ok(action) => action,
        Err((status, error)) => return Ok(refused(status, error)),
    };
    if matches!(action, SupervisorAction::Transfer)
        && admin.engine.shared().config.twilio.human_number.is_none()
    {
        return Ok(refused(StatusCode::CONFLICT, &Refusal::NoHuman.to_string()));
    }
    let Some(call) = admin
        .engine
        .registry()
        .send(FindCall(call_sid.clone()))
        .await
        .map_err(unavailable)?
    else {
        return Ok(refused(
            StatusCode::NOT_FOUND,
            "no live call with that CallSid",
        ));
    };
    tracing::info!(%call_sid, action = %name, via = admin.via.as_str(), "supervisor asks");
    let answer = call
        .supervise
        .send(Supervise(action))
        .timeout(ACTION_TIMEOUT)
        .await;
    Ok(outcome(&name, &call_sid, answer))
}

/// `POST /actors/conversations/{key}/{instruct|takeover|reply|release}`.
pub async fn conversation_action(
    admin: AdminAction,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let (key, name) = path.into_inner();
    let action = match action(&name, &body) {
        Ok(action) => action,
        Err((status, error)) => return Ok(refused(status, error)),
    };
    let Some(conversation) = admin
        .engine
        .registry()
        .send(FindConversation(key.clone()))
        .await
        .map_err(unavailable)?
    else {
        return Ok(refused(
            StatusCode::NOT_FOUND,
            "no live conversation with that key (it may have gone idle)",
        ));
    };
    tracing::info!(
        customer = %mask_phone(&conversation.customer),
        action = %name,
        via = admin.via.as_str(),
        "supervisor asks"
    );
    let answer = conversation
        .supervise
        .send(Supervise(action))
        .timeout(ACTION_TIMEOUT)
        .await;
    Ok(outcome(&name, &key, answer))
}

/// Turns of a conversation's thread shown to the supervisor.
const THREAD_TURNS: usize = 100;

/// `GET /actors/conversations/{key}`: the live conversation as the dashboard shows it,
/// with the customer's thread (every channel, oldest first) — JSON, or the page. `key` is
/// the dashboard's `c<n>` or the customer's own key (`+14155550101`, `web:…`); a customer
/// with no live conversation on this node is shown from the store (`"live": false`).
pub async fn conversation(
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, RouteError> {
    let engine = match page_access(&req) {
        Ok((engine, _)) => engine,
        Err(answer) => return Ok(*answer),
    };
    let key = key.into_inner();
    let found = engine
        .registry()
        .send(FindConversation(key.clone()))
        .await
        .map_err(unavailable)?;
    let Some(conversation) = found else {
        // Not live here (retired, on another node, or before a restart): a customer's
        // thread is still in the store — what an escalation's link points to.
        let dashboard_key = key
            .strip_prefix('c')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let thread = if dashboard_key {
            Vec::new()
        } else {
            engine
                .shared()
                .store
                .recent_turns(&key, THREAD_TURNS)
                .await
                .map_err(|err| RouteError::Unavailable(err.to_string()))?
        };
        if thread.is_empty() {
            return Ok(HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body(format!("no conversation {key}\n")));
        }
        if !wants_json(&req) {
            return Ok(page(TRANSCRIPT_PAGE));
        }
        return Ok(live_json(&json!({
            "kind": "conversation",
            "key": key,
            "live": false,
            "customer": mask_phone(&key),
            "transcript": thread,
        })));
    };
    if !wants_json(&req) {
        return Ok(page(TRANSCRIPT_PAGE));
    }
    let view = conversation
        .describe
        .send(actors::call::messages::Describe {
            sent_at: std::time::Instant::now(),
        })
        .timeout(Duration::from_secs(2))
        .await
        .ok();
    let thread = engine
        .shared()
        .store
        .recent_turns(&conversation.customer, THREAD_TURNS)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    Ok(live_json(&json!({
        "kind": "conversation",
        "key": key,
        "live": view.is_some(),
        "customer": mask_phone(&conversation.customer),
        "channel": view.as_ref().map(|v| v.channel),
        "state": view.as_ref().map(|v| v.state),
        "agent": view.as_ref().map(|v| v.agent.clone()),
        "taken_over": view.as_ref().is_some_and(|v| v.state == "taken over"),
        "transcript": thread,
    })))
}

/// `GET /actors/stats`: what the dashboard's charts draw — live calls and conversations
/// over the last hour with each interval's p99 latencies, the latency percentiles since
/// start (hops from the fine recorders; turns at their Prometheus bucket's upper bound),
/// and finished calls per agent and outcome.
pub async fn stats(Admin(engine): Admin) -> HttpResponse {
    use actors::metrics::{self, summary, Hop};
    let census = engine.shared().census.snapshot();
    let hop = |hop: Hop| {
        let snapshot = metrics::hop_latency_snapshot(hop);
        let us = |q: f64| {
            snapshot
                .quantile(q)
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        };
        json!({ "count": snapshot.count(), "p50": us(0.5), "p95": us(0.95), "p99": us(0.99), "unit": "us" })
    };
    let turns = |buckets: summary::Buckets| {
        let ms = |q: f64| buckets.quantile(q).map(|s| (s * 1000.0).round() as u64);
        json!({ "count": buckets.count(), "p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99), "unit": "ms" })
    };
    let outcomes: Vec<Value> = summary::call_outcomes_by_agent()
        .into_iter()
        .map(|(agent, outcomes)| json!({ "agent": agent, "outcomes": outcomes }))
        .collect();
    live_json(&json!({
        "now": {
            "at_ms": actors::clock::wall_clock_ms(),
            "calls": census.calls + census.relay_calls,
            "conversations": census.conversations,
        },
        "sample_every_ms": actors::timeline::SAMPLE_EVERY.as_millis() as u64,
        "series": engine.timeline().last(Duration::from_secs(3600)),
        "latency": {
            "hop_inbound": hop(Hop::Inbound),
            "hop_outbound": hop(Hop::Outbound),
            "voice_turn": turns(summary::voice_turns()),
            "text_turn": turns(summary::text_turns()),
        },
        "outcomes": outcomes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_read_from_the_path_and_body() {
        assert!(matches!(action("end", b""), Ok(SupervisorAction::End)));
        assert!(matches!(
            action("instruct", br#"{"text": "offer the voucher"}"#),
            Ok(SupervisorAction::Instruct(text)) if text == "offer the voucher"
        ));
        let status =
            |answer: Result<SupervisorAction, (StatusCode, &str)>| answer.err().map(|e| e.0);
        assert_eq!(
            status(action("reply", b"not json")),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(status(action("explode", b"")), Some(StatusCode::NOT_FOUND));
    }
}
