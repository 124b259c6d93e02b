//! One HTTP client per thread for everything the engine calls out to: OpenAI (Realtime
//! sockets, Chat Completions), the Twilio REST API and HTTP tools.
//!
//! An `awc::Client` is `!Send`, and building one builds its TLS configuration — the whole
//! root certificate store. Sharing one per arbiter thread keeps that cost per thread rather
//! than per call or per conversation; requests set their own deadlines.

use std::time::Duration;

/// TCP and TLS connection set-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's default deadline when it sets none of its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

thread_local! {
    // `limit(0)`: no cap on simultaneous connections. awc's default (100) counts open
    // WebSockets too, so a shared client would hold the 101st call's model socket back.
    static CLIENT: awc::Client = awc::Client::builder()
        .connector(awc::Connector::new().timeout(CONNECT_TIMEOUT).limit(0))
        .timeout(DEFAULT_TIMEOUT)
        .finish();
}

/// This thread's client (a cheap handle to the shared one).
pub fn client() -> awc::Client {
    CLIENT.with(awc::Client::clone)
}
