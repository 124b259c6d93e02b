//! Edge middleware: the per-source-IP request limit (SPEC §8: `429` with `Retry-After`)
//! and the `switchboard_webhooks_total` count.
//!
//! The client's address is [`client_ip`]: behind a tunnel or reverse proxy on the same
//! machine, the address the proxy saw — trusted only from a loopback peer, so nobody else
//! can choose their own address.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};

use super::client::client_ip;
use ::actors::Engine;

pub async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let checked = req
        .app_data::<web::Data<Engine>>()
        .cloned()
        .zip(client_ip(req.request()));
    let wait = match checked {
        Some((engine, ip)) => engine.shared().limits.allow_ip(ip).await.err(),
        None => None,
    };
    if let Some(wait) = wait {
        ::actors::metrics::rate_limited("ip");
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let response = HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", seconds.max(1).to_string()))
            .content_type("text/plain; charset=utf-8")
            .body("too many requests from this address; retry later\n");
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Counts every Twilio-facing request by route pattern and status
/// (`switchboard_webhooks_total`), including the ones refused by signature or limits.
pub async fn count_webhooks(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let twilio = req.path().starts_with("/twilio/");
    let response = next.call(req).await?;
    if twilio {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        ::actors::metrics::webhook(&route, response.status().as_u16());
    }
    Ok(response)
}
