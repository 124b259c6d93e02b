//! `GET /twilio/relay`: the ConversationRelay WebSocket. One `RelayCall` actor per socket.

use actix_web::{web, HttpRequest, HttpResponse};

use actors::call::relay::RelayCall;
use actors::Engine;

pub async fn socket(
    engine: web::Data<Engine>,
    req: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    super::twilio_socket(&engine, &req, stream, RelayCall::new)
}
