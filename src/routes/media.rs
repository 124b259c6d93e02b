//! `GET /twilio/media`: the Media Streams WebSocket. One `Call` actor per socket.

use actix_web::{web, HttpRequest, HttpResponse};

use actors::call::Call;
use actors::Engine;

pub async fn socket(
    engine: web::Data<Engine>,
    req: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    super::twilio_socket(&engine, &req, stream, Call::new)
}
