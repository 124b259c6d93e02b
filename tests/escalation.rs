//! A Realtime call the agent escalates: the model calls `escalate_to_human`, says its
//! goodbye — which plays to the end — and the stream closes; Twilio's request to
//! `/twilio/voice/next` then gets `<Dial>` to the configured person, with a timeout and an
//! `action`. When nobody answers, the `action` request takes the caller back to the
//! assistant, which continues the same conversation and knows the transfer failed.

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
    let dial_result = format!("{}/twilio/voice/dial-result", app.base);
    assert!(
        twiml.contains(&format!(
            "<Dial action=\"{dial_result}\" timeout=\"20\"><Number url=\"{}/twilio/voice/whisper?call={call_sid}\">+15555550100</Number></Dial>",
            app.base
        )),
        "{twiml}"
    );
    app.wait_until_idle(Duration::from_secs(5))
        .await
        .expect("no actor left");
    let record = app
        .engine
        .shared()
        .store
        .get_call(call_sid)
        .await
        .expect("store readable")
        .expect("call record");
    assert_eq!(record.outcome, Some(CallOutcome::Escalated));
    assert!(record.tools_used.iter().any(|t| t == "escalate_to_human"));
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_transfer_nobody_answers_brings_the_caller_back_to_the_assistant() {
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(
                // Each model socket follows the script from its start: the second part of
                // the call opens with turn 0 again.
                r#"[{"say": "Northwind Cycles, how can I help?"},
                    {"call": {"name": "escalate_to_human", "arguments": {"reason": "wants a manager"}}},
                    {"say": "Putting you through now."}]"#,
            ),
            ..MockOptions::default()
        },
        human_number: Some("+15555550100".into()),
        auth_token: Some("twilio-token".into()),
        ..AppOptions::default()
    })
    .await;
    let token = Some("twilio-token");
    let call_sid = "CA00000000000000000000000000000802";
    let mut call = LiveCall::dial(&app.base, token, call_sid, "+14155550101", "+18005550100")
        .await
        .expect("call connects");
    call.wait_for(
        |e| matches!(e, Event::MarkEchoed { .. }),
        Duration::from_secs(5),
    )
    .await
    .expect("greeting plays");
    call.say(&sine_ulaw(320.0, 1000, 0.6)).await;
    call.wait_for(
        |e| matches!(e, Event::Closed { .. }),
        Duration::from_secs(20),
    )
    .await
    .expect("the stream closes for the transfer");
    let from = [
        ("CallSid", call_sid),
        ("From", "+14155550101"),
        ("To", "+18005550100"),
    ];
    let (_, twiml) = app.post_twilio("/twilio/voice/next", &from).await;
    assert!(twiml.contains("<Dial action="), "{twiml}");

    // Twilio dialled for 20 s; nobody answered. Its action request gets the assistant back.
    let mut result = from.to_vec();
    result.extend([("DialCallStatus", "no-answer"), ("DialBridged", "false")]);
    let (status, twiml) = app.post_twilio("/twilio/voice/dial-result", &result).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(
        twiml.contains("<Say>Sorry, nobody could take your call just now.</Say>"),
        "{twiml}"
    );
    assert!(
        twiml.contains(r#"<Parameter name="ResumedAfterDial" value="no-answer"/>"#),
        "{twiml}"
    );
    app.wait_until_idle(Duration::from_secs(5))
        .await
        .expect("the first part of the call is over");
    let items_before = app.mock.stats().client_items_created;

    let mut back = LiveCall::follow(&twiml, token, call_sid)
        .await
        .expect("the stream of the TwiML opens");
    support::voice::greeting_played_out(&mut back).await;
    let stats = app.mock.stats();
    let instructions = stats
        .last_session
        .as_ref()
        .and_then(|s| s["instructions"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(instructions.contains("nobody answered"), "{instructions}");
    assert!(
        stats.client_items_created > items_before,
        "the new session was given the conversation so far"
    );
    back.hang_up().await.expect("hang up");
    app.wait_until_idle(Duration::from_secs(5))
        .await
        .expect("no actor left");

    // The caller is no longer marked for a person: the next action request hangs up.
    let (_, twiml) = app.post_twilio("/twilio/voice/next", &from).await;
    assert!(
        twiml.contains("<Hangup/>") && !twiml.contains("<Dial"),
        "{twiml}"
    );
    let record = app.call_record(call_sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Completed));
    assert!(record.tools_used.iter().any(|t| t == "escalate_to_human"));
    // One record for the whole call: the first part, then what the assistant said after.
    let said: Vec<&str> = record
        .transcript
        .turns()
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    let through = said.iter().position(|t| t.contains("Putting you through"));
    let after = said.iter().rposition(|t| t.contains("how can I help"));
    assert!(through.is_some() && after > through, "{said:?}");

    // A transfer the person answered ends the call when they hang up.
    let mut answered = from.to_vec();
    answered.extend([("DialCallStatus", "completed"), ("DialCallDuration", "42")]);
    let (_, twiml) = app
        .post_twilio("/twilio/voice/dial-result", &answered)
        .await;
    assert!(
        twiml.contains("<Hangup/>") && !twiml.contains("<Connect"),
        "{twiml}"
    );
    // Unsigned, it is refused.
    let (status, _) = support::unsigned_post(&app, "/twilio/voice/dial-result", &answered).await;
    assert_eq!(status, 403);
    app.handle.stop(false).await;
}
