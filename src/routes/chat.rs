//! Web chat (SPEC §5.5): `GET /` and `GET /chat` serve a small page (no build step) that
//! talks over `GET /chat/ws?id=…`; `switchboard chat` uses the same socket. The customer
//! is `web:<id>`, an id the browser keeps, so a returning visitor continues their thread.
//!
//! Socket protocol (JSON text frames): the client sends `{"type":"message","text":…}`;
//! the server streams `{"type":"token","text":…}` pieces, then `{"type":"done","text":…}`
//! with the whole answer, or `{"type":"error","message":…}`. A message over the web-chat
//! limits (`limits.web_messages_per_minute`, per visitor and per client IP) is answered at
//! once with an error frame that also carries `"retry_after_ms"`, and reaches no model.

use std::net::IpAddr;

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::{Deserialize, Serialize};

use super::client::client_ip;
use super::RouteError;
use ::actors::conversation::messages::{Channel, ReplyEvent};
use ::actors::engine::{IncomingText, Reply};
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
        ip: client_ip(&req),
        limit_logged: false,
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
    Token {
        text: &'a str,
    },
    Done {
        text: &'a str,
    },
    Error {
        message: &'a str,
        /// When the message was refused by a limit: how long until one more is accepted.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// An error frame with nothing to wait for.
fn error(message: &str) -> String {
    frame(&ServerFrame::Error {
        message,
        retry_after_ms: None,
    })
}

fn frame(frame: &ServerFrame<'_>) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

/// The socket's actor: relays the visitor's messages to their `Conversation` and its
/// streamed answers back.
struct WebChat {
    engine: Engine,
    customer: String,
    /// The visitor's address, by the same rule as the per-IP HTTP limit.
    ip: Option<IpAddr>,
    /// Refusals are logged once per socket, not once per message.
    limit_logged: bool,
}

impl WebChat {
    /// Whether the visitor may send one more message now; if not, they are told when they
    /// may, and the refusal is counted.
    fn within_limits(&mut self, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        let Err(refused) = self
            .engine
            .shared()
            .limits
            .allow_web_message(&self.customer, self.ip)
        else {
            return true;
        };
        ::actors::metrics::rate_limited(refused.scope.label());
        if !self.limit_logged {
            self.limit_logged = true;
            tracing::warn!(
                scope = refused.scope.label(),
                "web-chat visitor over the message limit; their messages are refused"
            );
        }
        let wait_ms = u64::try_from(refused.wait.as_millis()).unwrap_or(u64::MAX);
        ctx.text(frame(&ServerFrame::Error {
            message: "you are sending messages faster than we can answer; \
                      please wait a moment and send it again",
            retry_after_ms: Some(wait_ms.max(1)),
        }));
        false
    }
}

impl Actor for WebChat {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WebChat {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(ws::Message::Text(text)) => match serde_json::from_str::<ClientFrame>(&text) {
                Ok(ClientFrame::Message { text }) if !text.trim().is_empty() => {
                    if !self.within_limits(ctx) {
                        return;
                    }
                    let incoming = IncomingText {
                        customer: self.customer.clone(),
                        channel: Channel::Web,
                        text,
                        reply: Reply::Stream(ctx.address().recipient()),
                        message_id: None,
                    };
                    let engine = self.engine.clone();
                    async move { engine.receive_text(incoming).await }
                        .into_actor(self)
                        .map(|routed, _act, ctx| {
                            if routed.is_err() {
                                ctx.text(error(
                                    "we are very busy right now; please try again soon",
                                ));
                            }
                        })
                        .wait(ctx);
                }
                Ok(ClientFrame::Message { .. }) => {}
                Err(_) => ctx.text(error("expected {\"type\":\"message\",\"text\":…}")),
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
