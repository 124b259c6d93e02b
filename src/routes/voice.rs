//! `POST /twilio/voice` (incoming call → TwiML), `POST /twilio/voice/next` (after the
//! stream ends → `<Dial>` or `<Hangup/>`) and `POST /twilio/status` (call status callbacks).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{form, twilio_auth, twiml, RouteError};
use actors::protocol::twilio::twiml::{Response, Verb};
use actors::protocol::twilio::webhook::{StatusCallback, VoiceWebhook};
use actors::registry::messages::AdmitCall;
use actors::Engine;

/// What a caller hears when every line is taken (SPEC §8).
const ALL_LINES_BUSY: &str =
    "Sorry, all of our lines are busy right now. Please call again in a few minutes. Goodbye.";

/// Incoming call: admit it, then connect it to the media socket with its identity as
/// `<Parameter>`s (a `<Stream>` URL takes no query string).
pub async fn incoming(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let config = &engine.shared().config;
    let params = form(&body)?;
    twilio_auth::check_form(config, &req, &params)?;
    let call = VoiceWebhook::from_form(&params)?;
    let admitted = engine
        .registry()
        .send(AdmitCall)
        .await
        .map_err(|_| RouteError::Unavailable("engine is shutting down".into()))?;
    if !admitted {
        tracing::warn!(call_sid = %call.call_sid, "all lines busy: call refused");
        actors::metrics::rate_limited("concurrent_calls");
        return Ok(twiml(
            Response::new()
                .push(Verb::Say(ALL_LINES_BUSY.into()))
                .push(Verb::Hangup),
        ));
    }
    let mut parameters = vec![("CallSid".to_string(), call.call_sid.clone())];
    if let Some(from) = &call.from {
        parameters.push(("From".into(), from.clone()));
    }
    if let Some(to) = &call.to {
        parameters.push(("To".into(), to.clone()));
    }
    Ok(twiml(Response::new().push(Verb::ConnectStream {
        action: Some(config.server.public_http_url("/twilio/voice/next")),
        url: config.server.public_ws_url("/twilio/media"),
        parameters,
    })))
}

/// The stream or relay ended: a human if the call was escalated, else hang up.
pub async fn next(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let shared = engine.shared();
    let params = form(&body)?;
    twilio_auth::check_form(&shared.config, &req, &params)?;
    let call = VoiceWebhook::from_form(&params)?;
    let escalated = shared
        .store
        .is_escalated(&call.call_sid)
        .map_err(|err| RouteError::Unavailable(err.to_string()))?;
    let response = match (&shared.config.twilio.human_number, escalated) {
        (Some(number), true) => Response::new().push(Verb::Dial {
            number: number.clone(),
        }),
        _ => Response::new().push(Verb::Hangup),
    };
    Ok(twiml(response))
}

/// Call status callbacks: the socket's close already ended the `Call`; this records what
/// Twilio reports and answers quickly.
pub async fn status(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    let params = form(&body)?;
    twilio_auth::check_form(&engine.shared().config, &req, &params)?;
    let status = StatusCallback::from_form(&params)?;
    tracing::info!(call_sid = %status.call_sid, status = ?status.call_status, "call status");
    Ok(twiml(Response::new()))
}
