//! `GET /twilio/media`: the Media Streams WebSocket. One `Call` actor per socket.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use super::{twilio_auth, RouteError};
use actors::call::Call;
use actors::Engine;

pub async fn socket(
    engine: web::Data<Engine>,
    req: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let shared = engine.shared();
    twilio_auth::check_handshake(&shared.config, &req)?;
    let call = Call::new(shared.clone(), engine.registry().clone());
    ws::WsResponseBuilder::new(call, &req, stream)
        .frame_size(shared.config.limits.max_ws_message_bytes)
        .start()
        .map_err(|err| RouteError::BadRequest(format!("not a WebSocket upgrade: {err}")).into())
}
