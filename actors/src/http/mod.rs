//! Every outbound connection of the process: one HTTP client per thread for what the engine
//! calls out to (OpenAI Realtime sockets and Chat Completions, the Twilio REST API, HTTP
//! tools), and the connector the product's other clients build on (the simulated Twilio, the
//! load generator, `switchboard chat`).
//!
//! * **TLS** ([`trust`]): one rustls client configuration per process, on the platform trust
//!   store (honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`), with the compiled-in webpki roots as
//!   the fallback only where no store exists.
//! * **ALPN**: WebSockets offer `http/1.1` only. awc cannot run a WebSocket over an HTTP/2
//!   connection (`TunnelNotSupported`, actix/actix-web#1069), and a TLS edge that is offered
//!   `h2` picks it — OpenAI's does. Plain requests offer `h2, http/1.1` and may use HTTP/2.
//!   The two kinds therefore use two clients with separate connection pools.
//! * **TCP** ([`nodelay`]): every socket sets `TCP_NODELAY`; with Nagle on, a 20 ms audio
//!   frame written behind an unacknowledged one waits for the peer's delayed ACK.
//!
//! An `awc::Client` is `!Send`, so each arbiter thread keeps its own pair; they share the one
//! TLS configuration. Requests set their own deadlines.

mod nodelay;
mod trust;

use std::time::Duration;

pub use nodelay::NoDelayConnector;
pub use trust::{client_config, roots, shared_config, Alpn, LoadedRoots, RootSource};

/// TCP and TLS connection set-up, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's default deadline when it sets none of its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

thread_local! {
    static CLIENT: awc::Client = engine_client(Alpn::H2AndHttp1);
    static WS_CLIENT: awc::Client = engine_client(Alpn::Http1Only);
}

/// `limit(0)`: no cap on simultaneous connections. awc's default (100) counts open
/// WebSockets too, so a shared client would hold the 101st call's model socket back.
fn engine_client(alpn: Alpn) -> awc::Client {
    awc::Client::builder()
        .connector(
            connector(alpn)
                .timeout(CONNECT_TIMEOUT)
                .handshake_timeout(CONNECT_TIMEOUT)
                .limit(0),
        )
        .timeout(DEFAULT_TIMEOUT)
        .finish()
}

/// This thread's client for HTTP requests (HTTPS may negotiate HTTP/2).
pub fn client() -> awc::Client {
    CLIENT.with(awc::Client::clone)
}

/// This thread's client for WebSockets: over TLS it offers only `http/1.1`.
pub fn ws_client() -> awc::Client {
    WS_CLIENT.with(awc::Client::clone)
}

/// A WebSocket request to an OpenAI Realtime endpoint (a conversation or a transcription
/// session): this thread's WebSocket client, frames up to `max_frame` bytes, and the API
/// key as bearer when one is set.
pub fn model_socket(
    url: &str,
    api_key: Option<&crate::config::Secret>,
    max_frame: usize,
) -> awc::ws::WebsocketsRequest {
    let request = ws_client().ws(url).max_frame_size(max_frame);
    match api_key {
        Some(key) => request.bearer_auth(key.expose()),
        None => request,
    }
}

/// An awc connector with the process's TLS configuration for `alpn` and `TCP_NODELAY` on
/// every socket, for clients that pick their own limits and timeouts. Use
/// [`Alpn::Http1Only`] for any client that opens WebSockets.
pub fn connector(alpn: Alpn) -> awc::Connector<NoDelayConnector> {
    let connector = awc::Connector::new().connector(NoDelayConnector::default());
    match shared_config(alpn) {
        Some(config) => connector.rustls_0_23(config),
        // Already logged; `https://` and `wss://` then fail with "SSL is not supported".
        None => connector,
    }
}

/// Loads the trust store now, off the caller's thread, so the first call does not wait for
/// it (reading the platform store costs a few milliseconds).
pub fn prewarm() {
    let spawned = std::thread::Builder::new()
        .name("tls-roots".into())
        .spawn(|| {
            let _ = shared_config(Alpn::H2AndHttp1);
        });
    if let Err(err) = spawned {
        tracing::debug!(%err, "trust store: not preloaded");
    }
}
