//! Graceful drain on SIGTERM/SIGINT (issue 12), for rolling restarts behind a load balancer.
//!
//! 1. At once: `/health` answers `503 {"status":"draining"}`, `/twilio/voice` answers the
//!    busy TwiML, and a new text message is taken only while at least
//!    `messaging.deadline_ms` of the drain is left (it is then answered before the process
//!    exits; later ones are refused as busy: SMS/WhatsApp get the "very busy" reply, web
//!    chat an error, Conversations nothing) — see `actors::drain`.
//! 2. Live calls and text turns go on, for up to `server.drain_secs`.
//! 3. Calls still up when the goodbye prompt would no longer fit hear it (Media Streams:
//!    `prompts/goodbye.wav`; ConversationRelay: the same words spoken by Twilio) and are hung
//!    up once it has played, at the deadline at the latest.
//! 4. A moment for Twilio to ask `/twilio/voice/next` of the calls that ended, then the HTTP
//!    server stops (gracefully: requests in flight finish), the store is flushed, and the
//!    process exits 0. A second signal skips to this step.
//!
//! actix-web's own signal handling is off (`HttpServer::disable_signals`): it would stop
//! the server, and cut every live call, at the first signal.

use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actors::registry::messages::{ListCalls, SayGoodbye};
use actors::Engine;

/// How long the HTTP server's graceful stop waits for connections left open after the drain
/// (web-chat sockets, keep-alive); requests still in flight are answered within it.
pub const STOP_TIMEOUT_SECS: u64 = 2;
/// After the last call ended, how long Twilio has to ask `/twilio/voice/next`.
const NEXT_WEBHOOK_GRACE: Duration = Duration::from_millis(1500);
/// Slack between the goodbye's end and the deadline: the mark's round trip, with room for a
/// loaded machine.
const GOODBYE_SLACK: Duration = Duration::from_millis(1000);
/// How often the drain looks at what is still live.
const POLL: Duration = Duration::from_millis(50);

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C), naming it.
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                tracing::error!("cannot listen for SIGTERM/SIGINT; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                "Ctrl-C"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Drains the engine for up to `drain_secs`, then stops the server and flushes the store.
/// A second signal cuts the drain short.
pub async fn drain(engine: &Engine, server: &ServerHandle) {
    let within = Duration::from_secs(engine.shared().config.server.drain_secs);
    engine.shared().health.drain.start(within);
    let calls = live_calls(engine).await;
    tracing::warn!(
        drain_secs = within.as_secs(),
        calls,
        text_turns = engine.shared().health.drain.turns(),
        "draining: no new calls; live calls and turns may finish"
    );
    tokio::select! {
        () = let_work_finish(engine, within) => {}
        name = signal() => tracing::warn!(signal = name, "second signal: stopping now"),
    }
    tracing::info!("drain over: stopping the server");
    server.stop(true).await;
    match engine.shared().store.flush().await {
        Ok(()) => tracing::info!("store flushed; exiting"),
        Err(err) => tracing::error!(error = %err, "the store could not be flushed"),
    }
}

async fn live_calls(engine: &Engine) -> usize {
    engine
        .registry()
        .send(ListCalls)
        .await
        .map_or(0, |calls| calls.len())
}

/// Steps 2 and 3: waits for calls and turns, says goodbye to calls still up in time for
/// it to be heard, and gives Twilio a moment to ask for what follows a call.
async fn let_work_finish(engine: &Engine, within: Duration) {
    let started = Instant::now();
    let deadline = started + within;
    let goodbye = Duration::from_millis(engine.shared().prompts.goodbye.duration_ms());
    let goodbye_at = deadline
        .checked_sub(goodbye + GOODBYE_SLACK)
        .unwrap_or(started)
        .max(started);
    let drain = &engine.shared().health.drain;
    let mut had_calls = false;
    // Live calls that have been told to say goodbye (as far as counts tell). A call that
    // connects later — its TwiML was answered just before the drain — is told too; telling
    // a call twice changes nothing.
    let mut told = 0;
    loop {
        let calls = live_calls(engine).await;
        had_calls |= calls > 0;
        told = told.min(calls);
        let now = Instant::now();
        if calls == 0 && drain.turns() == 0 {
            break;
        }
        if now >= deadline {
            tracing::warn!(
                calls,
                text_turns = drain.turns(),
                "drain deadline: stopping with work left"
            );
            return;
        }
        if calls > told && now >= goodbye_at {
            let left = deadline.saturating_duration_since(now);
            let count = engine
                .registry()
                .send(SayGoodbye { within: left })
                .await
                .unwrap_or(0);
            tracing::info!(calls = count, "drain ends: callers hear goodbye");
            told = count;
        }
        actix_web::rt::time::sleep(POLL).await;
    }
    if had_calls {
        let grace = NEXT_WEBHOOK_GRACE.min(deadline.saturating_duration_since(Instant::now()));
        actix_web::rt::time::sleep(grace).await;
    }
    tracing::info!(
        waited_ms = started.elapsed().as_millis() as u64,
        "every call and turn finished"
    );
}
