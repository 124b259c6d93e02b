//! Errors at the HTTP edge, each mapped to the status SPEC §12 gives it, with a one-line
//! reason in the body and nothing secret in it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Missing or invalid `X-Twilio-Signature`: nothing was processed.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request is not what the route takes (missing form field, bad body).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The engine could not do its part (store unwritable, engine stopped).
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl ResponseError for RouteError {
    fn status_code(&self) -> StatusCode {
        match self {
            RouteError::Forbidden(_) => StatusCode::FORBIDDEN,
            RouteError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RouteError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .content_type("text/plain; charset=utf-8")
            .body(format!("{self}\n"))
    }
}

impl From<actors::protocol::twilio::webhook::WebhookError> for RouteError {
    fn from(err: actors::protocol::twilio::webhook::WebhookError) -> Self {
        RouteError::BadRequest(err.to_string())
    }
}
