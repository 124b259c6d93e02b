//! Calls the engine places (issue 10):
//!
//! * `POST /calls` (admin rights, like `/actors`): JSON
//!   `{"to", "agent", "reason", "machine_detection"}` → `202 {"call_sid"}`; a bad request is
//!   `400`, every line taken `409`, no credentials or number `503`, Twilio refusing `502` —
//!   each `{"error"}` with one line, and no call placed.
//! * `POST /twilio/voice/outbound?agent&reason` (signed): Twilio fetches it once the call is
//!   answered; the call is connected like an incoming one, its agent opening it.
//! * `POST /twilio/voice/amd?agent&reason&to` (signed): the asynchronous answering-machine
//!   result; after a machine's beep the voicemail is left and texted.
//! * `POST /twilio/voice/whisper?call` (signed): a warm transfer's whisper — the TwiML the
//!   person hears once they answer, before the caller is connected: a two-sentence summary.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::admin::AdminAction;
use super::voice::{call_parameters, connect, customer_number};
use super::{signed_form, twiml, RouteError};
use actors::config::EngineConfig;
use actors::domain::outreach::{self, CallRequest};
use actors::protocol::twilio::calls::{AmdCallback, AnsweredBy, OUTBOUND_AGENT, OUTBOUND_REASON};
use actors::protocol::twilio::twiml::{Response, Verb};
use actors::protocol::twilio::webhook::VoiceWebhook;
use actors::Engine;

/// `POST /calls`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceBody {
    to: String,
    #[serde(default)]
    agent: Option<String>,
    reason: String,
    #[serde(default)]
    machine_detection: bool,
}

fn refused(status: u16, error: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({ "error": error }))
}

/// `POST /calls`.
pub async fn place(admin: AdminAction, body: web::Bytes) -> HttpResponse {
    let engine = admin.engine;
    let body: PlaceBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            let line = err.to_string();
            let line = line.lines().next().unwrap_or("unreadable");
            return refused(
                400,
                &format!(
                    "expected {{\"to\", \"agent\", \"reason\", \"machine_detection\"}}: {line}"
                ),
            );
        }
    };
    let request = match CallRequest::check(
        &body.to,
        body.agent.as_deref(),
        &body.reason,
        body.machine_detection,
        &engine.shared().agents,
    ) {
        Ok(request) => request,
        Err(err) => return refused(400, &err.to_string()),
    };
    match engine.place_call(&request).await {
        Ok(call_sid) => HttpResponse::Accepted().json(json!({ "call_sid": call_sid })),
        Err(err) => refused(err.status(), &err.to_string()),
    }
}

/// What the outbound webhook's query names.
#[derive(Deserialize)]
struct Placed {
    agent: String,
    reason: String,
    #[serde(default)]
    to: Option<String>,
}

fn placed(req: &HttpRequest) -> Result<Placed, RouteError> {
    web::Query::<Placed>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| RouteError::BadRequest("query must name 'agent' and 'reason'".into()))
}

/// `POST /twilio/voice/outbound`: the customer answered the call we placed. Connected to
/// the voice pipeline with the customer as the caller (their memory is loaded as for an
/// incoming call) and the agent and reason as `<Parameter>`s.
pub async fn answered(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let config = &engine.shared().config;
    let params = signed_form(config, &req, &body)?;
    let placed = placed(&req)?;
    let mut call = VoiceWebhook::from_form(&params)?;
    // We called them: the customer is the call's `To`, our number its `From`.
    call.direction = Some("outbound-api".to_owned());
    tracing::info!(call_sid = %call.call_sid, agent = %placed.agent, "the customer answered our call");
    let mut parameters = call_parameters(&call);
    // On ConversationRelay, Twilio's voice opens the call (its welcome greeting) with the
    // reason; on Media Streams the agent does.
    let opening = outreach::relay_opening(&placed.reason);
    parameters.push((OUTBOUND_AGENT.into(), placed.agent));
    parameters.push((OUTBOUND_REASON.into(), placed.reason));
    Ok(twiml(Response::new().push(connect(
        config,
        parameters,
        Some(&opening),
    ))))
}

/// `POST /twilio/voice/amd`: who answered. A machine whose greeting is over gets the
/// voicemail (and the customer a text); a fax is hung up on; a person, or `unknown`, goes
/// on talking with the agent — never hang up on `unknown` (protocols-more.md §1.5).
pub async fn amd(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let params = signed_form(&engine.shared().config, &req, &body)?;
    let placed = placed(&req)?;
    let result = AmdCallback::from_form(&params)?;
    let call_sid = result.call_sid.clone();
    tracing::info!(%call_sid, answered_by = %result.answered_by_raw, detection_ms = ?result.detection_ms, "answering machine detection");
    let engine = engine.into_inner();
    match result.answered_by {
        AnsweredBy::MachineEnd => {
            // Twilio's request is answered at once; the REST calls follow.
            actix_web::rt::spawn(async move {
                engine
                    .leave_voicemail(&call_sid, placed.to.as_deref(), &placed.reason)
                    .await;
            });
        }
        AnsweredBy::Fax => {
            actix_web::rt::spawn(async move { engine.hang_up_call(&call_sid).await });
        }
        AnsweredBy::Human | AnsweredBy::MachineStart | AnsweredBy::Unknown => {}
    }
    Ok(twiml(Response::new()))
}

/// Where Twilio fetches the whisper of a transfer of `call_sid` (`<Number url>`).
pub(super) fn whisper_url(config: &EngineConfig, call_sid: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("call", call_sid)
        .finish();
    config
        .server
        .public_http_url(&format!("/twilio/voice/whisper?{query}"))
}

/// Texts the person taking transfers about `call` — it is coming to them (`dial_status`
/// `None`), or it did not go through — with the transcript's link. In the background:
/// Twilio's request is answered at once.
pub(super) fn text_the_human(
    engine: &web::Data<Engine>,
    call: &VoiceWebhook,
    dial_status: Option<&str>,
) {
    let engine = engine.clone().into_inner();
    let link = engine.transcript_url(&call.call_sid);
    let caller = customer_number(call).map(str::to_owned);
    let text = match dial_status {
        None => outreach::handover_text(caller.as_deref(), &link),
        Some(status) => outreach::missed_transfer_text(caller.as_deref(), status, &link),
    };
    actix_web::rt::spawn(async move { engine.tell_human(&text).await });
}

#[derive(Deserialize)]
struct Whispered {
    call: String,
}

/// `POST /twilio/voice/whisper?call=CA…`: what the person hears before the caller is put
/// through — a summary of the call so far, from its record. Only `<Say>`: whisper TwiML may
/// not `<Dial>` (protocols-more.md §2.3).
pub async fn whisper(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let shared = engine.shared();
    signed_form(&shared.config, &req, &body)?;
    let whispered = web::Query::<Whispered>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| RouteError::BadRequest("query must name the 'call'".into()))?;
    let record = shared
        .store
        .get_call(&whispered.call)
        .await
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    Ok(twiml(
        Response::new().push(Verb::Say(outreach::whisper(record.as_ref()))),
    ))
}
