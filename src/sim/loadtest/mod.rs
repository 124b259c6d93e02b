//! `switchboard loadtest` (SPEC §11.2, §13): simulated Twilio voice traffic against a server,
//! and a report of what the bridge added and what it cost.
//!
//! Every call is a [`crate::sim::twilio::run_call`] (signed webhook, TwiML, Media Streams
//! socket, 20 ms frames paced against `t0 + n·20 ms`, marks echoed at playback pace, barge-ins)
//! following a [`plan`]: the caller prompt, silence between turns, every second turn talking
//! over the reply. Calls start evenly over the ramp and hang up after the duration.
//!
//! Two targets:
//! * `local` (the default): the OpenAI emulator and the real server are started in this
//!   process, so one clock measures the bridge's own latency per hop (the engine's
//!   `metrics::hop_latency` recorder, read in-process), and CPU is attributed per thread:
//!   threads that appear while the emulator starts are the emulator's, those that appear while
//!   the server starts (workers, acceptor, store) plus this main thread (the `Registry`) are
//!   the server's, and the generator runs on its own named threads. Resident memory cannot be
//!   split by thread, so the process's growth per call is reported as an upper bound of the
//!   server's; run the server as its own process (`--target URL --server-pid`) for its share.
//! * a URL: a server running elsewhere on this machine. Its hop latency comes from its
//!   `/metrics` buckets (coarser), its CPU and memory from `/proc/<pid>` when `--server-pid`
//!   names it.
//! * several URLs (`--target A,B` or `--target A --target B`): the nodes of a cluster, given
//!   the calls and SMS in turn ([`targets`]); the report counts the load as a whole (no
//!   per-node hop latency or process figures).
//!
//! Both ways, each hop is also measured *on the wire*, as an outside observer would
//! ([`crate::sim::onwire`]): every caller frame the generator writes carries a tag with its
//! write time on `CLOCK_MONOTONIC`, which the emulator reads off its socket; every audio delta
//! the emulator writes carries one too, which the generator reads off its socket. The
//! emulator's side comes from [`MockServer::stats`] in local mode, and from its `/mock/stats`
//! (`--emulator URL`) when it runs as its own process. Tags survive only the `pcmu` audio
//! mode, where the server passes μ-law through byte for byte.
//!
//! With `--sms-rate`, the generator also posts signed SMS webhooks at that rate ([`sms`]); with
//! `--calls 0` a local server answers them with the local model (no OpenAI key), as SPEC §13
//! measures SMS throughput.
//!
//! The generator runs on `--threads` threads, each an actix system carrying its share of the
//! calls as tasks; each thread measures its own CPU, which the report gives per call.

mod outbound;
mod plan;
mod procstat;
mod report;
mod scrape;
mod sms;
mod targets;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use actors::audio::prompts::Prompt;
use actors::config::{AudioMode, Secret};
use actors::metrics::{hop_latency_snapshot, Hop, LatencySnapshot};

use crate::config::{load_from, ConfigError, Settings};
use crate::sim::mock_openai::{MockOptions, MockServer, MockStats};
use crate::sim::twilio::{run_call, OnWire as CallOnWire};
use crate::startup::{Application, StartupError};
use actors::metrics::LatencyRecorder;
use report::{CallResult, Emulator, Hops, ProcessUsage, Quantiles, Usage};

pub use report::{Calls, Failure, Frames, HopStats, LoadReport, OnWire, WireHop};
pub use sms::SmsReport;

/// Time for freshly started servers to spawn their threads before the thread list is read.
const SETTLE: Duration = Duration::from_millis(300);
/// How often memory and concurrency are sampled during the run.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Calls not finished this long after their planned end are reported as stuck.
const GRACE: Duration = Duration::from_secs(60);
/// How long the local server may take to wind down every call after the last hang-up.
const IDLE_WAIT: Duration = Duration::from_secs(10);
/// One caller frame, for the frames a call should send.
const FRAME_MS: u64 = 20;
/// A `/metrics` page is a few kilobytes; this only bounds a wrong URL.
const METRICS_LIMIT: usize = 4 * 1024 * 1024;
const HOP_RESOLUTION_LOCAL: &str =
    "in-process log-linear histogram; each figure is its bucket's upper bound, within 3 %";
const HOP_RESOLUTION_REMOTE: &str =
    "the server's /metrics buckets; each figure is the bucket bound it falls under";
const ON_WIRE_METHOD: &str = "tag written into the μ-law payload with the writer's \
    CLOCK_MONOTONIC time, read by the other process off its socket; log-linear histogram, each \
    figure its bucket's upper bound within 3 %";
const TRANSCODED: &str = "the server transcodes pcmu ↔ pcm24k, so no tag survives \
    (use --audio-mode pcmu)";
/// An emulator's `/mock/stats` grows with its truncation records; this only bounds a wrong URL.
const STATS_LIMIT: usize = 256 * 1024 * 1024;

/// The command line of `switchboard loadtest`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The server's origin (e.g. http://127.0.0.1:8080), or `local` to start the OpenAI emulator
    /// and the server in this process (per-hop latency and per-part CPU are then measured).
    /// Several origins (comma-separated, or the flag repeated): a cluster's nodes, given the
    /// calls and SMS round-robin.
    #[arg(long, default_value = "local", value_delimiter = ',')]
    pub target: Vec<String>,
    /// Concurrent calls (0 with `--sms-rate` for SMS alone).
    #[arg(long, default_value_t = 10)]
    pub calls: usize,
    /// Seconds over which the calls start, evenly.
    #[arg(long, default_value_t = 5.0)]
    pub ramp: f64,
    /// Seconds each call lasts.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// SMS webhooks (`POST /twilio/messaging`) per second for `--duration`, alongside the calls
    /// (`--calls 0` for SMS alone; a local server then answers with the local model).
    #[arg(long, default_value_t = 0.0)]
    pub sms_rate: f64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Sign webhooks and socket upgrades like Twilio (a local server then checks them).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Audio mode of the local server.
    #[arg(long, value_enum, default_value = "pcmu")]
    pub audio_mode: AudioModeArg,
    /// Configuration of the local server; its folder's prompts/caller.wav is the caller's
    /// speech [default: ./config/switchboard.toml if it exists, else the built-in
    /// configuration; a missing caller.wav is the built-in one].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// What the callers say (any audio file the server's prompts accept).
    #[arg(long)]
    pub caller_prompt: Option<PathBuf>,
    /// Threads the simulated callers run on.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// With `--target local`: HTTP worker threads of the in-process OpenAI emulator (one
    /// carries a thousand voice calls with less CPU; keep two for high `--sms-rate`).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub emulator_workers: u16,
    /// With a URL target: the server's process id, to report its CPU and memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Whether every second turn talks over the assistant's reply.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub barge_in: bool,
    /// Calls the server places instead (`POST /calls`, answered through the simulated Calls
    /// API): this many, in place of `--calls`. Local target only.
    #[arg(long)]
    pub outbound: Option<usize>,
    /// Run the generator's threads (and a local emulator's) at this nice value (0-19), so on a
    /// machine they share with the server they yield to it and do not inflate its latency.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=19))]
    pub nice: u8,
    /// Where each call's 20 ms frame clock stands against the others': `spread` (each call
    /// starts at its own point of the frame period, as calls starting at random moments do) or
    /// `aligned` (starts exactly `ramp / calls` apart, which can put every call's frames in
    /// the same millisecond of each period: a burst no real media gateway sends).
    #[arg(long, value_enum, default_value = "spread")]
    pub frame_phases: FramePhases,
    /// With a URL target: the origin of the `switchboard mock-openai` the server talks to
    /// (e.g. http://127.0.0.1:9100), whose `/mock/stats` gives the caller → model on-wire
    /// latency.
    #[arg(long, value_name = "URL")]
    pub emulator: Option<String>,
}

/// How the calls' frame clocks are phased against one another (`--frame-phases`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramePhases {
    Spread,
    Aligned,
}

impl FramePhases {
    pub fn as_str(self) -> &'static str {
        match self {
            FramePhases::Spread => "spread",
            FramePhases::Aligned => "aligned",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioModeArg {
    Pcmu,
    Pcm24k,
}

impl From<AudioModeArg> for AudioMode {
    fn from(mode: AudioModeArg) -> AudioMode {
        match mode {
            AudioModeArg::Pcmu => AudioMode::Pcmu,
            AudioModeArg::Pcm24k => AudioMode::Pcm24k,
        }
    }
}

/// Where the calls go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An emulator and a server started in this process.
    Local,
    /// A running server's origin.
    Remote(String),
    /// The origins of several nodes of one cluster, given the load in turn.
    Cluster(Vec<String>),
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, LoadError> {
        if text == "local" {
            return Ok(Target::Local);
        }
        match url::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(Target::Remote(text.trim_end_matches('/').to_owned()))
            }
            _ => Err(LoadError::Invalid(format!(
                "--target must be `local` or an http(s) origin, not `{text}`"
            ))),
        }
    }
}

/// A load run, as [`run`] takes it.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub target: Target,
    pub calls: usize,
    pub ramp: Duration,
    pub duration: Duration,
    /// SMS webhooks per second (0: none).
    pub sms_rate: f64,
    pub auth_token: Option<String>,
    pub audio_mode: AudioMode,
    /// The local server's configuration file.
    pub config: PathBuf,
    pub caller_prompt: PathBuf,
    pub threads: usize,
    /// Worker threads of the local emulator.
    pub emulator_workers: usize,
    pub server_pid: Option<u32>,
    pub barge_in: bool,
    /// Nice value of the load's own threads (0: as the server).
    pub nice: u8,
    /// With a URL target: the emulator's origin, for its side of the on-wire latency.
    pub emulator: Option<String>,
    /// The calls are placed by the server (`--outbound`).
    pub outbound: bool,
    /// How the calls' 20 ms frame clocks are phased (`--frame-phases`).
    pub frame_phases: FramePhases,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Invalid(String),
    #[error("caller prompt: {0}")]
    Prompt(#[from] actors::audio::AudioError),
    #[error("local server configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("local server: {0}")]
    Startup(#[from] StartupError),
    #[error("local emulator: {0}")]
    Emulator(#[source] std::io::Error),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start generator thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot write the JSON report: {0}")]
    Json(#[from] serde_json::Error),
}

fn io_error(what: &'static str) -> impl FnOnce(std::io::Error) -> LoadError {
    move |source| LoadError::Io { what, source }
}

fn seconds(value: f64, name: &str) -> Result<Duration, LoadError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| LoadError::Invalid(format!("--{name} must be a number of seconds ≥ 0")))
}

impl LoadOptions {
    pub fn from_args(args: &LoadArgs) -> Result<LoadOptions, LoadError> {
        let target = targets::parse(&args.target)?;
        if target == Target::Local && args.server_pid.is_some() {
            return Err(LoadError::Invalid(
                "--server-pid is for a URL target; a local server is measured per thread".into(),
            ));
        }
        if matches!(target, Target::Cluster(_)) && args.server_pid.is_some() {
            return Err(LoadError::Invalid(
                "--server-pid names one server; it cannot be given with several targets".into(),
            ));
        }
        let emulator = match (&target, &args.emulator) {
            (_, None) => None,
            (Target::Cluster(_), Some(_)) => {
                return Err(LoadError::Invalid(
                    "--emulator reads one emulator beside one server; it cannot be given with several targets".into(),
                ))
            }
            (Target::Local, Some(_)) => {
                return Err(LoadError::Invalid(
                    "--emulator is for a URL target; a local emulator is read in-process".into(),
                ))
            }
            // The value of OPENAI_BASE_URL works as well as the origin.
            (Target::Remote(_), Some(url)) => match Target::parse(url)? {
                Target::Remote(origin) => Some(
                    origin
                        .strip_suffix("/v1")
                        .map_or(origin.clone(), str::to_owned),
                ),
                Target::Local | Target::Cluster(_) => {
                    return Err(LoadError::Invalid(
                        "--emulator must be the emulator's http(s) origin".into(),
                    ))
                }
            },
        };
        if let Some(path) = args
            .config
            .iter()
            .chain(&args.caller_prompt)
            .find(|p| !p.is_file())
        {
            return Err(LoadError::Invalid(format!(
                "no such file: {}",
                path.display()
            )));
        }
        let config = args
            .config
            .clone()
            .unwrap_or_else(|| Path::new(crate::config::DEFAULT_DIR).join("switchboard.toml"));
        let config_dir = config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if args.outbound.is_some() && target != Target::Local {
            return Err(LoadError::Invalid(
                "--outbound needs --target local: the server must place its calls with the \
                 simulated Calls API"
                    .into(),
            ));
        }
        // Placing calls needs Twilio credentials: the simulated API's token then.
        let auth_token = args
            .auth_token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| args.outbound.map(|_| "loadtest-outbound".to_owned()));
        Ok(LoadOptions {
            target,
            calls: args.outbound.unwrap_or(args.calls),
            outbound: args.outbound.is_some(),
            ramp: seconds(args.ramp, "ramp")?,
            duration: seconds(args.duration, "duration")?,
            sms_rate: args.sms_rate,
            auth_token,
            audio_mode: args.audio_mode.into(),
            config,
            caller_prompt: args
                .caller_prompt
                .clone()
                .unwrap_or_else(|| config_dir.join("prompts/caller.wav")),
            threads: args.threads,
            emulator_workers: usize::from(args.emulator_workers),
            server_pid: args.server_pid,
            barge_in: args.barge_in,
            nice: args.nice,
            emulator,
            frame_phases: args.frame_phases,
        })
    }

    fn validate(&self) -> Result<(), LoadError> {
        if !(self.sms_rate.is_finite() && self.sms_rate >= 0.0) {
            return Err(LoadError::Invalid(
                "--sms-rate must be a number of messages per second ≥ 0".into(),
            ));
        }
        if self.calls == 0 && self.sms_rate == 0.0 {
            return Err(LoadError::Invalid(
                "nothing to do: --calls 0 needs an --sms-rate".into(),
            ));
        }
        if self.threads == 0 {
            return Err(LoadError::Invalid("--threads must be at least 1".into()));
        }
        if self.outbound && (self.target != Target::Local || self.auth_token.is_none()) {
            return Err(LoadError::Invalid(
                "--outbound needs --target local and an auth token (the simulated Calls API's)"
                    .into(),
            ));
        }
        if self.duration < Duration::from_secs(1) {
            return Err(LoadError::Invalid(
                "--duration must be at least 1 second".into(),
            ));
        }
        Ok(())
    }
}

/// `switchboard loadtest`: runs the load, prints the report and writes `--json`.
pub fn cli(args: LoadArgs) -> Result<(), LoadError> {
    let options = LoadOptions::from_args(&args)?;
    let report = run(&options)?;
    println!("{report}");
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).map_err(io_error("cannot write the JSON report"))?;
    }
    Ok(())
}

/// Runs the load on a fresh actix system on this thread and returns the report.
pub fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    options.validate()?;
    // The configuration folder's caller.wav, else the built-in one.
    let prompt = match crate::defaults::source_of(&options.caller_prompt) {
        crate::defaults::Source::File(path) => Prompt::load(&path)?,
        crate::defaults::Source::BuiltIn => crate::defaults::built_in("caller.wav")?,
    };
    let speech: Arc<[u8]> = prompt.ulaw().into();
    if speech.is_empty() {
        return Err(LoadError::Invalid(format!(
            "the caller prompt {} holds no audio",
            options.caller_prompt.display()
        )));
    }
    actix_web::rt::System::new().block_on(async {
        match &options.target {
            Target::Local => run_local(options, speech).await,
            Target::Remote(url) => run_remote(options, url, speech).await,
            Target::Cluster(urls) => run_cluster(options, urls, speech).await,
        }
    })
}

/// A data directory for the local server, removed afterwards.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> Result<ScratchDir, LoadError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "switchboard-loadtest-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).map_err(io_error("cannot create a data directory"))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover temporary directory harms nothing.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shipped configuration, pointed at the emulator and tuned for one source address
/// carrying every call. The process environment is ignored: the run is the same anywhere.
fn local_settings(
    options: &LoadOptions,
    emulator: &MockServer,
    port: u16,
    data_dir: &Path,
) -> Result<Settings, LoadError> {
    // The configuration file when it exists, else the built-in configuration.
    let file = options.config.is_file().then_some(options.config.as_path());
    let mut settings = load_from(file, |_| None)?;
    let engine = &mut settings.engine;
    engine.server.bind = format!("127.0.0.1:{port}");
    engine.server.public_url = format!("http://127.0.0.1:{port}");
    engine.openai.base_url = emulator.base_url();
    // Calls need the emulator's Realtime model; SMS alone is answered by the local model, as
    // SPEC §13 measures it.
    engine.openai.api_key = (options.calls > 0).then(|| Secret::new("sk-loadtest".to_owned()));
    engine.twilio.auth_token = options.auth_token.clone().map(Secret::new);
    engine.storage.data_dir = data_dir.to_path_buf();
    engine.voice.audio_mode = options.audio_mode;
    engine.limits.max_calls = engine
        .limits
        .max_calls
        .max(options.calls.saturating_add(16));
    // Every simulated call comes from 127.0.0.1.
    engine.limits.per_ip_per_second = u32::MAX;
    let senders = usize::try_from(sms::sender_pool(options.sms_rate)).unwrap_or(usize::MAX);
    engine.limits.max_conversations = engine
        .limits
        .max_conversations
        .max(senders.saturating_add(16));
    Ok(settings)
}

/// Lowers the scheduling priority of threads of this process (`renice` acts on a thread id
/// alone). Best effort: where it fails the load still runs, at the server's priority.
fn lower_priority(tids: impl IntoIterator<Item = u32>, nice: u8) {
    if nice == 0 {
        return;
    }
    for tid in tids {
        let status = std::process::Command::new("renice")
            .args(["-n", &nice.to_string(), "-p", &tid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            tracing::warn!(tid, nice, "could not lower the load's thread priority");
        }
    }
}

/// The threads that appeared since `before`.
fn new_threads(before: &HashSet<u32>) -> HashSet<u32> {
    procstat::thread_ids()
        .into_iter()
        .filter(|tid| !before.contains(tid))
        .collect()
}

/// CPU used so far by each of `tids`.
fn cpu_of(tids: &HashSet<u32>) -> HashMap<u32, Duration> {
    tids.iter()
        .filter_map(|&tid| Some((tid, procstat::thread_cpu(tid)?)))
        .collect()
}

/// CPU the threads used since `before` (a thread gone since counts for nothing).
fn cpu_since(before: &HashMap<u32, Duration>) -> Duration {
    before
        .iter()
        .filter_map(|(&tid, &then)| Some(procstat::thread_cpu(tid)?.saturating_sub(then)))
        .sum()
}

async fn run_local(options: &LoadOptions, speech: Arc<[u8]>) -> Result<LoadReport, LoadError> {
    let main_tid = procstat::current_tid();
    let at_start: HashSet<u32> = procstat::thread_ids().into_iter().collect();
    let emulator = MockServer::start(
        "127.0.0.1:0",
        MockOptions {
            workers: options.emulator_workers,
            ..MockOptions::default()
        },
    )
    .map_err(LoadError::Emulator)?;
    actix_web::rt::time::sleep(SETTLE).await;
    let emulator_threads = new_threads(&at_start);
    lower_priority(emulator_threads.iter().copied(), options.nice);

    let data_dir = ScratchDir::create()?;
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(io_error("cannot bind a local port"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("cannot bind a local port"))?
        .port();
    let mut settings = local_settings(options, &emulator, port, &data_dir.0)?;
    // `--outbound`: the server places its calls with the simulated Calls API.
    let calls_api = match (options.outbound, &options.auth_token) {
        (true, Some(token)) => {
            let api = crate::sim::twilio::api::CallsApi::start(token, &[])
                .map_err(io_error("cannot start the simulated Calls API"))?;
            let twilio = &mut settings.engine.twilio;
            twilio.api_base = api.base.clone();
            twilio.account_sid = Some(api.account_sid().to_owned());
            twilio.phone_number = Some(plan::TO.to_owned());
            Some(api)
        }
        _ => None,
    };
    let app = Application::build_on(settings, listener).await?;
    let engine = app.engine().clone();
    let server = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    actix_web::rt::time::sleep(SETTLE).await;
    let mut known = at_start.clone();
    known.extend(&emulator_threads);
    let mut server_threads = new_threads(&known);
    server_threads.extend(main_tid);

    let emulator_cpu = cpu_of(&emulator_threads);
    let server_cpu = cpu_of(&server_threads);
    let process_cpu = procstat::process_cpu(None);
    let hops_before = [Hop::Inbound, Hop::Outbound].map(hop_latency_snapshot);
    let baseline = procstat::memory(None);

    let target = format!("http://127.0.0.1:{port}");
    let driven = drive(
        options,
        std::slice::from_ref(&target),
        speech,
        None,
        calls_api.as_ref().map(|api| api.handle()),
    )
    .await?;
    if let Some(api) = &calls_api {
        api.stop().await;
    }

    // Let every call wind down (records written, children stopped) before reading the cost.
    let idle_by = Instant::now() + IDLE_WAIT;
    while engine.shared().census.snapshot().total() > 0 && Instant::now() < idle_by {
        actix_web::rt::time::sleep(SAMPLE_EVERY).await;
    }
    // Idle actors may leave their last appends in flight (a socket buffer, the emulator's
    // mailbox): within the same bound, wait until the emulator has read every frame the server
    // forwarded, so "forwarded" and "received by the model" compare like for like. (Not every
    // frame the generator sent is forwarded: frames written after the model socket closed at
    // hang-up never are, so waiting for those would always run out the bound.)
    let forwarded = || {
        hop_latency_snapshot(Hop::Inbound)
            .since(&hops_before[0])
            .count()
    };
    while emulator.stats().appends < forwarded() && Instant::now() < idle_by {
        actix_web::rt::time::sleep(SAMPLE_EVERY).await;
    }
    let emulator_cpu = cpu_since(&emulator_cpu);
    let server_cpu = cpu_since(&server_cpu);
    let process_cpu = procstat::process_cpu(None)
        .zip(process_cpu)
        .map(|(now, then)| now.saturating_sub(then));
    let [inbound, outbound]: [LatencySnapshot; 2] = [
        hop_latency_snapshot(Hop::Inbound).since(&hops_before[0]),
        hop_latency_snapshot(Hop::Outbound).since(&hops_before[1]),
    ];
    let stats = emulator.stats();
    let on_wire = OnWire {
        method: ON_WIRE_METHOD.to_owned(),
        inbound: match options.audio_mode {
            AudioMode::Pcmu => {
                WireHop::measured(Some(driven.tally.frames.sent), &stats.caller_audio_on_wire)
            }
            AudioMode::Pcm24k => WireHop::unmeasured(Some(driven.tally.frames.sent), TRANSCODED),
        },
        outbound: match options.audio_mode {
            AudioMode::Pcmu => WireHop::measured(Some(stats.deltas_tagged), &driven.heard),
            AudioMode::Pcm24k => WireHop::unmeasured(None, TRANSCODED),
        },
    };
    let end = procstat::memory(None);
    server.stop(true).await;
    emulator.stop().await;

    let mut claimed = known;
    claimed.extend(&server_threads);
    let other_threads: Vec<String> = new_threads(&claimed)
        .into_iter()
        .filter(|tid| !driven.generator_threads.contains(tid))
        .filter_map(procstat::thread_name)
        .collect();
    let call_seconds = driven.tally.calls.call_seconds;
    let peak_concurrent = driven.tally.calls.peak_concurrent;
    let sms_cpu = (options.calls == 0).then_some(server_cpu);
    let peak_kib = driven.peak_rss_kib.max(end.map_or(0, |m| m.peak_kib));
    let process = ProcessUsage {
        cpu_seconds: process_cpu.map(|d| d.as_secs_f64()),
        other_cpu_seconds: process_cpu.map(|total| {
            total
                .saturating_sub(server_cpu + emulator_cpu + driven.generator_cpu)
                .as_secs_f64()
        }),
        other_threads,
        baseline_rss_mib: baseline.map(|m| report::mib(m.rss_kib)),
        peak_rss_mib: (peak_kib > 0).then(|| report::mib(peak_kib)),
        rss_per_call_kib: baseline
            .and_then(|b| report::rss_per_call_kib(b.rss_kib, peak_kib, peak_concurrent)),
    };
    let mut frames = driven.tally.frames.clone();
    frames.forwarded = Some(inbound.count());
    frames.model_received = Some(stats.appends);
    frames.media_forwarded = Some(outbound.count());
    Ok(LoadReport {
        target: "local".to_owned(),
        audio_mode: Some(options.audio_mode.as_str().to_owned()),
        hops: Some(Hops {
            resolution: HOP_RESOLUTION_LOCAL.to_owned(),
            inbound: HopStats::from_snapshot(&inbound),
            outbound: HopStats::from_snapshot(&outbound),
        }),
        on_wire: Some(on_wire),
        server: Some(Usage::cpu(
            Some(server_cpu),
            call_seconds,
            "CPU of the server's threads (HTTP workers, acceptor, store, registry)",
        )),
        emulator: Some(emulator_report(
            &stats,
            Usage::cpu(
                Some(emulator_cpu),
                call_seconds,
                "CPU of the emulator's threads",
            ),
        )),
        process: Some(process),
        frames,
        ..driven.into_report(options, sms_cpu)
    })
}

fn emulator_report(stats: &MockStats, usage: Usage) -> Emulator {
    let accepted = stats.truncations.iter().filter(|t| t.accepted).count() as u64;
    Emulator {
        usage,
        connections: stats.connections,
        appends: stats.appends,
        audio_seconds_received: stats.audio_ms_received as f64 / 1000.0,
        responses_started: stats.responses_started,
        responses_completed: stats.responses_completed,
        responses_cancelled: stats.responses_cancelled,
        truncations_accepted: accepted,
        truncations_refused: stats.truncations.len() as u64 - accepted,
        errors_sent: stats.errors_sent,
    }
}

fn scrape_client() -> awc::Client {
    awc::Client::builder()
        .connector(actors::http::connector(actors::http::Alpn::H2AndHttp1))
        .timeout(Duration::from_secs(10))
        .finish()
}

/// An emulator's counters, from its `/mock/stats`.
async fn emulator_stats(origin: &str) -> Result<MockStats, String> {
    let url = format!("{origin}/mock/stats");
    let mut response = scrape_client()
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let body = response
        .body()
        .limit(STATS_LIMIT)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url} is not mock-openai's stats: {e}"))
}

/// The on-wire figures of a run against a server elsewhere: model → caller from the
/// generator's own reads; caller → model from the emulator's stats before and after the run.
fn remote_on_wire(
    driven: &Driven,
    emulator: Option<(Result<MockStats, String>, Result<MockStats, String>)>,
) -> OnWire {
    let sent = driven.tally.frames.sent;
    let stats = match emulator {
        None => Err("pass --emulator URL (the mock-openai origin) to read its side".to_owned()),
        Some((Ok(before), Ok(after))) => Ok((before, after)),
        Some((Err(why), _) | (_, Err(why))) => Err(why),
    };
    let (inbound, tagged_deltas) = match &stats {
        Ok((before, after)) => {
            let latency = after
                .caller_audio_on_wire
                .since(&before.caller_audio_on_wire);
            let hop = if latency.count() == 0 && sent > 0 {
                WireHop::unmeasured(Some(sent), NO_TAGS)
            } else {
                WireHop::measured(Some(sent), &latency)
            };
            (
                hop,
                Some(after.deltas_tagged.saturating_sub(before.deltas_tagged)),
            )
        }
        Err(why) => (WireHop::unmeasured(Some(sent), why), None),
    };
    let outbound = if driven.heard.count() == 0 && driven.tally.frames.media_received > 0 {
        WireHop::unmeasured(tagged_deltas, NO_TAGS)
    } else {
        WireHop::measured(tagged_deltas, &driven.heard)
    };
    OnWire {
        method: ON_WIRE_METHOD.to_owned(),
        inbound,
        outbound,
    }
}

/// Why audio flowed but no tag arrived.
const NO_TAGS: &str = "no tagged frame arrived: the server transcodes (audio_mode pcm24k), \
    or its model is not switchboard mock-openai";

/// The server's `/metrics` hop buckets, if it serves them to us.
async fn scrape_hops(target: &str) -> Option<scrape::Buckets> {
    let mut response = scrape_client()
        .get(format!("{target}/metrics"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.body().limit(METRICS_LIMIT).await.ok()?;
    Some(scrape::parse(&String::from_utf8_lossy(&body)))
}

async fn run_remote(
    options: &LoadOptions,
    target: &str,
    speech: Arc<[u8]>,
) -> Result<LoadReport, LoadError> {
    let pid = options.server_pid;
    let cpu_before = pid.and_then(|pid| procstat::process_cpu(Some(pid)));
    let baseline = pid.and_then(|pid| procstat::memory(Some(pid)));
    let hops_before = scrape_hops(target).await;
    let emulator_before = match &options.emulator {
        Some(origin) => Some(emulator_stats(origin).await),
        None => None,
    };
    let driven = drive(options, &[target.to_owned()], speech, pid, None).await?;
    let hops_after = scrape_hops(target).await;
    let emulator = match (&options.emulator, emulator_before) {
        (Some(origin), Some(before)) => Some((before, emulator_stats(origin).await)),
        _ => None,
    };
    let on_wire = remote_on_wire(&driven, emulator);
    let hops = hops_before.zip(hops_after).map(|(before, after)| Hops {
        resolution: HOP_RESOLUTION_REMOTE.to_owned(),
        inbound: scrape::stats(&before.inbound, &after.inbound),
        outbound: scrape::stats(&before.outbound, &after.outbound),
    });
    let cpu = pid.and_then(|pid| {
        procstat::process_cpu(Some(pid))
            .zip(cpu_before)
            .map(|(now, then)| now.saturating_sub(then))
    });
    let sms_cpu = cpu.filter(|_| options.calls == 0);
    let server = pid.map(|_| {
        let peak_kib = driven.peak_rss_kib;
        let mut usage = Usage::cpu(
            cpu,
            driven.tally.calls.call_seconds,
            "the server process, from /proc/<pid>",
        );
        usage.peak_rss_mib = (peak_kib > 0).then(|| report::mib(peak_kib));
        usage.rss_per_call_kib = baseline.and_then(|b| {
            report::rss_per_call_kib(b.rss_kib, peak_kib, driven.tally.calls.peak_concurrent)
        });
        usage
    });
    Ok(LoadReport {
        target: target.to_owned(),
        audio_mode: None,
        hops,
        on_wire: Some(on_wire),
        server,
        ..driven.into_report(options, sms_cpu)
    })
}

/// Several nodes: the load spread over them, counted as a whole.
async fn run_cluster(
    options: &LoadOptions,
    targets: &[String],
    speech: Arc<[u8]>,
) -> Result<LoadReport, LoadError> {
    let driven = drive(options, targets, speech, None, None).await?;
    Ok(LoadReport {
        target: targets.join(","),
        ..driven.into_report(options, None)
    })
}

/// What a generator thread tells the orchestrator.
enum FromGenerator {
    Started {
        tid: Option<u32>,
    },
    /// Boxed: a call's report is large and rare next to the other messages.
    Finished(Box<CallResult>),
    /// The thread's share of the SMS load, once sent and answered.
    Sms(Box<sms::SmsTally>),
    /// The thread's own CPU time, just before it exits.
    Done {
        cpu: Option<Duration>,
    },
}

/// What the generator brought back.
struct Driven {
    tally: report::Tally,
    wall: Duration,
    generator_cpu: Duration,
    generator_threads: HashSet<u32>,
    sms: sms::SmsTally,
    /// Highest resident memory sampled (this process, or the watched server), in KiB.
    peak_rss_kib: u64,
    /// Model → caller on-wire latency of every tagged `media` frame the callers read.
    heard: LatencySnapshot,
}

impl Driven {
    /// The report's fields that come from the load alone; `sms_cpu` is the server's CPU when
    /// it served nothing but the SMS load.
    fn into_report(self, options: &LoadOptions, sms_cpu: Option<Duration>) -> LoadReport {
        let call_seconds = self.tally.calls.call_seconds;
        let sms = (options.sms_rate > 0.0).then(|| {
            let mut report = sms::SmsReport::new(options.sms_rate, options.duration, self.sms);
            report.server_cpu_us_per_message = sms_cpu
                .filter(|_| report.sent > 0)
                .map(|cpu| cpu.as_secs_f64() * 1e6 / report.sent as f64);
            report
        });
        LoadReport {
            target: String::new(),
            audio_mode: None,
            calls_requested: options.calls,
            load_nice: options.nice,
            frame_phases: options.frame_phases.as_str(),
            ramp_seconds: options.ramp.as_secs_f64(),
            duration_seconds: options.duration.as_secs_f64(),
            wall_seconds: self.wall.as_secs_f64(),
            turn_latency_ms: Quantiles::of(self.tally.turn_latencies_ms),
            barge_in_latency_ms: Quantiles::of(self.tally.barge_in_latencies_ms),
            calls: self.tally.calls,
            frames: self.tally.frames,
            hops: None,
            on_wire: None,
            server: None,
            emulator: None,
            generator: Usage::cpu(
                Some(self.generator_cpu),
                call_seconds,
                "CPU of the generator's threads",
            ),
            process: None,
            sms,
        }
    }
}

/// Places every call from the generator threads and waits for them all, sampling memory
/// (of `watch`, else of this process) and concurrency meanwhile. Calls and SMS go to the
/// `targets` in turn.
async fn drive(
    options: &LoadOptions,
    targets: &[String],
    speech: Arc<[u8]>,
    watch: Option<u32>,
    calls_api: Option<crate::sim::twilio::api::CallsApiHandle>,
) -> Result<Driven, LoadError> {
    let (tx, rx) = mpsc::channel();
    let live = Arc::new(AtomicU64::new(0));
    let heard = Arc::new(LatencyRecorder::new());
    // A moment for the threads to set up their systems before the first call is due.
    let start = Instant::now() + Duration::from_millis(100);
    let mut batches: Vec<Vec<(Duration, crate::sim::twilio::CallPlan)>> =
        (0..options.threads).map(|_| Vec::new()).collect();
    for index in 0..options.calls {
        let mut plan = plan::call_plan(
            index,
            targets::pick(targets, index as u64),
            options.auth_token.as_deref(),
            &speech,
            options.duration,
            options.barge_in,
        );
        plan.on_wire = Some(CallOnWire {
            call: index as u64,
            heard: Arc::clone(&heard),
        });
        let offset = plan::start_offset(
            index,
            options.calls,
            options.ramp,
            options.frame_phases == FramePhases::Spread,
        );
        if let Some(batch) = batches.get_mut(index % options.threads) {
            batch.push((offset, plan));
        }
    }
    let mut threads = Vec::new();
    let nice = options.nice;
    let stride = options.threads as u64;
    for (n, batch) in batches.into_iter().enumerate() {
        let (tx, live) = (tx.clone(), Arc::clone(&live));
        let sms = sms::SmsPlan {
            targets: targets.to_vec(),
            auth_token: options.auth_token.clone(),
            rate: options.sms_rate / options.threads as f64,
            duration: options.duration,
            first: n as u64,
            stride,
            senders: sms::sender_pool(options.sms_rate),
        };
        // Outbound load is local only: one server places every call.
        let placed_by = calls_api
            .clone()
            .zip(targets.first())
            .map(|(api, target)| (target.clone(), api));
        let thread = std::thread::Builder::new()
            .name(format!("loadgen-{n}"))
            .spawn(move || generate(batch, sms, start, nice, tx, live, placed_by))
            .map_err(LoadError::Thread)?;
        threads.push(thread);
    }
    drop(tx);

    let deadline = start + options.ramp + options.duration + GRACE;
    let mut results = Vec::with_capacity(options.calls);
    let mut generator_threads = HashSet::new();
    let mut generator_cpu = Duration::ZERO;
    let mut sms = sms::SmsTally::default();
    let mut done = 0;
    let mut peak_concurrent = 0;
    let mut peak_rss_kib = 0;
    while done < options.threads && Instant::now() < deadline {
        loop {
            match rx.try_recv() {
                Ok(FromGenerator::Started { tid }) => generator_threads.extend(tid),
                Ok(FromGenerator::Finished(result)) => results.push(*result),
                Ok(FromGenerator::Sms(tally)) => sms.add(*tally),
                Ok(FromGenerator::Done { cpu }) => {
                    done += 1;
                    generator_cpu += cpu.unwrap_or_default();
                }
                Err(mpsc::TryRecvError::Empty) => break,
                // Every thread has gone: whatever is missing will not come.
                Err(mpsc::TryRecvError::Disconnected) => {
                    done = options.threads;
                    break;
                }
            }
        }
        peak_concurrent = peak_concurrent.max(live.load(Ordering::Relaxed));
        if let Some(memory) = procstat::memory(watch) {
            peak_rss_kib = peak_rss_kib.max(memory.rss_kib);
        }
        actix_web::rt::time::sleep(SAMPLE_EVERY).await;
    }
    let wall = start.elapsed();
    if done == options.threads {
        for thread in threads {
            // The thread has said Done: it is returning.
            let _ = thread.join();
        }
    }
    let missing = options.calls.saturating_sub(results.len());
    results.extend((0..missing).map(|_| CallResult {
        outcome: Err("no result before the deadline (the call hung)".to_owned()),
        live: Duration::ZERO,
        expected_frames: 0,
    }));
    let mut tally = report::tally(&results);
    tally.calls.peak_concurrent = peak_concurrent;
    Ok(Driven {
        tally,
        wall,
        generator_cpu,
        generator_threads,
        sms,
        peak_rss_kib,
        heard: heard.snapshot(),
    })
}

/// One generator thread: its calls as tasks on its own actix system, each started at its
/// offset from `start`, and its share of the SMS load.
fn generate(
    batch: Vec<(Duration, crate::sim::twilio::CallPlan)>,
    sms: sms::SmsPlan,
    start: Instant,
    nice: u8,
    tx: mpsc::Sender<FromGenerator>,
    live: Arc<AtomicU64>,
    placed_by: Option<(String, crate::sim::twilio::api::CallsApiHandle)>,
) {
    let sender = tx.clone();
    let tid = procstat::current_tid();
    lower_priority(tid, nice);
    actix_web::rt::System::new().block_on(async move {
        let _ = sender.send(FromGenerator::Started { tid });
        let texts = actix_web::rt::spawn(sms::run(sms, start));
        let mut tasks = Vec::with_capacity(batch.len());
        for (offset, plan) in batch {
            actix_web::rt::time::sleep_until((start + offset).into()).await;
            let (tx, live) = (sender.clone(), Arc::clone(&live));
            let placed_by = placed_by.clone();
            tasks.push(actix_web::rt::spawn(async move {
                let expected_frames = plan.hangup_after_ms / FRAME_MS;
                live.fetch_add(1, Ordering::Relaxed);
                let began = Instant::now();
                let outcome = match &placed_by {
                    Some((target, api)) => outbound::call(target, plan, api).await,
                    None => run_call(plan).await,
                }
                .map_err(|e| e.to_string());
                live.fetch_sub(1, Ordering::Relaxed);
                // The orchestrator may have given up on us; nobody is left to tell then.
                let _ = tx.send(FromGenerator::Finished(Box::new(CallResult {
                    outcome,
                    live: began.elapsed(),
                    expected_frames,
                })));
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        if let Ok(tally) = texts.await {
            let _ = sender.send(FromGenerator::Sms(Box::new(tally)));
        }
    });
    let cpu = procstat::current_tid().and_then(procstat::thread_cpu);
    let _ = tx.send(FromGenerator::Done { cpu });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_local_or_http_origins() {
        assert_eq!(Target::parse("local").ok(), Some(Target::Local));
        assert_eq!(
            Target::parse("http://127.0.0.1:8080/").ok(),
            Some(Target::Remote("http://127.0.0.1:8080".into()))
        );
        assert!(Target::parse("ws://127.0.0.1:8080").is_err());
        assert!(Target::parse("127.0.0.1:8080").is_err());
    }

    fn args() -> LoadArgs {
        LoadArgs {
            target: vec!["local".into()],
            calls: 3,
            ramp: 1.5,
            duration: 4.0,
            sms_rate: 0.0,
            json: None,
            auth_token: Some(String::new()),
            audio_mode: AudioModeArg::Pcm24k,
            config: None,
            caller_prompt: None,
            threads: 1,
            emulator_workers: 2,
            server_pid: None,
            barge_in: true,
            nice: 0,
            emulator: None,
            frame_phases: FramePhases::Spread,
            outbound: None,
        }
    }

    #[test]
    fn outbound_load_is_local_and_signed() {
        let mut outbound = args();
        outbound.outbound = Some(7);
        let options = LoadOptions::from_args(&outbound).expect("valid");
        assert_eq!(options.calls, 7);
        assert!(options.outbound && options.auth_token.is_some());
        assert!(options.validate().is_ok());
        outbound.target = vec!["http://127.0.0.1:8080".into()];
        assert!(LoadOptions::from_args(&outbound).is_err());
    }

    #[test]
    fn options_follow_the_arguments() {
        let options = LoadOptions::from_args(&args()).expect("valid");
        assert_eq!(options.ramp, Duration::from_millis(1500));
        assert_eq!(options.audio_mode, AudioMode::Pcm24k);
        assert_eq!(options.auth_token, None, "an empty token signs nothing");
        assert_eq!(
            options.caller_prompt,
            PathBuf::from("config/prompts/caller.wav")
        );
        assert!(options.validate().is_ok());
    }

    #[test]
    fn the_emulator_is_named_by_its_origin_or_base_url() {
        for url in ["http://127.0.0.1:9100", "http://127.0.0.1:9100/v1/"] {
            let mut a = args();
            a.target = vec!["http://127.0.0.1:8080".into()];
            a.emulator = Some(url.into());
            let options = LoadOptions::from_args(&a).expect("valid");
            assert_eq!(options.emulator.as_deref(), Some("http://127.0.0.1:9100"));
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let refused = |change: fn(&mut LoadArgs)| {
            let mut a = args();
            change(&mut a);
            LoadOptions::from_args(&a).and_then(|o| o.validate())
        };
        assert!(refused(|a| a.sms_rate = -1.0).is_err());
        assert!(refused(|a| a.sms_rate = f64::NAN).is_err());
        assert!(refused(|a| {
            a.calls = 0;
            a.sms_rate = 100.0;
        })
        .is_ok());
        assert!(refused(|a| a.server_pid = Some(1)).is_err());
        assert!(refused(|a| {
            a.target = vec![
                "http://127.0.0.1:8081".into(),
                "http://127.0.0.1:8082".into(),
            ];
            a.server_pid = Some(1);
        })
        .is_err());
        assert!(refused(|a| a.ramp = -1.0).is_err());
        assert!(refused(|a| a.calls = 0).is_err());
        assert!(refused(|a| a.threads = 0).is_err());
        assert!(refused(|a| a.duration = 0.5).is_err());
        assert!(refused(|a| a.emulator = Some("http://127.0.0.1:9100".into())).is_err());
        assert!(refused(|a| {
            a.target = vec!["http://127.0.0.1:8080".into()];
            a.emulator = Some("127.0.0.1:9100".into());
        })
        .is_err());
    }
}
