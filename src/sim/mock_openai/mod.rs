//! `switchboard mock-openai`: an OpenAI emulator on loopback (SPEC §11.1).
//!
//! `POST /v1/chat/completions` ([`chat`]) answers with the offline `local` model, streamed
//! (SSE) or whole, and fails a deterministic share of requests with `429`/`500` when
//! `fail_rate` is set.
//!
//! It speaks the GA Realtime WebSocket protocol (`GET /v1/realtime?model=…`) closely enough
//! that the engine cannot tell it from the real service in the ways that matter for testing:
//! the same event names and shapes, the same validation errors, an energy VAD that turns
//! caller audio into `speech_started`/`speech_stopped`/`committed`, responses whose audio is
//! produced faster than real time, barge-in cancellation, truncation checks, and scripted
//! function calls. The end-to-end tests, the load generator and developers without API keys
//! all use it. `GET /mock/stats` returns [`MockStats`] as JSON.
//!
//! On-wire latency ([`crate::sim::onwire`]): in `audio/pcmu`, every audio delta carries a tag
//! with the socket's number, the delta's number and the moment it was written, and every
//! tagged caller frame in an `input_audio_buffer.append` is timed from its writer's stamp to
//! its arrival here; [`MockStats::caller_audio_on_wire`] holds those times, so
//! `switchboard loadtest --emulator URL` can read them from another process.
//!
//! * [`chat`]: Chat Completions, agent recognition and failure injection;
//! * [`socket`]: the handshake, and the actor that owns each WebSocket, paces responses and
//!   injects faults;
//! * [`connection`]: the protocol state machine of one socket, pure and clock-free, with
//!   [`session`] (defaults, `session.update` validation and merging), [`items`] (conversation
//!   items) and [`rejection`] (`error` events worded like the real server's);
//! * [`vad`]: the energy VAD (its threshold mapping is documented there);
//! * [`voice`]: synthetic reply audio and the μ-law/PCM16 codecs;
//! * [`script`]: the `--script` format and the default replies.
//!
//! Deliberate limits: only `audio/pcmu` and `audio/pcm` (24 kHz) are accepted (`audio/pcma` is
//! refused with an error event), replies are always audio (with transcript), `semantic_vad`
//! is detected like `server_vad`, and `response.create` overrides are accepted but ignored.
//! With `drop_after_ms`, each realtime socket (or only the first `drop_limit` ones) is closed
//! with code 1011 (server error, which OpenAI's SDK treats as recoverable) that long after it
//! opened.
//!
//! With [`MockTls`] (`--tls-cert/--tls-key`) it serves HTTPS and WSS itself, offering ALPN
//! `h2` before `http/1.1` as OpenAI's edge does, so a client that offers `h2` on its
//! WebSocket gets an HTTP/2 connection and fails there as it would in production. Every
//! socket sets `TCP_NODELAY`. [`MockStats::transports`] counts the requests of each
//! endpoint by HTTP version and negotiated ALPN.

mod chat;
mod connection;
mod items;
mod rejection;
mod script;
mod session;
mod socket;
#[cfg(test)]
mod tests;
mod transcription;
mod vad;
mod voice;

use std::any::Any;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::dev::{Extensions, ServerHandle, Service as _};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actors::domain::agents::AgentsConfig;
use actors::domain::local_model::{LocalModel, LocalModelError};
use actors::metrics::{LatencyRecorder, LatencySnapshot};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use script::{Script, ScriptedCall, ScriptedFailure, Turn};

/// Errors of the emulator's set-up (the protocol's own errors are `error` events).
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot read script {path}: {source}")]
    ReadScript {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "invalid script: {0} (expected a JSON list of {{\"say\": text}} or \
         {{\"call\": {{\"name\": …, \"arguments\": {{…}}}}}} turns)"
    )]
    ParseScript(#[source] serde_json::Error),
    #[error("cannot read {path}: {source}")]
    ReadAgents {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {message}")]
    InvalidAgents { path: PathBuf, message: String },
    #[error(transparent)]
    LocalModel(#[from] LocalModelError),
    #[error("cannot read {path}: {source}")]
    ReadPem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("unusable TLS certificate or key: {0}")]
    Tls(#[from] rustls::Error),
}

/// The certificate chain and private key (PEM files) to serve HTTPS/WSS with.
#[derive(Clone, Debug)]
pub struct MockTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl MockTls {
    /// The server configuration; actix-web adds ALPN `h2` then `http/1.1` to it.
    fn server_config(&self) -> Result<rustls::ServerConfig, MockError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let pem_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MockError::ReadPem { path, source }
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(pem_error(&self.cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error(&self.cert))?;
        if certs.is_empty() {
            return Err(MockError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(pem_error(&self.key))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?)
    }
}

/// How the emulator behaves; the `mock-openai` flags map one to one.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Replies to give, in order, before falling back to the defaults.
    pub script: Option<Script>,
    /// Added before the first event of every response.
    pub latency_ms: u64,
    /// Close realtime sockets this long after they open (code 1011).
    pub drop_after_ms: Option<u64>,
    /// With `drop_after_ms`, only the first this-many sockets are dropped (`None`: all), so a
    /// test can check that the engine's reconnection then holds.
    pub drop_limit: Option<u64>,
    /// Share of chat requests answered with 429/500, alternately and deterministically.
    pub fail_rate: f64,
    /// Speed of reply audio relative to real time; 0 (or less) sends it all at once.
    pub pace: f64,
    /// The agents the chat endpoint's local model knows; `None` reads the shipped
    /// `config/agents.toml`.
    pub agents: Option<Arc<AgentsConfig>>,
    /// Serve HTTPS/WSS with this certificate instead of plain HTTP/WS.
    pub tls: Option<MockTls>,
    /// HTTP worker threads (at least 1).
    pub workers: usize,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            script: None,
            latency_ms: 0,
            drop_after_ms: None,
            drop_limit: None,
            fail_rate: 0.0,
            pace: 4.0,
            agents: None,
            tls: None,
            workers: 2,
        }
    }
}

/// Counters and records shared by every socket, for tests and `GET /mock/stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MockStats {
    /// Realtime sockets accepted.
    pub connections: u64,
    /// `session.update` events accepted.
    pub session_updates: u64,
    /// `input_audio_buffer.append` events received (valid or not).
    pub appends: u64,
    /// Caller audio decoded, in ms.
    pub audio_ms_received: u64,
    pub responses_started: u64,
    pub responses_completed: u64,
    pub responses_cancelled: u64,
    /// Responses ended with `status: "failed"` (scripted `fail` turns).
    pub responses_failed: u64,
    /// Every `conversation.item.truncate`, accepted or refused.
    pub truncations: Vec<TruncateRecord>,
    /// Function calls the assistant made.
    pub function_calls: u64,
    /// `function_call_output` items the client sent.
    pub function_outputs: u64,
    /// Message items the client created (e.g. text history replayed after a reconnect).
    pub client_items_created: u64,
    /// `error` events sent.
    pub errors_sent: u64,
    /// The last effective session (as in `session.created`/`session.updated`), so tests can
    /// check instructions, voice, tools and formats.
    pub last_session: Option<Value>,
    /// Chat completion requests accepted (authorized and well-formed), failed ones included.
    pub chat_requests: u64,
    /// Chat requests answered with an injected `429` or `500`.
    pub chat_failures_injected: u64,
    /// The messages of the last chat request, so tests can check what the model was told
    /// (history, memory of earlier calls).
    pub last_chat_messages: Option<Value>,
    /// The names of the tools the last chat request offered.
    pub last_chat_tools: Vec<String>,
    /// Requests per endpoint, HTTP version and transport, keyed like
    /// `"realtime HTTP/1.1 tls alpn=http/1.1"` or `"chat HTTP/2.0 tls alpn=h2"` (`tcp` when
    /// plain), so tests can check what a client negotiated.
    #[serde(default)]
    pub transports: BTreeMap<String, u64>,
    /// Audio deltas sent with an on-wire tag (`audio/pcmu` output only).
    #[serde(default)]
    pub deltas_tagged: u64,
    /// Caller → model on-wire latency: for every tagged caller frame received in an
    /// `input_audio_buffer.append` (`audio/pcmu` input only), its writer's stamp → its read
    /// here.
    #[serde(default)]
    pub caller_audio_on_wire: LatencySnapshot,
    /// Transcription sessions opened (`?intent=transcription`, issue 9's listen-in).
    #[serde(default)]
    pub transcription_sessions: u64,
}

/// How one accepted connection is carried, recorded by `on_connect` for its requests.
#[derive(Clone, Debug)]
struct Transport(String);

impl Transport {
    fn of(connection: &dyn Any) -> Option<Transport> {
        use actix_tls::accept::rustls_0_23::TlsStream;
        use actix_web::rt::net::TcpStream;
        if let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() {
            let alpn = match tls.get_ref().1.alpn_protocol() {
                Some(protocol) => format!("alpn={}", String::from_utf8_lossy(protocol)),
                None => "no-alpn".to_string(),
            };
            return Some(Transport(format!("tls {alpn}")));
        }
        connection
            .downcast_ref::<TcpStream>()
            .map(|_| Transport("tcp".to_string()))
    }
}

/// The endpoints whose transports are counted (a fixed set, so the map stays small).
fn endpoint_name(path: &str) -> Option<&'static str> {
    match path {
        "/v1/realtime" => Some("realtime"),
        "/v1/chat/completions" => Some("chat"),
        "/mock/stats" => Some("stats"),
        _ => None,
    }
}

/// One `conversation.item.truncate` as the emulator judged it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruncateRecord {
    pub item_id: String,
    pub audio_end_ms: u64,
    /// Audio the emulator had produced for the item (0 for an unknown item).
    pub item_audio_ms: u64,
    pub accepted: bool,
}

/// [`MockStats`] behind a lock, cloned into every socket; the on-wire histogram beside it is
/// lock-free.
#[derive(Clone, Default)]
struct SharedStats {
    stats: Arc<Mutex<MockStats>>,
    caller_audio_on_wire: Arc<LatencyRecorder>,
}

impl std::fmt::Debug for SharedStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedStats")
            .field(&self.snapshot())
            .finish()
    }
}

impl SharedStats {
    fn update(&self, change: impl FnOnce(&mut MockStats)) {
        change(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn caller_audio_on_wire(&self, latency: Duration) {
        self.caller_audio_on_wire.record(latency);
    }

    fn snapshot(&self) -> MockStats {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        stats.caller_audio_on_wire = self.caller_audio_on_wire.snapshot();
        stats
    }
}

/// What every connection shares: the options as sockets use them, and the counters.
struct Shared {
    latency: Duration,
    pace: f64,
    drop_after: Option<Duration>,
    drop_limit: Option<u64>,
    script: Option<Arc<Script>>,
    stats: SharedStats,
    fail_rate: f64,
    agents: Arc<AgentsConfig>,
    local_model: LocalModel,
}

/// A running emulator.
pub struct MockServer {
    pub addr: SocketAddr,
    /// Serving HTTPS/WSS.
    pub tls: bool,
    handle: ServerHandle,
    stats: SharedStats,
}

impl MockServer {
    /// Binds `bind` (e.g. `"127.0.0.1:0"`), starts the server on the current actix system and
    /// returns at once. Unusable agents (see [`MockOptions::agents`]) are an
    /// `InvalidData` error.
    pub fn start(bind: &str, options: MockOptions) -> io::Result<MockServer> {
        let MockOptions {
            script,
            latency_ms,
            drop_after_ms,
            drop_limit,
            fail_rate,
            pace,
            agents,
            tls,
            workers,
        } = options;
        let tls_config = match &tls {
            Some(files) => Some(files.server_config().map_err(invalid_data)?),
            None => None,
        };
        let agents = match agents {
            Some(agents) => agents,
            None => Arc::new(shipped_agents().map_err(invalid_data)?),
        };
        let local_model =
            LocalModel::new(agents.clone()).map_err(|err| invalid_data(MockError::from(err)))?;
        let stats = SharedStats::default();
        let shared = web::Data::new(Shared {
            latency: Duration::from_millis(latency_ms),
            pace,
            drop_after: drop_after_ms.map(Duration::from_millis),
            drop_limit,
            script: script.map(Arc::new),
            stats: stats.clone(),
            fail_rate,
            agents,
            local_model,
        });
        let server = HttpServer::new(move || {
            let shared_stats = shared.stats.clone();
            App::new()
                .wrap_fn(move |request, service| {
                    if let Some(endpoint) = endpoint_name(request.path()) {
                        let transport = request
                            .conn_data::<Transport>()
                            .map_or("unknown", |t| t.0.as_str());
                        let key = format!("{endpoint} {:?} {transport}", request.version());
                        shared_stats.update(|s| *s.transports.entry(key).or_default() += 1);
                    }
                    service.call(request)
                })
                .app_data(shared.clone())
                .route("/v1/realtime", web::get().to(realtime))
                .service(
                    web::resource("/v1/chat/completions")
                        .app_data(web::PayloadConfig::new(chat::MAX_REQUEST_BYTES))
                        .route(web::post().to(chat::completions)),
                )
                .route("/mock/stats", web::get().to(stats_json))
        })
        // Two by default; one carries a thousand paced sockets on the 2-core target machine
        // too, with less CPU (BENCHMARKS, "The wire work").
        .workers(workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        // Every accepted socket, plain or TLS: no Nagle delay on audio deltas.
        .tcp_nodelay(true)
        .on_connect(|connection, extensions: &mut Extensions| {
            if let Some(transport) = Transport::of(connection) {
                extensions.insert(transport);
            }
        });
        let server = match tls_config {
            Some(config) => server.bind_rustls_0_23(bind, config)?,
            None => server.bind(bind)?,
        };
        let addr = server.addrs().first().copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{bind} bound nothing"),
            )
        })?;
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(MockServer {
            addr,
            tls: tls.is_some(),
            handle,
            stats,
        })
    }

    /// The value for `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/v1", self.addr)
    }

    pub fn stats(&self) -> MockStats {
        self.stats.snapshot()
    }

    /// Stops accepting, closes every socket and waits for the workers to finish.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// The built-in `config/agents.toml`, as the server itself loads it by default.
fn shipped_agents() -> Result<AgentsConfig, MockError> {
    let path = PathBuf::from("built-in agents.toml");
    let agents: AgentsConfig =
        toml::from_str(crate::defaults::AGENTS_TOML).map_err(|err| MockError::InvalidAgents {
            path: path.clone(),
            message: err.to_string().trim().replace('\n', " "),
        })?;
    agents.validate().map_err(|err| MockError::InvalidAgents {
        path,
        message: err.to_string(),
    })?;
    Ok(agents)
}

fn invalid_data(err: MockError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

async fn stats_json(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats.snapshot())
}

async fn realtime(
    request: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Shared>,
) -> actix_web::Result<HttpResponse> {
    socket::accept(&request, stream, shared)
}
