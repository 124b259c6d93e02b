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
use switchboard::sim::twilio::{sine_ulaw, Event, LiveCall};

const TOKEN: &str = "twilio-token";
const HUMAN: &str = "+15555550100";
const SECOND: Duration = Duration::from_secs(1);

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
    let mut call = LiveCall::dial(
        &app.base,
        Some(TOKEN),
        call_sid,
        "+14155550101",
        "+18005550100",
    )
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
