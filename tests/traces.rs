//! Traces: a call's span tree — the call, its model turns, its tool call and its store
//! commit — and a conversation's reach an in-process OpenTelemetry exporter through the
//! same pipeline `OTEL_EXPORTER_OTLP_ENDPOINT` turns on (`telemetry::install` with the
//! `tracing-opentelemetry` layer), with durations.
//!
//! One test in this binary: the subscriber is the process's global one.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use support::voice::{greeting_played_out, speech, wait_played_out};
use support::{script, spawn_app, AppOptions};
use switchboard::sim::mock_openai::MockOptions;
use switchboard::telemetry::{self, LogFormat};

const SECOND: Duration = Duration::from_secs(1);
const CALL_SID: &str = "CA00000000000000000000000000000077";

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// Waits until a finished span satisfies `pred`; returns every finished span then.
async fn wait_for_span(
    exporter: &InMemorySpanExporter,
    what: &str,
    pred: impl Fn(&SpanData) -> bool,
) -> (SpanData, Vec<SpanData>) {
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        let spans = exporter.get_finished_spans().expect("exporter readable");
        if let Some(span) = spans.iter().find(|s| pred(s)) {
            return (span.clone(), spans);
        }
        assert!(Instant::now() < deadline, "no {what} span was exported");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn children<'a>(parent: &SpanData, spans: &'a [SpanData]) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_context.span_id())
        .collect()
}

#[actix_web::test]
async fn a_calls_span_tree_reaches_the_exporter() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_resource(telemetry::resource())
        .build();
    telemetry::install(LogFormat::Text, Some(&provider));

    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(
                r#"[{"say": "Hello, how can I help?"},
                    {"call": {"name": "lookup_order", "arguments": {"order_id": "1001"}}}]"#,
            ),
            ..MockOptions::default()
        },
        tweak: |settings| settings.engine.limits.idle_secs = 1,
        ..AppOptions::default()
    })
    .await;

    // A call: the greeting, a question, the tool, the answer; then the caller hangs up.
    let mut call = switchboard::sim::twilio::LiveCall::dial(
        &app.base,
        None,
        CALL_SID,
        "+14155550101",
        "+18005550100",
    )
    .await
    .expect("the call connects");
    greeting_played_out(&mut call).await;
    call.say(&speech()).await;
    app.wait_for_mock("the tool's output and the answer", 15 * SECOND, |s| {
        s.function_outputs >= 1 && s.responses_completed >= 3
    })
    .await;
    wait_played_out(&mut call, 15 * SECOND).await;
    call.hang_up().await.expect("hang up");
    app.call_record(CALL_SID).await;

    let (call_span, spans) = wait_for_span(&exporter, "call", |s| {
        s.name == "call" && attribute(s, "call_sid").as_deref() == Some(CALL_SID)
    })
    .await;
    assert_eq!(
        attribute(&call_span, "customer").as_deref(),
        Some("+1******0101")
    );
    assert_eq!(
        attribute(&call_span, "outcome").as_deref(),
        Some("completed")
    );
    assert!(call_span.end_time > call_span.start_time);
    let kids = children(&call_span, &spans);
    let names: Vec<&str> = kids.iter().map(|s| s.name.as_ref()).collect();
    for kid in &kids {
        assert_eq!(
            kid.span_context.trace_id(),
            call_span.span_context.trace_id(),
            "one trace per call"
        );
        assert!(kid.end_time >= kid.start_time, "{kid:?}");
    }
    let model_turns: Vec<_> = kids.iter().filter(|s| s.name == "model.turn").collect();
    assert!(model_turns.len() >= 3, "{names:?}");
    assert!(model_turns
        .iter()
        .all(|s| attribute(s, "kind").as_deref() == Some("realtime")));
    assert!(model_turns
        .iter()
        .any(|s| attribute(s, "status").as_deref() == Some("completed")));
    let tool = kids
        .iter()
        .find(|s| s.name == "tool")
        .unwrap_or_else(|| panic!("no tool span under the call: {names:?}"));
    assert_eq!(attribute(tool, "tool").as_deref(), Some("lookup_order"));
    assert_eq!(attribute(tool, "ok").as_deref(), Some("true"));
    let commit = kids
        .iter()
        .find(|s| s.name == "store.commit")
        .unwrap_or_else(|| panic!("no store commit under the call: {names:?}"));
    assert_eq!(attribute(commit, "what").as_deref(), Some("call_record"));

    // A web-chat conversation: its span carries the customer, with its model turn and the
    // group commits (each with the flush it waited for) beneath.
    let answer = app
        .web_chat("trace-visitor-1", "Where is my order 1001?", 10 * SECOND)
        .await;
    assert!(!answer.text.is_empty());
    let (conversation, spans) = wait_for_span(&exporter, "conversation", |s| {
        s.name == "conversation"
            && attribute(s, "customer").is_some_and(|c| c.contains("trace-visitor"))
    })
    .await;
    let kids = children(&conversation, &spans);
    let names: Vec<&str> = kids.iter().map(|s| s.name.as_ref()).collect();
    assert!(names.contains(&"model.turn"), "{names:?}");
    let commits: Vec<_> = kids.iter().filter(|s| s.name == "store.commit").collect();
    assert!(commits.len() >= 2, "{names:?}");
    app.handle.stop(false).await;
    let _ = provider.shutdown();
}
