//! Silence on a call (issue 10): with nothing said on either side for
//! `voice.idle_prompt_secs`, the agent asks whether the caller is still there; with no word
//! from the caller for `voice.idle_hangup_secs`, it says goodbye and the call hangs up, its
//! record's outcome `idle`.

mod support;

use std::time::Duration;

use actors::domain::records::CallOutcome;
use actors::domain::transcript::Role;
use support::{spawn_app, AppOptions};
use switchboard::sim::twilio::{Event, LiveCall};

const SECOND: Duration = Duration::from_secs(1);

#[actix_web::test]
async fn a_silent_caller_is_asked_then_said_goodbye_to() {
    let app = spawn_app(AppOptions {
        tweak: |settings| {
            settings.engine.voice.idle_prompt_secs = 1;
            settings.engine.voice.idle_hangup_secs = 2;
        },
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000a01";
    let mut call = LiveCall::dial(&app.base, None, call_sid, "+14155550101", "+18005550100")
        .await
        .expect("call connects");
    support::voice::greeting_played_out(&mut call).await;
    // The caller says nothing: the agent asks, then says goodbye and the call ends.
    app.wait_for_mock("the question", 10 * SECOND, |s| s.responses_started >= 2)
        .await;
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 20 * SECOND)
        .await
        .expect("the call is hung up");
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("no actor left");
    let stats = app.mock.stats();
    assert!(
        stats.responses_started >= 3,
        "question and goodbye: {stats:?}"
    );
    let record = app.call_record(call_sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Idle));
    let notes: Vec<&str> = record
        .transcript
        .turns()
        .iter()
        .filter(|t| t.role == Role::System)
        .map(|t| t.text.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("asked whether the caller is still there"))
            && notes.iter().any(|n| n.contains("did not answer")),
        "{notes:?}"
    );
    app.handle.stop(false).await;
}
