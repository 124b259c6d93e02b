//! The `switchboard` command: the server and the product's testing tools.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use switchboard::config;
use switchboard::shutdown;
use switchboard::sim::mock_openai::{MockOptions, MockServer, MockTls, Script};
use switchboard::startup::Application;
use switchboard::telemetry::{self, LogFormat};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answer Twilio phone calls, SMS, WhatsApp and web chat with OpenAI agents.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log as human-readable text or JSON lines.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default command).
    Serve(ServeArgs),
    /// Run an OpenAI emulator on loopback (Realtime WebSocket), for tests and development without keys.
    MockOpenai(MockArgs),
    /// Simulated Twilio voice load against a server (`--target local`: an emulator and a server in this process), with a latency and cost report.
    Loadtest(switchboard::sim::loadtest::LoadArgs),
    /// Talk to a running server from the terminal as a web-chat customer.
    Chat(ChatArgs),
    /// Have a running server call someone (POST /calls): the agent opens the call with the reason.
    Call(CallArgs),
    /// Check X-Twilio-Signature values: reads JSON lines {"url","params","body","auth_token","signature"} on stdin, prints true/false per line.
    VerifySignature,
    /// Apply the PostgreSQL schema (cluster mode) to DATABASE_URL and exit; `serve` also applies it at start.
    Migrate(MigrateArgs),
    /// Write the built-in configuration (switchboard.toml, agents.toml, catalog/, prompts/) into DIR for editing.
    Init(InitArgs),
    /// Print the configuration in force (secrets redacted), or every problem found in it with its file and key.
    CheckConfig(CheckArgs),
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// The database (postgres://…); defaults to DATABASE_URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

#[derive(clap::Args)]
struct InitArgs {
    /// Folder to write into; `switchboard serve` reads ./config by default.
    #[arg(default_value = config::DEFAULT_DIR)]
    dir: PathBuf,
    /// Replace files that exist.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Configuration file; its folder also holds agents.toml, catalog/ and prompts/
    /// [default: ./config/switchboard.toml if it exists, else the built-in configuration].
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Configuration file; its folder also holds agents.toml, catalog/ and prompts/, each
    /// overriding the built-in one [default: ./config/switchboard.toml if it exists, else the
    /// built-in configuration].
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the file and SWITCHBOARD_BIND).
    #[arg(long)]
    bind: Option<String>,
    /// Data directory for the sled store (overrides the file and SWITCHBOARD_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Allow a non-loopback address without TWILIO_AUTH_TOKEN (webhook signatures unchecked).
    #[arg(long)]
    insecure_public: bool,
}

#[derive(clap::Args)]
struct ChatArgs {
    /// The server's origin.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Continue an earlier chat as this web customer id (8–64 letters, digits, '-', '_').
    #[arg(long)]
    id: Option<String>,
}

#[derive(clap::Args)]
struct CallArgs {
    /// Whom to call, in E.164 (+14155550101).
    to: String,
    /// The agent that takes the call [default: the default agent].
    #[arg(long)]
    agent: Option<String>,
    /// Why we call: the agent opens with it, and a voicemail says it.
    #[arg(long)]
    reason: String,
    /// Detect answering machines and leave a voicemail after the beep.
    #[arg(long)]
    machine_detection: bool,
    /// The server's origin.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// The server's admin token (not needed on the server's own machine when it has none).
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Args)]
struct MockArgs {
    #[arg(long, default_value = "127.0.0.1:9100")]
    bind: String,
    /// JSON script of the model's turns (see the module docs of sim::mock_openai).
    #[arg(long)]
    script: Option<PathBuf>,
    /// Added before every response.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Close every realtime socket this long after it opens.
    #[arg(long)]
    drop_after_ms: Option<u64>,
    /// Fraction of chat requests answered 429/500 with retry-after.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Serve HTTPS/WSS with this certificate chain (PEM), offering ALPN h2 then http/1.1.
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init(cli.log_format);
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs {
        config: std::env::var_os("SWITCHBOARD_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        ..ServeArgs::default()
    })) {
        Command::Serve(args) => serve(args),
        Command::MockOpenai(args) => mock_openai(args),
        Command::VerifySignature => verify_signature(),
        Command::Chat(args) => actix_web::rt::System::new()
            .block_on(switchboard::terminal_chat::run(&args.target, args.id)),
        Command::Call(args) => call(args),
        Command::Loadtest(args) => Ok(switchboard::sim::loadtest::cli(args)?),
        Command::Migrate(args) => migrate(&args.database_url),
        Command::Init(args) => init(args),
        Command::CheckConfig(args) => check_config(args),
    };
    telemetry.shutdown();
    result
}

fn call(args: CallArgs) -> anyhow::Result<()> {
    let order = switchboard::call_cli::CallOrder {
        target: &args.target,
        token: args.token.as_deref(),
        to: &args.to,
        agent: args.agent.as_deref(),
        reason: &args.reason,
        machine_detection: args.machine_detection,
    };
    let sid = actix_web::rt::System::new().block_on(switchboard::call_cli::place(&order))?;
    println!("{sid}");
    Ok(())
}

fn init(args: InitArgs) -> anyhow::Result<()> {
    let written = switchboard::defaults::init(&args.dir, args.force)?;
    println!(
        "wrote the built-in configuration into {}:",
        args.dir.display()
    );
    for file in &written.files {
        println!("  {}", file.display());
    }
    let config = args.dir.join("switchboard.toml");
    println!(
        "\nEdit them, then run `switchboard serve --config {}`{}. A file you delete falls back \
         to the built-in one.",
        config.display(),
        if args.dir == std::path::Path::new(config::DEFAULT_DIR) {
            " (or just `switchboard` from this folder)"
        } else {
            ""
        }
    );
    Ok(())
}

/// Prints the effective configuration, or every problem (exit status 1).
fn check_config(args: CheckArgs) -> anyhow::Result<()> {
    match config::check(args.config.as_deref(), |name| std::env::var(name).ok()) {
        Ok((settings, sources)) => {
            print!("{}", config::describe(&settings, &sources));
            Ok(())
        }
        Err(err) => {
            let problems = err.problems();
            eprintln!(
                "the configuration has {} problem{}:",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for problem in problems {
                eprintln!("  {problem}");
            }
            std::process::exit(1);
        }
    }
}

/// `switchboard migrate`: the schema is applied under an advisory lock, so running it while
/// nodes start is safe; prints how many steps were applied.
fn migrate(database_url: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(async {
        let store = actors::store::PgStore::open(database_url, None, 0)
            .context("cannot migrate the database")?;
        let applied = store
            .migrate()
            .await
            .context("cannot migrate the database")?;
        println!("database schema is up to date ({applied} migrations applied now)");
        Ok(())
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut settings = config::load_from(args.config.as_deref(), |name| std::env::var(name).ok())?;
    if let Some(bind) = args.bind {
        settings.engine.server.bind = bind;
    }
    if let Some(dir) = args.data_dir {
        settings.engine.storage.data_dir = dir;
    }
    settings.engine.server.insecure_public |= args.insecure_public;
    let engine = &settings.engine;
    if engine.twilio.auth_token.is_none() {
        tracing::warn!(
            "local mode: TWILIO_AUTH_TOKEN is not set, so webhook signatures are NOT checked"
        );
    }
    if engine.openai.api_key.is_none() {
        tracing::warn!("OPENAI_API_KEY is not set: the offline local model answers");
    }
    let public = engine.server.public_url.trim_end_matches('/').to_string();
    let bind = engine.server.bind.clone();
    // Read the trust store off the main thread while the server starts.
    actors::http::prewarm();
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        tracing::info!(
            %bind,
            startup_ms = started.elapsed().as_millis() as u64,
            "switchboard is listening"
        );
        eprintln!(
            "\n  switchboard is up on http://{bind}\n\n  \
             Web chat             : http://{bind}/chat\n  \
             Dashboard / metrics  : http://{bind}/actors , http://{bind}/metrics\n\n  \
             Paste into the Twilio console:\n  \
             Voice webhook        : {public}/twilio/voice\n  \
             Call status callback : {public}/twilio/status\n  \
             Messaging webhook    : {public}/twilio/messaging\n  \
             Conversations webhook: {public}/twilio/conversations\n  \
             Transcription        : {public}/twilio/transcription\n"
        );
        let engine = app.engine().clone();
        let handle = app.handle();
        let mut server = actix_web::rt::spawn(app.run_until_stopped());
        tokio::select! {
            stopped = &mut server => {
                // The server ended by itself (it cannot bind, or failed): nothing to drain.
                stopped??;
                return Ok(());
            }
            name = shutdown::signal() => tracing::warn!(signal = name, "asked to stop"),
        }
        shutdown::drain(&engine, &handle).await;
        server.await??;
        Ok(())
    })
}

fn mock_openai(args: MockArgs) -> anyhow::Result<()> {
    let script = match &args.script {
        Some(path) => {
            Some(Script::load(path).with_context(|| format!("script {}", path.display()))?)
        }
        None => None,
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(MockTls { cert, key }),
        _ => None,
    };
    let opts = MockOptions {
        script,
        latency_ms: args.latency_ms,
        drop_after_ms: args.drop_after_ms,
        fail_rate: args.fail_rate,
        tls,
        workers: usize::from(args.workers),
        ..MockOptions::default()
    };
    actix_web::rt::System::new().block_on(async move {
        let server = MockServer::start(&args.bind, opts)?;
        eprintln!(
            "mock OpenAI listening: set OPENAI_BASE_URL={} (any OPENAI_API_KEY works)",
            server.base_url()
        );
        if server.tls {
            eprintln!(
                "serving TLS: the server trusts it once its CA is in the platform store or \
                 in SSL_CERT_FILE"
            );
        }
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// One line of `verify-signature` input. A parameter's value may be a string, a list of
/// strings (a repeated form key) or null (an empty value), as in Twilio's test vectors.
#[derive(serde::Deserialize)]
struct SignatureCase {
    url: String,
    #[serde(default)]
    params: std::collections::BTreeMap<String, ParamValue>,
    #[serde(default)]
    body: Option<String>,
    auth_token: String,
    signature: String,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ParamValue {
    One(String),
    Many(Vec<String>),
    Null(()),
}

fn verify_signature() -> anyhow::Result<()> {
    use actors::protocol::twilio::signature::validate;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<SignatureCase>(&line) {
            Ok(case) => {
                let params: Vec<(String, String)> = case
                    .params
                    .into_iter()
                    .flat_map(|(name, value)| match value {
                        ParamValue::One(v) => vec![(name, v)],
                        ParamValue::Many(vs) => vs.into_iter().map(|v| (name.clone(), v)).collect(),
                        ParamValue::Null(()) => vec![(name, String::new())],
                    })
                    .collect();
                let ok = validate(
                    &case.auth_token,
                    &case.url,
                    &params,
                    case.body.as_deref().map(str::as_bytes),
                    &case.signature,
                );
                println!("{ok}");
            }
            Err(err) => {
                eprintln!("line is not a signature case: {err}");
                println!("false");
            }
        }
    }
    Ok(())
}
