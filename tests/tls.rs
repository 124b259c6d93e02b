//! Realtime and Chat through a TLS front, as against OpenAI's edge: the emulator serves
//! HTTPS/WSS with a certificate of a CA made at test time, offering ALPN `h2` before
//! `http/1.1`, and the engine trusts that CA only through `SSL_CERT_FILE`.
//!
//! The engine's root store is built once per process, so this file is its own test binary:
//! the variable is set before anything in it makes a client.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actors::http::{client_config, Alpn};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use support::sockets::{self, assert_nodelay, Ends};
use support::voice::{caller_turn_answered, greeting_played_out};
use support::{spawn_app, twiml_messages, AppOptions};
use switchboard::sim::mock_openai::{MockOptions, MockServer, MockStats, MockTls};
use switchboard::sim::twilio::LiveCall;

const FROM: &str = "+14155550101";
const TO: &str = "+18005550100";

/// A test CA and a server certificate it signed, for `127.0.0.1` and `localhost`.
struct TestPki {
    ca: CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
}

impl TestPki {
    fn mock_tls(&self) -> Option<MockTls> {
        Some(MockTls {
            cert: self.cert.clone(),
            key: self.key.clone(),
        })
    }

    /// A root store that trusts exactly this CA.
    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("the test CA is a root");
        Arc::new(roots)
    }
}

fn new_ca(name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert, Issuer::new(params, key))
}

/// This process's folder for the PEM files (one per process: a runner may run each test in
/// a process of its own). Folders of processes that have ended are removed.
fn pki_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("tls-pki-"));
            if pid.is_some_and(|pid| !PathBuf::from(format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    tmp.join(format!("tls-pki-{}", std::process::id()))
}

/// Makes the PKI once per process and points `SSL_CERT_FILE` at the CA — before any test
/// here starts an engine, as each calls this first.
fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let (ca, issuer) = new_ca("switchboard test CA");
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "mock-openai");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");

        let dir = pki_dir();
        std::fs::create_dir_all(&dir).expect("test PKI folder");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("PEM written");
            path
        };
        let ca_file = write("ca.pem", ca.pem());
        let pki = TestPki {
            ca: ca.der().clone(),
            cert: write("server.pem", cert.pem()),
            key: write("server-key.pem", key.serialize_pem()),
        };
        // Only this CA: SSL_CERT_FILE replaces the platform store (SSL_CERT_DIR would add to it).
        std::env::set_var("SSL_CERT_FILE", &ca_file);
        std::env::remove_var("SSL_CERT_DIR");
        pki
    })
}

/// The emulator's requests of `endpoint` (`realtime`, `chat`, `stats`) by transport.
fn transports<'a>(stats: &'a MockStats, endpoint: &str) -> Vec<(&'a str, u64)> {
    stats
        .transports
        .iter()
        .filter(|(key, _)| key.split(' ').next() == Some(endpoint))
        .map(|(key, n)| (key.as_str(), *n))
        .collect()
}

#[actix_web::test]
async fn a_call_and_an_sms_go_through_a_tls_front_that_offers_h2_first() {
    let pki = pki();
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            tls: pki.mock_tls(),
            ..MockOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    assert!(app.mock.base_url().starts_with("https://127.0.0.1:"));
    let openai = &app.engine.shared().config.openai;
    assert!(openai.realtime_url().starts_with("wss://127.0.0.1:"));
    assert!(openai.api_key.is_some(), "chat goes to the emulator");

    // A Realtime call: greeting, a caller turn answered.
    let call_sid = "CA0000000000000000000000000000t001";
    let mut call = LiveCall::dial(&app.base, None, call_sid, FROM, TO)
        .await
        .expect("the call connects");
    greeting_played_out(&mut call).await;
    // The greeting came from the model over WSS (not from the fallback prompt), on a socket
    // that negotiated HTTP/1.1 although the front offered h2 first.
    let stats = app.mock.stats();
    assert_eq!(
        transports(&stats, "realtime"),
        vec![("realtime HTTP/1.1 tls alpn=http/1.1", 1)],
        "{stats:#?}"
    );
    caller_turn_answered(&app, &mut call).await;

    // While the call is live: every socket at either end of the server and the emulator
    // (accepted by the server, opened by the simulated Twilio, opened by the engine over
    // TLS, accepted by the emulator over TLS) has TCP_NODELAY.
    let all = sockets::connected_tcp();
    let server = Ends::of(app.port(), &all);
    let model = Ends::of(app.mock.addr.port(), &all);
    assert_nodelay("accepted by the server", &server.accepted, 1);
    assert_nodelay("opened by the simulated Twilio", &server.opened, 1);
    assert_nodelay("opened by the engine to the model", &model.opened, 1);
    assert_nodelay("accepted by the emulator", &model.accepted, 1);

    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    assert!(!app
        .call_record(call_sid)
        .await
        .transcript
        .turns()
        .is_empty());

    // Every model socket of the call went the same way.
    let stats = app.mock.stats();
    let realtime = transports(&stats, "realtime");
    assert!(
        realtime.len() == 1 && realtime[0].0 == "realtime HTTP/1.1 tls alpn=http/1.1",
        "{stats:#?}"
    );

    // An SMS, answered by the chat model over HTTPS, which may (and here does) use h2.
    let (status, twiml) = app
        .post_twilio(
            "/twilio/messaging",
            &[
                ("MessageSid", "SM0000000000000000000000000000t001"),
                ("AccountSid", "AC00000000000000000000000000000042"),
                ("From", FROM),
                ("To", TO),
                ("Body", "Where is my order 1001?"),
                ("NumMedia", "0"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{twiml}");
    let reply = twiml_messages(&twiml).join(" ");
    assert!(!reply.trim().is_empty(), "{twiml}");
    let stats = app.mock.stats();
    assert!(stats.chat_requests >= 1, "{stats:#?}");
    assert_eq!(
        transports(&stats, "chat"),
        vec![("chat HTTP/2.0 tls alpn=h2", stats.chat_requests)],
        "{stats:#?}"
    );

    // The engine's trust store is exactly what SSL_CERT_FILE holds.
    assert_eq!(actors::http::roots().len(), 1);
}

/// A client on `roots` offering `alpn`, built like the engine's own.
fn client_on(roots: Arc<RootCertStore>, alpn: Alpn) -> awc::Client {
    let config = client_config(roots, alpn).expect("client config");
    awc::Client::builder()
        .connector(actors::http::connector(alpn).rustls_0_23(Arc::new(config)))
        .timeout(Duration::from_secs(10))
        .finish()
}

async fn start_front(pki: &TestPki) -> MockServer {
    MockServer::start(
        "127.0.0.1:0",
        MockOptions {
            tls: pki.mock_tls(),
            ..MockOptions::default()
        },
    )
    .expect("TLS emulator starts")
}

#[actix_web::test]
async fn the_front_is_refused_without_its_ca_and_prefers_h2() {
    let pki = pki();
    let front = start_front(pki).await;
    let stats_url = format!("https://{}/mock/stats", front.addr);

    // A client that trusts another CA is refused: the certificate check has teeth.
    let (other_ca, _) = new_ca("some other CA");
    let mut other_roots = RootCertStore::empty();
    other_roots.add(other_ca.der().clone()).expect("a root");
    let refused = client_on(Arc::new(other_roots), Alpn::H2AndHttp1)
        .get(&stats_url)
        .send()
        .await;
    let err = refused.expect_err("an untrusted certificate is refused");
    assert!(
        format!("{err:?}").contains("UnknownIssuer"),
        "refused for the issuer: {err:?}"
    );

    // The server picks by its own preference, h2 first: a client that prefers http/1.1
    // but also offers h2 gets h2.
    let mut prefers_http1 = client_config(pki.roots(), Alpn::H2AndHttp1).expect("config");
    prefers_http1.alpn_protocols = vec![b"http/1.1".to_vec(), b"h2".to_vec()];
    let client = awc::Client::builder()
        .connector(actors::http::connector(Alpn::H2AndHttp1).rustls_0_23(Arc::new(prefers_http1)))
        .finish();
    let response = client.get(&stats_url).send().await.expect("stats answer");
    assert!(response.status().is_success());

    // Why WebSockets offer http/1.1 only: offered h2, this front picks it, and awc cannot
    // open a WebSocket over HTTP/2.
    let realtime = format!("wss://{}/v1/realtime?model=gpt-realtime", front.addr);
    let over_h2 = client_on(pki.roots(), Alpn::H2AndHttp1)
        .ws(&realtime)
        .bearer_auth("sk-test")
        .connect()
        .await;
    let err = over_h2.err().expect("no WebSocket over HTTP/2");
    assert!(format!("{err:?}").contains("TunnelNotSupported"), "{err:?}");
    let (_response, _socket) = client_on(pki.roots(), Alpn::Http1Only)
        .ws(&realtime)
        .bearer_auth("sk-test")
        .connect()
        .await
        .expect("a WebSocket over HTTP/1.1");

    let stats = front.stats();
    assert_eq!(
        transports(&stats, "stats"),
        vec![("stats HTTP/2.0 tls alpn=h2", 1)],
        "{stats:#?}"
    );
    assert_eq!(
        transports(&stats, "realtime"),
        vec![("realtime HTTP/1.1 tls alpn=http/1.1", 1)],
        "the h2 attempt never reached the handler: {stats:#?}"
    );
    front.stop().await;
}
