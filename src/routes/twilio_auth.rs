//! `X-Twilio-Signature` at the edge (SPEC §9): every Twilio webhook and both WebSocket
//! handshakes are checked against `PUBLIC_URL` + path + query before anything is done.
//! Without an auth token (local mode) the check is off, and start-up said so.

use actix_web::HttpRequest;

use super::RouteError;
use actors::config::EngineConfig;
use actors::protocol::twilio::signature;

const HEADER: &str = "X-Twilio-Signature";

fn path_and_query(req: &HttpRequest) -> &str {
    req.uri().path_and_query().map_or("/", |pq| pq.as_str())
}

fn header(req: &HttpRequest) -> Result<&str, RouteError> {
    req.headers()
        .get(HEADER)
        .ok_or(RouteError::Forbidden("missing X-Twilio-Signature header"))?
        .to_str()
        .map_err(|_| RouteError::Forbidden("unreadable X-Twilio-Signature header"))
}

/// Checks a form webhook.
pub fn check_form(
    config: &EngineConfig,
    req: &HttpRequest,
    params: &[(String, String)],
) -> Result<(), RouteError> {
    let Some(token) = &config.twilio.auth_token else {
        return Ok(());
    };
    let url = config.server.public_http_url(path_and_query(req));
    if signature::validate(token.expose(), &url, params, None, header(req)?) {
        Ok(())
    } else {
        Err(RouteError::Forbidden("X-Twilio-Signature does not match"))
    }
}

/// Checks a WebSocket handshake: the URL as written in the TwiML (`wss://…`); `validate`
/// also tries the trailing-slash variant Twilio's docs suggest for handshakes.
pub fn check_handshake(config: &EngineConfig, req: &HttpRequest) -> Result<(), RouteError> {
    let Some(token) = &config.twilio.auth_token else {
        return Ok(());
    };
    let url = config.server.public_ws_url(path_and_query(req));
    if signature::validate(token.expose(), &url, &[], None, header(req)?) {
        Ok(())
    } else {
        Err(RouteError::Forbidden("X-Twilio-Signature does not match"))
    }
}
