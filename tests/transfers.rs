//! Warm transfers (issue 10): the `<Dial>` to the person carries `<Number url>`, whose
//! whisper — fetched by Twilio once they answer, before the caller is connected — is a
//! two-sentence summary of the call; the person gets the transcript's link by text, and a
//! text when a transfer to them did not go through (the caller being back with the
//! assistant, which offers a call back).

mod support;

use std::time::Duration;

use support::{script, spawn_app, AppOptions};
use switchboard::sim::mock_openai::MockOptions;
use switchboard::sim::twilio::api::CallsApi;
use switchboard::sim::twilio::{leave_voicemail, sine_ulaw, Event, LiveCall};

const TOKEN: &str = "twilio-token";
const HUMAN: &str = "+15555550100";
const SECOND: Duration = Duration::from_secs(1);

/// `caller` calls, speaks once the greeting played, and the assistant (scripted to) escalates:
/// returns once the stream closed for the transfer and the call's actor is done.
async fn call_until_transferred(app: &support::TestApp, call_sid: &str, caller: &str) {
    let mut call = LiveCall::dial(&app.base, Some(TOKEN), call_sid, caller, "+18005550100")
        .await
        .expect("call connects");
    support::voice::greeting_played_out(&mut call).await;
    call.say(&sine_ulaw(320.0, 1000, 0.6)).await;
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 20 * SECOND)
        .await
        .expect("the stream closes for the transfer");
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("the call's actor is done");
}

#[actix_web::test]
async fn the_person_hears_a_whisper_and_gets_the_transcript_by_text() {
    let api = CallsApi::start(TOKEN, &[]).expect("simulated Twilio starts");
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(
                r#"[{"say": "Hi."},
                    {"call": {"name": "escalate_to_human", "arguments": {"reason": "wants a manager"}}},
                    {"say": "Putting you through now."}]"#,
            ),
            ..MockOptions::default()
        },
        human_number: Some(HUMAN.into()),
        auth_token: Some(TOKEN.into()),
        account_sid: Some(api.account_sid().into()),
        twilio_rest: Some(api.base.clone()),
        tweak: |settings| settings.engine.twilio.phone_number = Some("+18005550100".into()),
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000901";
    call_until_transferred(&app, call_sid, "+14155550101").await;
    let from = [
        ("CallSid", call_sid),
        ("From", "+14155550101"),
        ("To", "+18005550100"),
    ];
    let (_, twiml) = app.post_twilio("/twilio/voice/next", &from).await;
    let whisper = format!("{}/twilio/voice/whisper?call={call_sid}", app.base);
    assert!(
        twiml.contains(&format!(r#"<Number url="{whisper}">{HUMAN}</Number>"#)),
        "{twiml}"
    );
    let texts = api
        .wait_for("messages", 1, 5 * SECOND)
        .await
        .expect("the person is texted");
    assert_eq!(texts[0].field("To"), Some(HUMAN));
    let body = texts[0].field("Body").unwrap_or_default();
    assert!(
        body.contains(&format!("{}/actors/calls/{call_sid}", app.base)),
        "{body}"
    );
    assert!(body.contains("+14155550101"), "{body}");

    // The person answers: Twilio fetches the whisper for their leg.
    let leg = [
        ("CallSid", "CA00000000000000000000000000000902"),
        ("ParentCallSid", call_sid),
        ("Direction", "outbound-dial"),
        ("From", "+18005550100"),
        ("To", HUMAN),
    ];
    let path = whisper.trim_start_matches(&app.base);
    let (status, said) = app.post_twilio(path, &leg).await;
    assert_eq!(status, 200, "{said}");
    assert!(said.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Incoming transfer: a caller at "#), "{said}");
    assert!(
        said.contains("assistant, asked for a person. They last said"),
        "{said}"
    );
    assert!(
        !said.contains("<Dial") && !said.contains("+14155550101"),
        "{said}"
    );
    let (status, _) = support::unsigned_post(&app, path, &leg).await;
    assert_eq!(status, 403);
    let (status, _) = app.post_twilio("/twilio/voice/whisper", &leg).await;
    assert_eq!(status, 400, "no call named");

    // Nobody answered: the caller is back with the assistant, the person is told.
    let mut result = from.to_vec();
    result.extend([("DialCallStatus", "no-answer"), ("DialBridged", "false")]);
    let (status, twiml) = app.post_twilio("/twilio/voice/dial-result", &result).await;
    assert_eq!(status, 200, "{twiml}");
    let texts = api
        .wait_for("messages", 2, 5 * SECOND)
        .await
        .expect("told again");
    let missed = texts[1].field("Body").unwrap_or_default();
    assert!(
        missed.starts_with("Missed transfer (no-answer)"),
        "{missed}"
    );
    let mut back = LiveCall::follow(&twiml, Some(TOKEN), call_sid)
        .await
        .expect("the caller is back");
    support::voice::greeting_played_out(&mut back).await;
    let instructions = app
        .mock
        .stats()
        .last_session
        .as_ref()
        .and_then(|s| s["instructions"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(instructions.contains("schedule_callback"), "{instructions}");
    back.hang_up().await.expect("hang up");
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("no actor left");
    app.handle.stop(false).await;
    api.stop().await;
}

/// A transfer nobody answered, then a voicemail: the assistant is back, the caller asks to
/// leave a message, the assistant calls `take_voicemail`, the stream ends and
/// `/twilio/voice/next` answers `<Record>` with its transcription; the simulated Twilio
/// records, posts the `action` and the transcription, which joins the customer's record and
/// reaches the person by text — once, however often Twilio retries.
#[actix_web::test]
async fn after_a_missed_transfer_the_caller_leaves_a_voicemail() {
    let api = CallsApi::start(TOKEN, &[]).expect("simulated Twilio starts");
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            script: script(
                r#"{"turns": [
                        {"say": "Hi."},
                        {"call": {"name": "escalate_to_human", "arguments": {"reason": "wants a manager"}}},
                        {"say": "Putting you through now."}],
                    "resumed": [
                        {"say": "Sorry about that. Shall I take a message?"},
                        {"call": {"name": "take_voicemail", "arguments": {}}},
                        {"say": "Of course. Please leave your message after the beep."}]}"#,
            ),
            ..MockOptions::default()
        },
        human_number: Some(HUMAN.into()),
        auth_token: Some(TOKEN.into()),
        account_sid: Some(api.account_sid().into()),
        twilio_rest: Some(api.base.clone()),
        tweak: |settings| settings.engine.twilio.phone_number = Some("+18005550100".into()),
        ..AppOptions::default()
    })
    .await;
    let caller = "+14155550111";
    let call_sid = "CA00000000000000000000000000000911";
    call_until_transferred(&app, call_sid, caller).await;
    let from = [
        ("CallSid", call_sid),
        ("From", caller),
        ("To", "+18005550100"),
    ];
    let (_, twiml) = app.post_twilio("/twilio/voice/next", &from).await;
    assert!(twiml.contains("<Dial"), "{twiml}");

    // Nobody answered: back to the assistant, which offers to take a message.
    let mut result = from.to_vec();
    result.extend([("DialCallStatus", "no-answer"), ("DialBridged", "false")]);
    let (status, twiml) = app.post_twilio("/twilio/voice/dial-result", &result).await;
    assert_eq!(status, 200, "{twiml}");
    let mut back = LiveCall::follow(&twiml, Some(TOKEN), call_sid)
        .await
        .expect("the caller is back");
    support::voice::greeting_played_out(&mut back).await;
    let session = app.mock.stats().last_session.unwrap_or_default();
    let offered = session["tools"].as_array().cloned().unwrap_or_default();
    assert!(
        offered.iter().any(|t| t["name"] == "take_voicemail"),
        "{offered:?}"
    );
    let instructions = session["instructions"].as_str().unwrap_or_default();
    assert!(instructions.contains("take_voicemail"), "{instructions}");
    // "Yes, I'll leave a message": the assistant takes the voicemail and the stream ends.
    back.say(&sine_ulaw(320.0, 1000, 0.6)).await;
    back.wait_for(|e| matches!(e, Event::Closed { .. }), 20 * SECOND)
        .await
        .expect("the stream closes for the voicemail");
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("the call's actor is done");
    let record = app.call_record(call_sid).await;
    assert_eq!(
        record.outcome,
        Some(actors::domain::records::CallOutcome::Voicemail)
    );
    assert!(record.tools_used.iter().any(|t| t == "take_voicemail"));

    let (status, twiml) = app.post_twilio("/twilio/voice/next", &from).await;
    assert_eq!(status, 200, "{twiml}");
    let record_verb = format!(
        r#"<Record action="{base}/twilio/voice/voicemail-done" method="POST" maxLength="120" playBeep="true" transcribe="true" transcribeCallback="{base}/twilio/voice/voicemail-transcription"/>"#,
        base = app.base
    );
    assert!(twiml.contains(&record_verb), "{twiml}");
    assert!(
        twiml.contains("<Say>Please leave your message after the beep"),
        "{twiml}"
    );

    let said = "Hi, this is Dana, please call me back about my order 1001.";
    let left = leave_voicemail(&twiml, Some(TOKEN), call_sid, caller, "+18005550100", said)
        .await
        .expect("Twilio records and calls back");
    assert!(left.transcribed);
    assert!(
        left.action_twiml.ends_with("<Hangup/></Response>"),
        "{}",
        left.action_twiml
    );
    assert!(
        left.action_twiml.contains("<Say>Thank you"),
        "{}",
        left.action_twiml
    );

    let customer = app.customer_record(caller).await;
    assert_eq!(customer.voicemails.len(), 1, "{customer:?}");
    let voicemail = &customer.voicemails[0];
    assert_eq!(voicemail.text.as_deref(), Some(said));
    assert_eq!(voicemail.call_sid, call_sid);
    assert_eq!(
        voicemail.recording_sid.as_deref(),
        Some(left.recording_sid.as_str())
    );
    assert_eq!(
        voicemail.recording_url.as_deref(),
        Some(left.recording_url.as_str())
    );

    // The call's page shows it.
    let mut page = awc::Client::default()
        .get(format!("{}/actors/calls/{call_sid}", app.base))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .expect("/actors/calls answers");
    assert_eq!(page.status(), 200);
    let page: serde_json::Value = page.json().await.expect("JSON");
    assert_eq!(page["outcome"], "voicemail");
    assert_eq!(page["voicemails"][0]["text"], said, "{page}");

    // Texts: the handover, the missed transfer, then the voicemail.
    let texts = api
        .wait_for("messages", 3, 5 * SECOND)
        .await
        .expect("the person gets the voicemail");
    assert_eq!(texts[2].field("To"), Some(HUMAN));
    let body = texts[2].field("Body").unwrap_or_default();
    assert!(
        body.starts_with(&format!("Voicemail from {caller}: \"{said}\"")),
        "{body}"
    );
    assert!(
        body.contains(&format!("/actors/calls/{call_sid}")),
        "{body}"
    );

    // Twilio retrying the same callback changes nothing.
    let transcription = [
        ("CallSid", call_sid),
        ("From", caller),
        ("To", "+18005550100"),
        ("TranscriptionSid", &*format!("TR{}", &call_sid[2..])),
        ("TranscriptionText", said),
        ("TranscriptionStatus", "completed"),
        ("RecordingSid", left.recording_sid.as_str()),
        ("RecordingUrl", left.recording_url.as_str()),
    ];
    let path = "/twilio/voice/voicemail-transcription";
    let (status, _) = app.post_twilio(path, &transcription).await;
    assert_eq!(status, 200);
    assert_eq!(app.customer_record(caller).await.voicemails.len(), 1);

    // Bad input: refused, nothing stored.
    let (status, _) = support::unsigned_post(&app, path, &transcription).await;
    assert_eq!(status, 403);
    let other = "+14155550122";
    let bad = |key: &'static str, value: &'static str| {
        let mut form: Vec<(&str, &str)> = transcription
            .iter()
            .filter(|(k, _)| *k != key)
            .copied()
            .collect();
        form.retain(|(k, _)| *k != "From");
        form.push(("From", other));
        if !value.is_empty() {
            form.push((key, value));
        }
        form
    };
    for (key, value) in [
        ("TranscriptionStatus", ""),
        ("TranscriptionStatus", "maybe"),
        ("RecordingUrl", "javascript:alert(1)"),
        ("RecordingSid", "RE../../x"),
        ("CallSid", ""),
    ] {
        let (status, body) = app.post_twilio(path, &bad(key, value)).await;
        assert_eq!(status, 400, "{key}={value}: {body}");
    }
    let (status, _) = support::unsigned_post(&app, "/twilio/voice/voicemail-done", &from).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .post_twilio("/twilio/voice/voicemail-done", &[("From", caller)])
        .await;
    assert_eq!(status, 400, "no CallSid");
    let store = &app.engine.shared().store;
    assert_eq!(store.customer(other).await.expect("store readable"), None);

    app.wait_until_idle(5 * SECOND)
        .await
        .expect("no actor left");
    app.handle.stop(false).await;
    api.stop().await;
}
