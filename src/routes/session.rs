//! Signing in to the dashboard with the admin token (SPEC §9, §15).
//!
//! `POST /actors/login` with `{"token": "…"}` sets a session cookie; `POST /actors/logout`
//! ends it. The cookie never holds the token: it is `v1.<expires>.<nonce>.<mac>`, an
//! HMAC-SHA256 over the rest under a key derived from the admin token — so changing the
//! token signs everyone out, and every node of a cluster that shares the token accepts it.
//! It is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends
//! it) and `Secure` when `PUBLIC_URL` is https, and expires after [`LIFETIME`]. Signing
//! out revokes its nonce in this process until it would have expired anyway.
//!
//! Scripts keep using `Authorization: Bearer $SWITCHBOARD_ADMIN_TOKEN`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::admin::json_only;
use super::RouteError;
use actors::Engine;

/// The cookie's name.
pub const COOKIE: &str = "switchboard_session";
/// How long a sign-in lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Revoked sessions remembered at most (the oldest are forgotten first).
const MAX_REVOKED: usize = 10_000;

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;

type HmacSha256 = Hmac<Sha256>;

/// Nonces of signed-out sessions, with when they expire.
static REVOKED: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Default::default);

fn now_secs() -> u64 {
    actors::clock::wall_clock_ms() / 1000
}

/// The session key: the admin token never signs anything itself.
fn mac_for(token: &str) -> Option<HmacSha256> {
    let mut derive = HmacSha256::new_from_slice(token.as_bytes()).ok()?;
    derive.update(b"switchboard dashboard session v1");
    let key = derive.finalize().into_bytes();
    HmacSha256::new_from_slice(&key).ok()
}

/// A new session value that expires `LIFETIME` after `now`.
pub fn issue(token: &str, now: u64) -> Option<String> {
    let nonce: [u8; 16] = rand::random();
    let body = format!("v1.{}.{}", now + LIFETIME.as_secs(), B64.encode(nonce));
    let mut mac = mac_for(token)?;
    mac.update(body.as_bytes());
    Some(format!(
        "{body}.{}",
        B64.encode(mac.finalize().into_bytes())
    ))
}

/// The nonce of a valid, unexpired, unrevoked session value signed for `token`.
pub fn verify(token: &str, value: &str, now: u64) -> Option<String> {
    let (body, signature) = value.rsplit_once('.')?;
    let signature = B64.decode(signature).ok()?;
    let mut mac = mac_for(token)?;
    mac.update(body.as_bytes());
    mac.verify_slice(&signature).ok()?;
    let mut parts = body.split('.');
    let (Some("v1"), Some(expires), Some(nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let expires: u64 = expires.parse().ok()?;
    if expires <= now {
        return None;
    }
    let revoked = REVOKED.lock().unwrap_or_else(PoisonError::into_inner);
    (!revoked.contains_key(nonce)).then(|| nonce.to_owned())
}

fn revoke(nonce: String, now: u64) {
    let mut revoked = REVOKED.lock().unwrap_or_else(PoisonError::into_inner);
    revoked.retain(|_, expires| *expires > now);
    if revoked.len() >= MAX_REVOKED {
        let oldest = revoked
            .iter()
            .min_by_key(|(_, expires)| **expires)
            .map(|(nonce, _)| nonce.clone());
        if let Some(oldest) = oldest {
            revoked.remove(&oldest);
        }
    }
    revoked.insert(nonce, now + LIFETIME.as_secs());
}

/// Whether `req` carries a valid session cookie for `token`.
pub fn has_session(token: &str, req: &HttpRequest) -> bool {
    req.cookie(COOKIE)
        .is_some_and(|cookie| verify(token, cookie.value(), now_secs()).is_some())
}

fn secure(engine: &Engine) -> bool {
    engine
        .shared()
        .config
        .server
        .public_url
        .starts_with("https://")
}

fn cookie(engine: &Engine, value: String, max_age: Duration) -> Cookie<'static> {
    let mut cookie = Cookie::build(COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(engine))
        .finish();
    cookie.set_max_age(
        actix_web::cookie::time::Duration::try_from(max_age)
            .unwrap_or(actix_web::cookie::time::Duration::ZERO),
    );
    cookie
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /actors/login` `{"token": "…"}`: sets the session cookie (`200`), or `403`.
/// Only JSON is taken, so no other site's form can sign a browser in.
pub async fn login(
    engine: web::Data<Engine>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, RouteError> {
    json_only(&req)?;
    let Some(token) = &engine.shared().config.admin.token else {
        return Ok(HttpResponse::Conflict()
            .content_type("text/plain; charset=utf-8")
            .body(
                "no SWITCHBOARD_ADMIN_TOKEN is set: the dashboard answers clients on this \
                 machine without signing in\n",
            ));
    };
    let login: Login = serde_json::from_slice(&body)
        .map_err(|_| RouteError::BadRequest("expected {\"token\": \"…\"}".into()))?;
    if !bool::from(login.token.as_bytes().ct_eq(token.expose().as_bytes())) {
        tracing::warn!("dashboard sign-in with a wrong token");
        return Err(RouteError::Forbidden("wrong admin token"));
    }
    let value = issue(token.expose(), now_secs())
        .ok_or_else(|| RouteError::Unavailable("session signing failed".into()))?;
    tracing::info!("dashboard sign-in");
    Ok(HttpResponse::Ok()
        .cookie(cookie(&engine, value, LIFETIME))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "ok": true, "expires_in_secs": LIFETIME.as_secs() })))
}

/// `POST /actors/logout`: the session ends here and now (its cookie is cleared and
/// refused from now on).
pub async fn logout(engine: web::Data<Engine>, req: HttpRequest) -> HttpResponse {
    if let (Some(token), Some(cookie)) = (&engine.shared().config.admin.token, req.cookie(COOKIE)) {
        if let Some(nonce) = verify(token.expose(), cookie.value(), now_secs()) {
            revoke(nonce, now_secs());
        }
    }
    HttpResponse::Ok()
        .cookie(self::cookie(&engine, String::new(), Duration::ZERO))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "ok": true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_for_its_token_until_it_expires() {
        let value = issue("let-me-in", 1_000).expect("issued");
        assert!(!value.contains("let-me-in"));
        assert!(verify("let-me-in", &value, 1_000).is_some());
        assert!(verify("let-me-in", &value, 1_000 + LIFETIME.as_secs() - 1).is_some());
        assert!(verify("let-me-in", &value, 1_000 + LIFETIME.as_secs()).is_none());
        // Another token's key, or any change, breaks it.
        assert!(verify("another-token", &value, 1_000).is_none());
        let (body, mac) = value.rsplit_once('.').expect("signed");
        let later = body.replacen(&format!("{}", 1_000 + LIFETIME.as_secs()), "99999999999", 1);
        assert!(verify("let-me-in", &format!("{later}.{mac}"), 1_000).is_none());
        assert!(verify("let-me-in", "v1.99999999999.AAAA.AAAA", 1_000).is_none());
        assert!(verify("let-me-in", "", 1_000).is_none());
    }

    #[test]
    fn a_signed_out_session_is_refused() {
        let value = issue("let-me-in", 2_000).expect("issued");
        let nonce = verify("let-me-in", &value, 2_000).expect("valid");
        revoke(nonce, 2_000);
        assert!(verify("let-me-in", &value, 2_001).is_none());
        let other = issue("let-me-in", 2_000).expect("issued");
        assert!(verify("let-me-in", &other, 2_001).is_some());
    }
}
