//! Logging and traces.
//!
//! Logs: `tracing`, human-readable by default, JSON lines with `--log-format json`; the
//! level comes from `RUST_LOG` (default `info`).
//!
//! Traces: the engine opens one span per call (`call`, with its CallSid) and per
//! conversation (`conversation`, the masked customer), and children of them for each model
//! turn, tool call, store commit and Twilio REST request (`actors::trace`). With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, they are
//! exported over OTLP — HTTP/protobuf, to `<endpoint>/v1/traces`, e.g.
//! `http://127.0.0.1:4318` for a collector on the same machine (plain HTTP; the standard
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` apply) —
//! in batches from a thread of their own, while logs go on as before. `RUST_LOG` filters
//! the logs only: every span at `info` and above is exported.

use clap::ValueEnum;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The variables that turn on OTLP export (the standard ones).
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// The installed pipeline; [`Telemetry::shutdown`] sends the spans still buffered.
#[must_use = "call shutdown() before exiting, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(err) = provider.shutdown() {
                eprintln!("traces: the last spans could not be exported: {err}");
            }
        }
    }
}

/// Installs the global subscriber — logs to stderr, so command output stays clean, and
/// spans over OTLP when an endpoint is configured.
pub fn init(format: LogFormat) -> Telemetry {
    let wanted = ENDPOINT_VARS
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    let provider = if wanted {
        match otlp_provider() {
            Ok(provider) => Some(provider),
            Err(err) => {
                eprintln!("traces: OTLP export is off: {err}");
                None
            }
        }
    } else {
        None
    };
    install(format, provider.as_ref());
    if provider.is_some() {
        tracing::info!("traces are exported over OTLP (HTTP/protobuf)");
    }
    Telemetry { provider }
}

/// A tracer provider that batches spans to the OTLP endpoint of the environment.
pub fn otlp_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// `service.name` = `switchboard` unless `OTEL_SERVICE_NAME` says otherwise.
pub fn resource() -> opentelemetry_sdk::Resource {
    let builder = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name("switchboard").build()
    }
}

/// Installs logs in `format` and, with `provider`, the OpenTelemetry layer that hands every
/// closed span to it. Tests pass a provider with an in-memory exporter. Does nothing if a
/// global subscriber is installed already.
pub fn install(format: LogFormat, provider: Option<&SdkTracerProvider>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    }
    .with_filter(filter);
    let traces = provider.map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchboard"))
            .with_filter(LevelFilter::INFO)
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
}
