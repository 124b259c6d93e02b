//! The WebSocket side of `GET /v1/realtime`: the handshake checks (bearer key, GA interface)
//! and one actor per socket that feeds client frames to its [`Connection`], sends what comes
//! back, runs the pacing timers and injects the configured socket drop.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::{Actor, ActorContext, AsyncContext, StreamHandler};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde_json::json;

use super::connection::{Connection, Settings, Step};
use super::Shared;

/// Largest client frame accepted (1 MiB is two minutes of μ-law in one append).
const MAX_FRAME_BYTES: usize = 1 << 20;
/// Lifetime shown in `session.created.expires_at` (the real cap is 60 minutes).
const SESSION_LIFETIME_SECS: u64 = 3600;

/// An OpenAI-style HTTP error body.
pub(super) fn refusal(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}
    }))
}

/// The `401` for a request without a bearer key, or with the key `sk-invalid`; `None` lets
/// the request in (any other key works).
pub(super) fn refuse_key(request: &HttpRequest) -> Option<HttpResponse> {
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if key.is_empty() {
        return Some(refusal(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "You didn't provide an API key. You need to provide your API key in an \
             Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        ));
    }
    if key == "sk-invalid" {
        return Some(refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Incorrect API key provided: sk-inval**. You can find your API key at \
             https://platform.openai.com/account/api-keys.",
        ));
    }
    None
}

/// Checks the handshake and starts the socket actor.
pub(super) fn accept(
    request: &HttpRequest,
    stream: web::Payload,
    shared: web::Data<Shared>,
) -> actix_web::Result<HttpResponse> {
    if let Some(refused) = refuse_key(request) {
        return Ok(refused);
    }
    let query = web::Query::<HashMap<String, String>>::from_query(request.query_string()).ok();
    // `?intent=transcription` without a model: a transcription session (protocols-more.md §12.1).
    if query
        .as_ref()
        .is_some_and(|q| q.get("intent").map(String::as_str) == Some("transcription"))
    {
        let expires_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| now.as_secs())
            .saturating_add(SESSION_LIFETIME_SECS);
        let socket = super::transcription::TranscriptionSocket {
            shared,
            expires_at,
            session: None,
        };
        return ws::WsResponseBuilder::new(socket, request, stream)
            .frame_size(super::transcription::MAX_FRAME_BYTES)
            .start();
    }
    let model = query
        .and_then(|query| query.get("model").cloned())
        .filter(|model| !model.is_empty());
    let Some(model) = model else {
        return Ok(refusal(
            StatusCode::BAD_REQUEST,
            "missing_required_parameter",
            "Missing required parameter: 'model'.",
        ));
    };
    let socket = RealtimeSocket {
        shared,
        model,
        beta: request.headers().contains_key("openai-beta"),
        connection: None,
    };
    ws::WsResponseBuilder::new(socket, request, stream)
        .frame_size(MAX_FRAME_BYTES)
        .start()
}

/// One emulated Realtime socket.
struct RealtimeSocket {
    shared: web::Data<Shared>,
    /// The `model` query parameter.
    model: String,
    /// The client sent `OpenAI-Beta`: refused like the real GA-only server does.
    beta: bool,
    /// Opened when the actor starts.
    connection: Option<Connection>,
}

impl RealtimeSocket {
    fn apply(&mut self, step: Step, ctx: &mut ws::WebsocketContext<Self>) {
        for event in step.events {
            ctx.text(event);
        }
        if let Some(wake) = step.wake {
            ctx.run_later(wake.after, move |socket, ctx| {
                if let Some(connection) = &mut socket.connection {
                    let step = connection.on_wake(wake.ticket);
                    socket.apply(step, ctx);
                }
            });
        }
    }

    /// Refuses the legacy interface as OpenAI now does: an `error` event, then close 4000.
    fn refuse_beta(ctx: &mut ws::WebsocketContext<Self>) {
        let error = json!({
            "type": "error",
            "event_id": "event_beta",
            "error": {
                "type": "invalid_request_error",
                "code": "beta_api_shape_disabled",
                "message": "The Realtime Beta API is no longer supported. Please use \
                            /v1/realtime for the GA API.",
                "param": null,
                "event_id": null,
            },
        });
        ctx.text(error.to_string());
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(4000),
            description: Some("beta_api_shape_disabled".to_owned()),
        }));
        ctx.stop();
    }
}

impl Actor for RealtimeSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let shared = &self.shared;
        let mut number = 0;
        shared.stats.update(|stats| {
            stats.connections += 1;
            number = stats.connections;
        });
        if self.beta {
            Self::refuse_beta(ctx);
            return;
        }
        let expires_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| now.as_secs())
            .saturating_add(SESSION_LIFETIME_SECS);
        let (connection, step) = Connection::open(Settings {
            number,
            model: std::mem::take(&mut self.model),
            expires_at,
            latency: shared.latency,
            pace: shared.pace,
            script: shared.script.clone(),
            stats: shared.stats.clone(),
            clock: crate::sim::onwire::now_us,
        });
        let drop_after = shared
            .drop_after
            .filter(|_| shared.drop_limit.is_none_or(|limit| number <= limit));
        if let Some(after) = drop_after {
            ctx.run_later(after, |_, ctx| {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Error,
                    description: Some("mock-openai: drop_after_ms elapsed".to_owned()),
                }));
                ctx.stop();
            });
        }
        self.connection = Some(connection);
        self.apply(step, ctx);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for RealtimeSocket {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        let step = match message {
            Ok(ws::Message::Text(text)) => connection.on_text(&text),
            Ok(ws::Message::Binary(_)) => connection.on_binary(),
            Ok(ws::Message::Ping(payload)) => {
                ctx.pong(&payload);
                return;
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
                return;
            }
            Ok(ws::Message::Pong(_) | ws::Message::Continuation(_) | ws::Message::Nop) => return,
            Err(error) => {
                tracing::debug!(%error, "mock-openai: realtime socket protocol error");
                ctx.stop();
                return;
            }
        };
        self.apply(step, ctx);
    }
}
