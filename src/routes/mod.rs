//! The HTTP and WebSocket surface (SPEC §3): one file per surface. Handlers parse and
//! check at the edge, then hand typed messages to the engine.

pub mod admin;
pub mod call_patterns;
pub mod calls;
pub mod chat;
pub mod client;
pub mod listing;
pub mod media;
pub mod messaging;
pub mod middleware;
pub mod relay;
pub mod session;
pub mod supervise;
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

/// A Twilio form webhook's fields, once its `X-Twilio-Signature` checks out (SPEC §9).
fn signed_form(
    config: &actors::config::EngineConfig,
    req: &actix_web::HttpRequest,
    body: &[u8],
) -> Result<Vec<(String, String)>, RouteError> {
    let params = actors::protocol::twilio::webhook::parse_form(body)?;
    twilio_auth::check_form(config, req, &params)?;
    Ok(params)
}

/// Upgrades a Twilio socket (Media Streams or ConversationRelay) to its call actor, once
/// the handshake's signature checks out; frames are capped at `limits.max_ws_message_bytes`.
fn twilio_socket<A, F>(
    engine: &actors::Engine,
    req: &actix_web::HttpRequest,
    stream: actix_web::web::Payload,
    make: F,
) -> Result<actix_web::HttpResponse, actix_web::Error>
where
    A: actix::Actor<Context = actix_web_actors::ws::WebsocketContext<A>>
        + actix::StreamHandler<
            Result<actix_web_actors::ws::Message, actix_web_actors::ws::ProtocolError>,
        >,
    F: FnOnce(std::sync::Arc<actors::engine::Shared>, actix::Addr<actors::registry::Registry>) -> A,
{
    let shared = engine.shared();
    twilio_auth::check_handshake(&shared.config, req)?;
    let actor = make(shared.clone(), engine.registry().clone());
    actix_web_actors::ws::WsResponseBuilder::new(actor, req, stream)
        .frame_size(shared.config.limits.max_ws_message_bytes)
        .start()
        .map_err(|err| RouteError::BadRequest(format!("not a WebSocket upgrade: {err}")).into())
}
