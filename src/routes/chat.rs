//! Web chat (SPEC §5.5): `GET /` and `GET /chat` serve a small page (no build step) that
//! talks over `GET /chat/ws?id=…`; `switchboard chat` uses the same socket. The customer
//! is `web:<id>`, an id the browser keeps, so a returning visitor continues their thread.
//!
//! Socket protocol (JSON text frames): the client sends `{"type":"message","text":…}`;
//! the server streams `{"type":"token","text":…}` pieces, then `{"type":"done","text":…}`
//! with the whole answer, or `{"type":"error","message":…}`.

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::{Deserialize, Serialize};

use super::RouteError;
use ::actors::conversation::messages::{Channel, CustomerMessage, ReplyEvent, ReplyTo};
use ::actors::registry::messages::RouteMessage;
use ::actors::Engine;

const PAGE: &str = include_str!("chat.html");

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PAGE)
}

#[derive(Deserialize)]
struct SocketQuery {
    id: String,
}

/// A web customer id: what the page generates, nothing that could smuggle a key.
fn valid_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn socket(
    engine: web::Data<Engine>,
    req: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let query = web::Query::<SocketQuery>::from_query(req.query_string())
        .map_err(|_| RouteError::BadRequest("missing query parameter 'id'".into()))?;
    if !valid_id(&query.id) {
        return Err(RouteError::BadRequest(
            "'id' must be 8 to 64 letters, digits, '-' or '_'".into(),
        )
        .into());
    }
    let session = WebChat {
        engine: engine.get_ref().clone(),
        customer: format!("web:{}", query.id),
    };
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(engine.shared().config.limits.max_ws_message_bytes)
        .start()
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientFrame {
    Message { text: String },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerFrame<'a> {
    Token { text: &'a str },
    Done { text: &'a str },
    Error { message: &'a str },
}

fn frame(frame: &ServerFrame<'_>) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// The socket's actor: relays the visitor's messages to their `Conversation` and its
/// streamed answers back.
struct WebChat {
    engine: Engine,
    customer: String,
}

impl Actor for WebChat {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WebChat {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(ws::Message::Text(text)) => match serde_json::from_str::<ClientFrame>(&text) {
                Ok(ClientFrame::Message { text }) if !text.trim().is_empty() => {
                    let message = CustomerMessage {
                        channel: Channel::Web,
                        text,
                        reply: ReplyTo::Stream(ctx.address().recipient()),
                    };
                    let route = RouteMessage {
                        customer: self.customer.clone(),
                        message,
                    };
                    self.engine
                        .registry()
                        .send(route)
                        .into_actor(self)
                        .map(|routed, _act, ctx| {
                            if !matches!(routed, Ok(Ok(()))) {
                                ctx.text(frame(&ServerFrame::Error {
                                    message: "we are very busy right now; please try again soon",
                                }));
                            }
                        })
                        .wait(ctx);
                }
                Ok(ClientFrame::Message { .. }) => {}
                Err(_) => ctx.text(frame(&ServerFrame::Error {
                    message: "expected {\"type\":\"message\",\"text\":…}",
                })),
            },
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(ws::ProtocolError::Overflow) => {
                ctx.close(Some(ws::CloseCode::Size.into()));
                ctx.stop();
            }
            Err(_) => ctx.stop(),
        }
    }
}

impl Handler<ReplyEvent> for WebChat {
    type Result = ();

    fn handle(&mut self, event: ReplyEvent, ctx: &mut Self::Context) {
        match &event {
            ReplyEvent::Token(text) => ctx.text(frame(&ServerFrame::Token { text })),
            ReplyEvent::Done(text) => ctx.text(frame(&ServerFrame::Done { text })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_id;

    #[test]
    fn web_ids_are_plain_tokens() {
        assert!(valid_id("a1b2c3d4-e5f6"));
        assert!(!valid_id("short"));
        assert!(!valid_id("has space in it"));
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id(&"x".repeat(65)));
    }
}
