//! Who sent a request, as far as the server can tell: its TCP peer, and — behind a tunnel
//! or reverse proxy on the same machine (`ngrok http 8080`, cloudflared, nginx, Caddy) —
//! what the proxy says about the client.
//!
//! Through such a proxy every request arrives from loopback, so a loopback peer alone
//! proves nothing about where the client is. The proxy gives itself away:
//! * ngrok adds `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` and keeps the
//!   public `Host`; cloudflared adds `X-Forwarded-For`, `X-Forwarded-Proto` and
//!   `Cf-Connecting-IP` and keeps the `Host`; Caddy and Traefik add `X-Forwarded-*`; nginx
//!   adds what `proxy_set_header` tells it (commonly `X-Real-IP` and `X-Forwarded-For`).
//! * Any of those headers, or a `Host` that is not a loopback name, means the request came
//!   through something that was reached from elsewhere ([`is_direct_local`]).
//!
//! A proxy that adds no header and rewrites `Host` to `127.0.0.1` (nginx with no
//! `proxy_set_header` at all) cannot be told from a local client: set
//! `SWITCHBOARD_ADMIN_TOKEN` whenever the server is reachable from outside.
//!
//! The client's address ([`client_ip`]) is the peer, or from a loopback peer the *last*
//! `X-Forwarded-For` entry: ngrok, cloudflared and nginx's `$proxy_add_x_forwarded_for` all
//! append the address they saw to whatever the client sent, so only the last entry is not
//! the client's own choice.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderName};
use actix_web::HttpRequest;

/// Headers by which a proxy says it forwarded a request, besides every `X-Forwarded-*`.
const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "via",
    "x-real-ip",
    "cf-connecting-ip",
    "true-client-ip",
    "x-client-ip",
    "fastly-client-ip",
    "cdn-loop",
];

fn is_forwarding_header(name: &HeaderName) -> bool {
    // Header names are stored lower-case.
    let name = name.as_str();
    name.starts_with("x-forwarded-") || FORWARDING_HEADERS.contains(&name)
}

/// The client's IP address: the peer, or behind a proxy on this machine the address the
/// proxy saw (the last `X-Forwarded-For` entry). Shared by every per-IP limit.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if peer.is_loopback() {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .last()
            .and_then(|v| v.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok());
        if let Some(ip) = forwarded {
            return Some(ip);
        }
    }
    Some(peer)
}

/// Whether the request comes straight from this machine: a loopback peer, no forwarding
/// header, and a loopback `Host` (or none). Anything else may have come from the internet
/// through a tunnel or proxy.
pub fn is_direct_local(req: &HttpRequest) -> bool {
    let loopback_peer = req.peer_addr().is_some_and(|peer| peer.ip().is_loopback());
    let forwarded = req.headers().keys().any(is_forwarding_header);
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
    let local_host = host.as_deref().is_none_or(is_loopback_host);
    loopback_peer && !forwarded && local_host
}

/// `localhost`, `*.localhost` (RFC 6761), or a loopback address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn from(peer: &str) -> TestRequest {
        TestRequest::default().peer_addr(peer.parse().expect("socket address"))
    }

    #[test]
    fn a_loopback_peer_is_local_only_without_proxy_traces() {
        let local = from("127.0.0.1:50000").insert_header((header::HOST, "127.0.0.1:8080"));
        assert!(is_direct_local(&local.to_http_request()));
        assert!(is_direct_local(
            &from("[::1]:50000")
                .insert_header((header::HOST, "localhost:8080"))
                .to_http_request()
        ));
        for (name, value) in [
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "abc.ngrok-free.app"),
            ("Forwarded", "for=203.0.113.7;proto=https"),
            ("X-Real-IP", "203.0.113.7"),
            ("Cf-Connecting-IP", "203.0.113.7"),
            ("Via", "1.1 proxy"),
        ] {
            let proxied = from("127.0.0.1:50000")
                .insert_header((header::HOST, "127.0.0.1:8080"))
                .insert_header((name, value));
            assert!(!is_direct_local(&proxied.to_http_request()), "{name}");
        }
        // A tunnel that strips every header still shows the public name it was reached at.
        let public_host = from("127.0.0.1:50000").insert_header((header::HOST, "abc.ngrok.app"));
        assert!(!is_direct_local(&public_host.to_http_request()));
        // Not loopback at all.
        let remote = from("198.51.100.4:50000").insert_header((header::HOST, "127.0.0.1:8080"));
        assert!(!is_direct_local(&remote.to_http_request()));
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "app.localhost",
            "127.0.0.1",
            "127.0.1.1:8080",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "abc.ngrok-free.app:443",
            "10.0.0.2:8080",
            "[2001:db8::1]:8080",
            "localhost.example.com",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_forwarded_client_is_the_last_address_a_loopback_proxy_added() {
        let ip = |req: TestRequest| client_ip(&req.to_http_request());
        let ngrok = from("127.0.0.1:50000")
            .insert_header(("X-Forwarded-For", "1.2.3.4, 203.0.113.7"))
            .to_http_request();
        assert_eq!(client_ip(&ngrok), "203.0.113.7".parse().ok());
        assert_eq!(
            ip(from("127.0.0.1:1").append_header(("X-Forwarded-For", "198.51.100.1"))),
            "198.51.100.1".parse().ok()
        );
        // Only a loopback peer is believed.
        assert_eq!(
            ip(from("198.51.100.4:1").insert_header(("X-Forwarded-For", "203.0.113.7"))),
            "198.51.100.4".parse().ok()
        );
        // Unreadable: the peer.
        assert_eq!(
            ip(from("127.0.0.1:1").insert_header(("X-Forwarded-For", "unknown"))),
            "127.0.0.1".parse().ok()
        );
    }
}
