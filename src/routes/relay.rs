//! `GET /twilio/relay`: the ConversationRelay WebSocket. One `RelayCall` actor per socket.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use super::{twilio_auth, RouteError};
use actors::call::relay::RelayCall;
use actors::Engine;

pub async fn socket(
    engine: web::Data<Engine>,
    req: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let shared = engine.shared();
    twilio_auth::check_handshake(&shared.config, &req)?;
    let call = RelayCall::new(shared.clone(), engine.registry().clone());
    ws::WsResponseBuilder::new(call, &req, stream)
        .frame_size(shared.config.limits.max_ws_message_bytes)
        .start()
        .map_err(|err| RouteError::BadRequest(format!("not a WebSocket upgrade: {err}")).into())
}
