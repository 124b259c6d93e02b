//! Builds the running application: opens the store, loads the catalog and prompts, starts
//! the engine and binds the HTTP server. Tests call [`Application::build`] on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::config::Settings;
use crate::routes;
use actors::domain::catalog::Catalog;
use actors::engine::{Shared, VoicePrompts};
use actors::store::SledStore;
use actors::Engine;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Store(#[from] actors::store::StoreError),
    #[error("{0}")]
    Catalog(#[from] actors::domain::catalog::CatalogError),
    #[error("{0}")]
    Prompt(#[from] actors::audio::AudioError),
    #[error("{0}")]
    LocalModel(#[from] actors::domain::local_model::LocalModelError),
    #[error("rate limits: {0}")]
    Limits(String),
    #[error("refusing to listen on {addr} without TWILIO_AUTH_TOKEN: webhooks would be unauthenticated. Set the token, bind a loopback address, or pass --insecure-public")]
    InsecurePublic { addr: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// The business data: from sled once it is there, else from `config/catalog/*.json` (each
/// file missing there is the built-in one), which is then written to sled (SPEC §6.2: loaded into sled at first start). Bookings already
/// live in sled; after the first start the store is the one source of truth.
async fn load_catalog(
    store: &dyn actors::store::Store,
    dir: &std::path::Path,
) -> Result<Catalog, StartupError> {
    if let Some(catalog) = store.catalog().await? {
        return Ok(catalog);
    }
    let catalog = crate::defaults::catalog(dir).map_err(|mut errors| errors.swap_remove(0))?;
    store.put_catalog(&catalog).await?;
    tracing::info!(dir = %dir.display(), "catalog loaded into the store");
    Ok(catalog)
}

/// The store: PostgreSQL in cluster mode (`DATABASE_URL`), with the notifications the nodes
/// send each other, else the embedded sled store in `storage.data_dir`.
async fn open_store(
    storage: &actors::config::StorageConfig,
    node_id: &str,
    threads: usize,
) -> Result<
    (
        Arc<dyn actors::store::Store>,
        Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
    ),
    StartupError,
> {
    match &storage.database_url {
        Some(url) => {
            // `server.threads` threads for the database runtime (0: its default).
            let store = actors::store::PgStore::open(url.expose(), None, threads)?;
            store.migrate().await?;
            let notifications = store.listen(node_id);
            Ok((Arc::new(store), Some(notifications)))
        }
        None => Ok((Arc::new(SledStore::open(&storage.data_dir)?), None)),
    }
}

/// This node's name: the configured one, else the host's name and the listening port.
fn node_id(configured: &str, port: u16) -> String {
    if !configured.trim().is_empty() {
        return configured.trim().to_owned();
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}:{port}")
}

pub struct Application {
    server: Server,
    port: u16,
    engine: Engine,
}

impl Application {
    /// Binds `settings.engine.server.bind` and builds the app (inside an actix system).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let addr = settings.engine.server.bind.clone();
        let listener = TcpListener::bind(&addr).map_err(|source| StartupError::Bind {
            addr: addr.clone(),
            source,
        })?;
        Self::build_on(settings, listener).await
    }

    /// Builds the app on an already bound listener (tests bind port 0).
    pub async fn build_on(
        settings: Settings,
        listener: TcpListener,
    ) -> Result<Application, StartupError> {
        let local = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.engine.server.bind.clone(),
            source,
        })?;
        let local_mode = settings.engine.twilio.auth_token.is_none();
        if local_mode && !local.ip().is_loopback() && !settings.engine.server.insecure_public {
            return Err(StartupError::InsecurePublic {
                addr: local.to_string(),
            });
        }
        if !local_mode && settings.engine.admin.token.is_none() {
            tracing::warn!(
                "SWITCHBOARD_ADMIN_TOKEN is not set: the dashboard (/actors) and /metrics answer \
                 only clients on this machine, never requests through a tunnel or proxy; set \
                 the token to reach them from elsewhere"
            );
        }
        let node_id = node_id(&settings.engine.cluster.node_id, local.port());
        if settings.engine.storage.database_url.is_some() {
            // Several nodes' series are told apart once scraped.
            actors::metrics::set_node(&node_id);
        }
        let threads = settings.engine.server.threads;
        let (store, notifications) =
            open_store(&settings.engine.storage, &node_id, threads).await?;
        let catalog = load_catalog(store.as_ref(), &settings.catalog_dir).await?;
        let prompts_dir = &settings.engine.voice.prompts_dir;
        let prompts = VoicePrompts {
            hold: crate::defaults::prompt(prompts_dir, "hold.wav")?,
            fallback: crate::defaults::prompt(prompts_dir, "fallback.wav")?,
            goodbye: crate::defaults::prompt(prompts_dir, "goodbye.wav")?,
        };
        let limits = actors::limits::Limits::with_redis(&settings.engine.limits)
            .map_err(StartupError::Limits)?;
        if let Some(shared) = limits.shared() {
            // A report for the operator only: the node starts either way, and limits alone
            // while Redis cannot be reached.
            match shared.ping().await {
                Ok(()) => tracing::info!("rate limits shared through Redis"),
                Err(err) => tracing::warn!(
                    error = %err,
                    "Redis unreachable at start: each node applies the rate limits alone until \
                     it answers"
                ),
            }
        }
        let engine = Engine::start(
            Shared {
                config: settings.engine,
                local_model: actors::domain::local_model::LocalModel::new(settings.agents.clone())?,
                agents: settings.agents,
                catalog,
                commits: actors::durability::GroupCommit::new(store.clone()),
                limits,
                store,
                prompts,
                census: Default::default(),
                health: Default::default(),
                node_id,
                started_at_ms: actors::clock::wall_clock_ms(),
                waiters: Default::default(),
            },
            notifications,
        );
        let max_form = engine.shared().config.limits.max_form_bytes;
        let data = web::Data::new(engine.clone());
        let workers = engine
            .shared()
            .config
            .server
            .threads_or(actors::config::per_core);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(routes::middleware::per_ip))
                .wrap(actix_web::middleware::from_fn(
                    routes::middleware::count_webhooks,
                ))
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(max_form))
                .route("/", web::get().to(routes::chat::page))
                .route("/chat", web::get().to(routes::chat::page))
                .route("/chat/ws", web::get().to(routes::chat::socket))
                .route("/health", web::get().to(routes::admin::health))
                // `/actors`, its sign-in and supervisor actions, `/metrics`.
                .configure(routes::admin::configure)
                .route("/twilio/voice", web::post().to(routes::voice::incoming))
                .route("/twilio/voice/next", web::post().to(routes::voice::next))
                .route(
                    "/twilio/voice/dial-result",
                    web::post().to(routes::voice::dial_result),
                )
                .route(
                    "/twilio/voice/voicemail-done",
                    web::post().to(routes::voice::voicemail_done),
                )
                .route(
                    "/twilio/voice/voicemail-transcription",
                    web::post().to(routes::voice::voicemail_transcription),
                )
                .route("/twilio/status", web::post().to(routes::voice::status))
                // Call patterns (voice.menu, voice.record).
                .route(
                    "/twilio/voice/menu",
                    web::post().to(routes::call_patterns::menu_choice),
                )
                .route(
                    "/twilio/recording",
                    web::post().to(routes::call_patterns::recording),
                )
                // Calls the engine places (issue 10).
                .route("/calls", web::post().to(routes::calls::place))
                .route(
                    "/twilio/voice/outbound",
                    web::post().to(routes::calls::answered),
                )
                .route("/twilio/voice/amd", web::post().to(routes::calls::amd))
                .route(
                    "/twilio/voice/whisper",
                    web::post().to(routes::calls::whisper),
                )
                .route(
                    "/prompts/{name}",
                    web::get().to(routes::call_patterns::prompt_audio),
                )
                .route("/twilio/media", web::get().to(routes::media::socket))
                .route("/twilio/relay", web::get().to(routes::relay::socket))
                .route(
                    "/twilio/transcription",
                    web::post().to(routes::voice::transcription),
                )
                .route(
                    "/twilio/messaging",
                    web::post().to(routes::messaging::incoming),
                )
                .route(
                    "/twilio/conversations",
                    web::post().to(routes::messaging::conversations),
                )
        })
        // `server.threads` HTTP workers, else one per core (actix-web's default).
        .workers(workers)
        // SPEC §13: no Nagle delay on any accepted socket (plain or TLS).
        .tcp_nodelay(true)
        // SIGTERM/SIGINT are the drain's (`crate::shutdown`): actix-web must not stop the
        // server, and cut live calls, on its own. Once the drain has let every call and turn
        // end, the server stops gracefully and a connection still open after this is closed.
        .disable_signals()
        .shutdown_timeout(crate::shutdown::STOP_TIMEOUT_SECS)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: local.to_string(),
            source,
        })?
        .run();
        Ok(Application {
            server,
            port: local.port(),
            engine,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
