//! A Realtime call the agent escalates: the model calls `escalate_to_human`, says its
//! goodbye — which plays to the end — and the stream closes; Twilio's request to
//! `/twilio/voice/next` then gets `<Dial>` to the configured person.

mod support;

use std::time::Duration;

use actors::domain::records::CallOutcome;
use support::{script, spawn_app, AppOptions};
use switchboard::sim::mock_openai::MockOptions;
use switchboard::sim::twilio::{sine_ulaw, Event, LiveCall};

#[actix_web::test]
async fn an_escalated_call_says_goodbye_then_dials_the_human() {
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(
                r#"[{"say": "Hi."},
                    {"call": {"name": "escalate_to_human", "arguments": {"reason": "asked for a person"}}},
                    {"say": "Of course, I am putting you through to a colleague now. Goodbye."}]"#,
            ),
            ..MockOptions::default()
        },
        human_number: Some("+15555550100".into()),
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000801";
    let mut call = LiveCall::dial(&app.base, None, call_sid, "+14155550101", "+18005550100")
        .await
        .expect("call connects");
    call.wait_for(
        |e| matches!(e, Event::MarkEchoed { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("greeting plays");
    call.say(&sine_ulaw(320.0, 1000, 0.6)).await;
    app.wait_for_mock("the escalation", Duration::from_secs(10), |s| {
        s.function_calls >= 1 && s.function_outputs >= 1
    })
    .await;
    call.drain();
    // The goodbye streams and is heard to its last mark before the stream closes.
    call.wait_for(|e| matches!(e, Event::Media { .. }), Duration::from_secs(5))
        .await
        .expect("goodbye audio");
    let closed = call
        .wait_for(
            |e| matches!(e, Event::Closed { .. }),
            Duration::from_secs(15),
        )
        .await
        .expect("the stream closes for the transfer");
    assert_eq!(closed, Event::Closed { code: Some(1000) });
    let report = call.snapshot();
    assert_eq!(
        report.marks_echoed, report.marks_received,
        "every mark of the goodbye was played before the close: {report:?}"
    );

    let (status, twiml) = app
        .post_twilio("/twilio/voice/next", &[("CallSid", call_sid)])
        .await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Dial>+15555550100</Dial>"), "{twiml}");
    app.wait_until_idle(Duration::from_secs(5))
        .await
        .expect("no actor left");
    let record = app
        .engine
        .shared()
        .store
        .get_call(call_sid)
        .expect("store readable")
        .expect("call record");
    assert_eq!(record.outcome, Some(CallOutcome::Escalated));
    assert!(record.tools_used.iter().any(|t| t == "escalate_to_human"));
    app.handle.stop(false).await;
}
