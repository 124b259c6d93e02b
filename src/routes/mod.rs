//! The HTTP and WebSocket surface (SPEC §3): one file per surface. Handlers parse and
//! check at the edge, then hand typed messages to the engine.

pub mod admin;
pub mod chat;
pub mod media;
pub mod messaging;
pub mod middleware;
pub mod relay;
pub mod voice;

mod error;
mod twilio_auth;

pub use error::RouteError;

/// A TwiML answer.
fn twiml(response: actors::protocol::twilio::twiml::Response) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(response.render())
}

/// A Twilio form body.
fn form(body: &[u8]) -> Result<Vec<(String, String)>, RouteError> {
    Ok(actors::protocol::twilio::webhook::parse_form(body)?)
}
