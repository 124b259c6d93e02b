//! Calls the engine places (issue 10): `POST /calls`, and the call backs agents promise
//! (`schedule_callback`), both through [`Engine::place_call`] — one path, one set of checks.
//!
//! The call is created with the Calls API; Twilio fetches `/twilio/voice/outbound` (signed,
//! like every webhook) once it is answered, and the call then runs the normal Media Streams
//! path with the agent opening it. With machine detection, Twilio reports a machine on
//! `/twilio/voice/amd` after its greeting's beep; the engine then leaves the voicemail
//! ([`Engine::leave_voicemail`]).

use crate::domain::outreach::{voicemail, CallRequest};
use crate::engine::Engine;
use crate::outbound::{self, Destination, OutboundError};
use crate::protocol::twilio::calls::CreateCall;
use crate::protocol::twilio::twiml::{Response, Verb};
use crate::registry::messages::AdmitCall;

/// Why a call was not placed. [`PlaceError::status`] is the HTTP status `POST /calls`
/// answers with.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(
        "no Twilio credentials to place calls with: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    )]
    NoCredentials,
    #[error("no number to call from: set TWILIO_PHONE_NUMBER")]
    NoNumber,
    #[error("every line is taken (limits.max_calls); try again later")]
    AllLinesBusy,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Twilio said no; nothing was placed.
    #[error("Twilio refused the call: {0}")]
    Refused(String),
    /// Twilio may have placed it: not tried again, so nobody is rung twice.
    #[error("{0}")]
    Unconfirmed(String),
}

impl PlaceError {
    pub fn status(&self) -> u16 {
        match self {
            PlaceError::NoCredentials | PlaceError::NoNumber | PlaceError::ShuttingDown => 503,
            PlaceError::AllLinesBusy => 409,
            PlaceError::Refused(_) | PlaceError::Unconfirmed(_) => 502,
        }
    }

    /// Whether trying again later may place it (a scheduled call back waits, then retries).
    pub fn temporary(&self) -> bool {
        matches!(self, PlaceError::AllLinesBusy | PlaceError::ShuttingDown)
    }
}

/// A URL of ours with `agent` and `reason` in its query (Twilio signs the whole URL, so
/// they come back as they were sent).
fn url_with(engine: &Engine, path: &str, request: &CallRequest, with_to: bool) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("agent", &request.agent)
        .append_pair("reason", &request.reason);
    if with_to {
        // The AMD callback names the call, not whom it rings: the voicemail's text goes here.
        query.append_pair("to", &request.to);
    }
    let query = query.finish();
    engine
        .shared()
        .config
        .server
        .public_http_url(&format!("{path}?{query}"))
}

impl Engine {
    /// Places `request` with the Calls API and returns the call's SID. Refused before
    /// anything is sent when Twilio cannot be reached with credentials, no number is set,
    /// every line is taken or the server is draining.
    pub async fn place_call(&self, request: &CallRequest) -> Result<String, PlaceError> {
        let shared = self.shared();
        let twilio = &shared.config.twilio;
        if twilio.credentials().is_none() {
            return Err(PlaceError::NoCredentials);
        }
        let from = twilio.phone_number.clone().ok_or(PlaceError::NoNumber)?;
        if shared.health.drain.is_draining() {
            return Err(PlaceError::ShuttingDown);
        }
        let admitted = self
            .registry()
            .send(AdmitCall)
            .await
            .map_err(|_| PlaceError::ShuttingDown)?;
        if !admitted {
            crate::metrics::rate_limited("concurrent_calls");
            return Err(PlaceError::AllLinesBusy);
        }
        let create = CreateCall {
            to: request.to.clone(),
            from,
            url: url_with(self, "/twilio/voice/outbound", request, false),
            status_callback: shared.config.server.public_http_url("/twilio/status"),
            amd_callback: request
                .machine_detection
                .then(|| url_with(self, "/twilio/voice/amd", request, true)),
        };
        match outbound::place_call(&shared.config, &create).await {
            Ok(call_sid) => {
                tracing::info!(%call_sid, agent = %request.agent, to = %crate::domain::records::mask_phone(&request.to), "call placed");
                Ok(call_sid)
            }
            Err(err @ (OutboundError::NoCredentials | OutboundError::NoSender)) => {
                Err(PlaceError::Refused(err.to_string()))
            }
            Err(err @ (OutboundError::Refused { .. } | OutboundError::Unreachable(_))) => {
                Err(PlaceError::Refused(err.to_string()))
            }
            Err(err @ OutboundError::Unconfirmed(_)) => {
                Err(PlaceError::Unconfirmed(err.to_string()))
            }
        }
    }

    /// A machine answered `call_sid` and its greeting is over: the call's TwiML is replaced
    /// by the voicemail (`<Say>`, then `<Hangup/>`; this ends the stream and the agent's
    /// session), and `to` gets the same words by SMS — where the number takes texts
    /// (Twilio refuses a landline; that is logged, not retried).
    pub async fn leave_voicemail(&self, call_sid: &str, to: Option<&str>, reason: &str) {
        let config = &self.shared().config;
        let message = voicemail(reason, config.twilio.phone_number.as_deref());
        let twiml = Response::new()
            .push(Verb::Pause(1))
            .push(Verb::Say(message.clone()))
            .push(Verb::Hangup)
            .render();
        match outbound::update_call(config, call_sid, &twiml).await {
            Ok(()) => tracing::info!(%call_sid, "voicemail left"),
            Err(err) => tracing::warn!(%call_sid, error = %err, "the voicemail could not be left"),
        }
        let Some(to) = to else { return };
        let destination = Destination::Message {
            to: to.to_owned(),
            from: None,
        };
        if let Err(err) = outbound::deliver(config, &destination, &message).await {
            tracing::info!(%call_sid, error = %err, "the voicemail's text was not sent");
        }
    }

    /// A fax answered: nothing to say to it.
    pub async fn hang_up_call(&self, call_sid: &str) {
        let twiml = Response::new().push(Verb::Hangup).render();
        if let Err(err) = outbound::update_call(&self.shared().config, call_sid, &twiml).await {
            tracing::warn!(%call_sid, error = %err, "the call could not be hung up");
        }
    }
}
