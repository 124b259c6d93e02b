//! Call patterns (issue 9) end to end: the simulated Twilio reads the TwiML it is answered
//! with the way Twilio does — `<Start><Transcription>`, `<Start><Recording>`, the consent
//! notice, `<Gather>` — presses keys, and sends the transcription and recording callbacks,
//! signed, to the URLs the TwiML named; the emulator is the model.

mod support;

use std::time::Duration;

use actors::domain::records::{AudioMode, CallOutcome, CallRecord};
use serde_json::Value;
use support::voice::{greeting_played_out, is_media};
use support::{script, spawn_app, unsigned_post, AppOptions, FakeTwilioRest, TestApp};
use switchboard::sim::mock_openai::MockOptions;
use switchboard::sim::twilio::{
    parse_document, Element, Event, ForkTrack, LiveCall, OneWayStream, TranscriptionEvent,
    TwilioWebhooks,
};

const SECOND: Duration = Duration::from_secs(1);
const TOKEN: &str = "call-patterns-auth-token";
const FROM: &str = "+14155550101";
const TO: &str = "+18005550100";
const HUMAN: &str = "+15555550100";

fn hooks() -> TwilioWebhooks {
    TwilioWebhooks::new(Some(TOKEN))
}

/// A signed app whose voice settings `tweak` sets.
async fn app_with(tweak: fn(&mut switchboard::config::Settings)) -> TestApp {
    spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        mock: MockOptions {
            script: script(r#"[{"say": "Hi there."}]"#),
            ..MockOptions::default()
        },
        tweak,
        ..AppOptions::default()
    })
    .await
}

/// Twilio's incoming-call request, signed; the TwiML it is answered with.
async fn answer(app: &TestApp, call_sid: &str) -> Element {
    let (status, body) = hooks()
        .post(
            &format!("{}/twilio/voice", app.base),
            &[
                ("CallSid", call_sid),
                ("AccountSid", "AC00000000000000000000000000000000"),
                ("From", FROM),
                ("To", TO),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
            ],
        )
        .await
        .expect("the webhook answers");
    assert_eq!(status, 200, "{body}");
    parse_document(&body).expect("TwiML Twilio can read")
}

/// The verbs of a document, in order.
fn verbs(doc: &Element) -> Vec<&str> {
    doc.children.iter().map(|v| v.name.as_str()).collect()
}

/// `/actors/calls/{sid}` as JSON (the transcript page's data).
async fn transcript_page(app: &TestApp, call_sid: &str) -> Value {
    let mut response = awc::Client::default()
        .get(format!("{}/actors/calls/{call_sid}", app.base))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .expect("the dashboard answers");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

/// Waits for the record of `call_sid` to satisfy `done`.
async fn record_where(
    app: &TestApp,
    call_sid: &str,
    done: impl Fn(&CallRecord) -> bool,
) -> CallRecord {
    let deadline = std::time::Instant::now() + 5 * SECOND;
    loop {
        let record = app
            .engine
            .shared()
            .store
            .get_call(call_sid)
            .await
            .expect("store");
        match record {
            Some(record) if done(&record) => return record,
            other => assert!(
                std::time::Instant::now() < deadline,
                "record of {call_sid} never as expected: {other:?}"
            ),
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn texts(turns: &Value) -> Vec<String> {
    turns
        .as_array()
        .map(|turns| {
            turns
                .iter()
                .filter_map(|t| t["text"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn transcription_starts_before_the_assistant_and_every_callback_is_kept() {
    let app = app_with(|s| s.engine.voice.transcription = true).await;
    let call_sid = "CA00000000000000000000000000000901";
    let mut call = LiveCall::dial(&app.base, Some(TOKEN), call_sid, FROM, TO)
        .await
        .expect("the call connects");
    let doc = parse_document(&call.snapshot().twiml).expect("TwiML");
    assert_eq!(verbs(&doc), ["Start", "Connect"]);
    let transcription = doc.started("Transcription");
    let url = transcription
        .first()
        .and_then(|t| t.attr("statusCallbackUrl"))
        .expect("a statusCallbackUrl")
        .to_owned();
    assert_eq!(url, format!("{}/twilio/transcription", app.base));
    assert_eq!(transcription[0].attr("track"), Some("both_tracks"));
    greeting_played_out(&mut call).await;

    // Twilio's callbacks while the call is live, in the order Twilio sends them.
    let hooks = hooks();
    for (seq, event) in [
        TranscriptionEvent::Started,
        TranscriptionEvent::Content {
            track: "outbound_track",
            text: "Hi there.",
        },
        TranscriptionEvent::Content {
            track: "inbound_track",
            text: "Where is my order 1001?",
        },
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = hooks
            .transcription(&url, call_sid, seq as u64, event)
            .await
            .expect("callback answered");
        assert_eq!(status, 200, "{body}");
    }
    let live = transcript_page(&app, call_sid).await;
    assert_eq!(live["live"], true);
    assert_eq!(
        texts(&live["transcriptions"]),
        [
            "transcription started (en-US)",
            "Hi there.",
            "Where is my order 1001?"
        ]
    );
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    // The call's own final record keeps them, and the stop that comes after it.
    hooks
        .transcription(&url, call_sid, 3, TranscriptionEvent::Stopped)
        .await
        .expect("callback answered");
    let record = record_where(&app, call_sid, |r| {
        r.outcome == Some(CallOutcome::Completed) && r.transcriptions.len() == 4
    })
    .await;
    assert_eq!(record.audio_mode, AudioMode::Pcmu);
    assert_eq!(record.transcriptions[2].text, "Where is my order 1001?");
    let ended = transcript_page(&app, call_sid).await;
    assert_eq!(ended["live"], false);
    assert_eq!(texts(&ended["transcriptions"]).len(), 4);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_call_switchboard_never_bridged_keeps_its_transcript() {
    let app = app_with(|s| s.engine.voice.transcription = true).await;
    let call_sid = "CA00000000000000000000000000000902";
    let url = format!("{}/twilio/transcription", app.base);
    let hooks = hooks();
    for (seq, event) in [
        TranscriptionEvent::Started,
        TranscriptionEvent::Content {
            track: "inbound_track",
            text: "I'd like to speak to someone about a refund",
        },
        TranscriptionEvent::Stopped,
    ]
    .into_iter()
    .enumerate()
    {
        let (status, _) = hooks
            .transcription(&url, call_sid, seq as u64, event)
            .await
            .expect("callback answered");
        assert_eq!(status, 200);
    }
    let record = record_where(&app, call_sid, |r| r.transcriptions.len() == 3).await;
    assert_eq!(record.audio_mode, AudioMode::Unbridged);
    assert_eq!(record.outcome, Some(CallOutcome::NotBridged));
    let page = transcript_page(&app, call_sid).await;
    assert!(texts(&page["transcriptions"])
        .iter()
        .any(|t| t.contains("refund")));
    // Found by an operator's search too.
    let found = app
        .engine
        .shared()
        .store
        .find_calls_mentioning("REFUND", 5)
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn consent_is_spoken_and_the_call_recorded_before_the_assistant() {
    let app = app_with(|s| {
        s.engine.voice.consent_notice = "This call is recorded & transcribed for quality.".into();
        s.engine.voice.record = true;
    })
    .await;
    let call_sid = "CA00000000000000000000000000000903";
    let mut call = LiveCall::dial(&app.base, Some(TOKEN), call_sid, FROM, TO)
        .await
        .expect("the call connects");
    let doc = parse_document(&call.snapshot().twiml).expect("TwiML");
    assert_eq!(verbs(&doc), ["Start", "Say", "Connect"]);
    assert_eq!(
        doc.child("Say").map(|s| s.text.as_str()),
        Some("This call is recorded & transcribed for quality.")
    );
    let recording = doc.started("Recording");
    let noun = recording.first().expect("<Start><Recording>");
    let url = noun
        .attr("recordingStatusCallback")
        .expect("a status callback")
        .to_owned();
    assert_eq!(url, format!("{}/twilio/recording", app.base));
    assert_eq!(noun.attr("channels"), Some("dual"));
    assert_eq!(
        noun.attr("recordingStatusCallbackEvent"),
        Some("in-progress completed absent")
    );
    greeting_played_out(&mut call).await;
    let recording_sid = "RE00000000000000000000000000000903";
    let (status, _) = hooks()
        .recording(&url, call_sid, recording_sid, "in-progress", None)
        .await
        .expect("callback answered");
    assert_eq!(status, 200);
    let live = transcript_page(&app, call_sid).await;
    assert_eq!(live["recordings"][0]["sid"], recording_sid);
    assert_eq!(live["recordings"][0]["status"], "in-progress");
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    let (status, _) = hooks()
        .recording(&url, call_sid, recording_sid, "completed", Some(14))
        .await
        .expect("callback answered");
    assert_eq!(status, 200);
    let record = record_where(&app, call_sid, |r| {
        r.outcome == Some(CallOutcome::Completed)
            && r.recordings
                .first()
                .is_some_and(|x| x.status == "completed")
    })
    .await;
    let entry = &record.recordings[0];
    assert_eq!(record.recordings.len(), 1);
    assert_eq!(entry.duration_secs, Some(14));
    assert_eq!(entry.channels, Some(2));
    assert!(entry
        .url
        .as_deref()
        .is_some_and(|u| u.ends_with(&format!("/Recordings/{recording_sid}"))));
    let page = transcript_page(&app, call_sid).await;
    assert_eq!(page["recordings"][0]["duration_secs"], 14);
    // The page a person opens renders them (and the line's transcription).
    let mut html = awc::Client::default()
        .get(format!("{}/actors/calls/{call_sid}", app.base))
        .send()
        .await
        .expect("the page answers");
    let html = String::from_utf8_lossy(&html.body().await.expect("body")).into_owned();
    assert!(html.contains("data.recordings") && html.contains("data.transcriptions"));
    app.handle.stop(false).await;
}

/// A prompts folder of the consent-audio test's own (the other prompts are built in).
fn consent_prompts_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("switchboard-consent-{}", std::process::id()))
}

#[actix_web::test]
async fn a_consent_notice_in_the_prompts_folder_is_played_from_our_url() {
    let dir = consent_prompts_dir();
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("consent.wav"), b"RIFF-not-really-a-wav").expect("write");
    let app = app_with(|s| {
        s.engine.voice.prompts_dir = consent_prompts_dir();
        s.engine.voice.consent_notice = "consent.wav".into();
    })
    .await;
    let doc = answer(&app, "CA00000000000000000000000000000912").await;
    assert_eq!(verbs(&doc), ["Play", "Connect"]);
    let url = doc.child("Play").map(|p| p.text.clone()).expect("a <Play>");
    assert_eq!(url, format!("{}/prompts/consent.wav", app.base));
    // Twilio fetches it: the file, and nothing else from that folder.
    let mut audio = awc::Client::default()
        .get(&url)
        .send()
        .await
        .expect("answers");
    assert_eq!(audio.status(), 200);
    assert_eq!(
        audio
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("audio/wav")
    );
    assert_eq!(
        &audio.body().await.expect("body")[..],
        b"RIFF-not-really-a-wav"
    );
    for other in ["hold.wav", "..%2Fconsent.wav", "consent.mp3"] {
        let response = awc::Client::default()
            .get(format!("{}/prompts/{other}", app.base))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 404, "{other}");
    }
    app.handle.stop(false).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn a_consent_notice_given_as_audio_is_played() {
    let app = app_with(|s| {
        s.engine.voice.consent_notice = "https://cdn.example.com/consent.mp3".into();
    })
    .await;
    let doc = answer(&app, "CA00000000000000000000000000000904").await;
    assert_eq!(verbs(&doc), ["Play", "Connect"]);
    assert_eq!(
        doc.child("Play").map(|p| p.text.as_str()),
        Some("https://cdn.example.com/consent.mp3")
    );
    app.handle.stop(false).await;
}

/// The menu's `<Gather>`: its action URL and what it says.
fn gather(doc: &Element) -> (String, String) {
    let gather = doc.child("Gather").expect("a <Gather>");
    assert_eq!(gather.attr("numDigits"), Some("1"));
    assert_eq!(gather.attr("actionOnEmptyResult"), Some("true"));
    (
        gather.attr("action").expect("an action").to_owned(),
        gather
            .child("Say")
            .map(|s| s.text.clone())
            .unwrap_or_default(),
    )
}

/// The caller presses `digits` (or nothing) at the menu; the TwiML that answers it.
async fn press(action: &str, call_sid: &str, digits: Option<&str>) -> Element {
    parse_document(&press_raw(action, call_sid, digits).await).expect("TwiML")
}

async fn press_raw(action: &str, call_sid: &str, digits: Option<&str>) -> String {
    let (status, body) = hooks()
        .gather(action, call_sid, FROM, TO, digits)
        .await
        .expect("the menu answers");
    assert_eq!(status, 200, "{body}");
    body
}

#[actix_web::test]
async fn the_menu_up_front_repeats_once_then_takes_its_default_the_assistant() {
    let app = app_with(|s| s.engine.voice.menu.first = true).await;
    let call_sid = "CA00000000000000000000000000000905";
    let doc = answer(&app, call_sid).await;
    assert_eq!(verbs(&doc), ["Gather"]);
    let (action, prompt) = gather(&doc);
    assert!(
        action.starts_with(&format!("{}/twilio/voice/menu?", app.base)),
        "{action}"
    );
    assert!(prompt.contains("press 1"), "{prompt}");
    // A key the menu does not have: said again, once.
    let again = press(&action, call_sid, Some("9")).await;
    assert_eq!(verbs(&again), ["Say", "Gather"]);
    let (second, _) = gather(&again);
    // Nothing pressed the second time: the default, the assistant.
    let body = press_raw(&second, call_sid, None).await;
    let assistant = parse_document(&body).expect("TwiML");
    assert_eq!(verbs(&assistant), ["Connect"]);
    // Twilio follows it: the stream connects and the assistant speaks.
    let mut call = LiveCall::follow(&body, Some(TOKEN), call_sid)
        .await
        .expect("the stream opens");
    call.wait_for(is_media, 5 * SECOND).await.expect("greeting");
    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn the_menu_dials_a_person_or_texts_the_link() {
    let rest = FakeTwilioRest::start();
    let app = spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        account_sid: Some("AC00000000000000000000000000000000".into()),
        twilio_rest: Some(rest.base.clone()),
        human_number: Some(HUMAN.into()),
        tweak: |s| {
            s.engine.voice.menu.first = true;
            s.engine.twilio.phone_number = Some(TO.into());
        },
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000906";
    let (action, _) = gather(&answer(&app, call_sid).await);
    let person = press(&action, call_sid, Some("2")).await;
    assert_eq!(verbs(&person), ["Say", "Dial"]);
    let dial = person.child("Dial").expect("dial");
    assert_eq!(dial.text, HUMAN);
    assert_eq!(
        dial.attr("action"),
        Some(format!("{}/twilio/voice/dial-result", app.base).as_str())
    );

    let texted = press(&action, "CA00000000000000000000000000000907", Some("3")).await;
    assert_eq!(verbs(&texted), ["Say", "Hangup"]);
    let sent = rest.wait_for(1, 5 * SECOND).await;
    assert!(sent[0].path.ends_with("/Messages.json"), "{}", sent[0].path);
    assert_eq!(sent[0].field("To"), Some(FROM));
    assert_eq!(sent[0].field("From"), Some(TO));
    let body = sent[0].field("Body").unwrap_or_default();
    assert!(body.contains(&format!("{}/chat", app.base)), "{body}");
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn without_a_model_new_calls_get_the_menu_and_no_input_reaches_a_person() {
    let app = spawn_app(AppOptions {
        api_key: "sk-invalid".into(),
        auth_token: Some(TOKEN.into()),
        human_number: Some(HUMAN.into()),
        ..AppOptions::default()
    })
    .await;
    // The first call finds the key refused (the caller goes to a person, as before).
    let mut first = LiveCall::dial(
        &app.base,
        Some(TOKEN),
        "CA00000000000000000000000000000908",
        FROM,
        TO,
    )
    .await
    .expect("the call connects");
    first
        .wait_for(|e| matches!(e, Event::Closed { .. }), 15 * SECOND)
        .await
        .expect("the stream ends");
    app.expect_idle().await;
    assert!(app.engine.shared().health.model_unreachable());
    // The next caller is not sent to a model that cannot answer: the menu, without it.
    let call_sid = "CA00000000000000000000000000000909";
    let doc = answer(&app, call_sid).await;
    assert_eq!(verbs(&doc), ["Gather"]);
    let (action, prompt) = gather(&doc);
    assert!(action.contains("fallback=1"), "{action}");
    assert!(prompt.starts_with("Sorry"), "{prompt}");
    // The assistant's key does nothing then; twice nothing → a person.
    let again = press(&action, call_sid, Some("1")).await;
    assert_eq!(verbs(&again), ["Say", "Gather"]);
    let (second, _) = gather(&again);
    let person = press(&second, call_sid, None).await;
    assert_eq!(verbs(&person), ["Say", "Dial"]);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn bad_input_on_the_new_routes_is_refused_and_nothing_is_stored() {
    let app = app_with(|s| s.engine.voice.menu.first = true).await;
    let store = app.engine.shared().store.clone();
    let call_sid = "CA00000000000000000000000000000910";
    let transcription = [
        ("CallSid", call_sid),
        ("TranscriptionEvent", "transcription-content"),
        ("Track", "inbound_track"),
        ("Final", "true"),
        (
            "TranscriptionData",
            r#"{"transcript":"forged","confidence":1}"#,
        ),
    ];
    let recording = [
        ("CallSid", call_sid),
        ("RecordingSid", "RE00000000000000000000000000000910"),
        ("RecordingStatus", "completed"),
    ];
    // Not signed: 403, nothing processed.
    for (path, params) in [
        ("/twilio/transcription", &transcription[..]),
        ("/twilio/recording", &recording[..]),
        (
            "/twilio/voice/menu?attempt=1&fallback=0",
            &[("CallSid", call_sid), ("Digits", "1")][..],
        ),
    ] {
        let (status, body) = unsigned_post(&app, path, params).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // Signed but missing or malformed fields: 400 naming the field.
    let hooks = hooks();
    for (path, params, field) in [
        ("/twilio/recording", &recording[1..], "CallSid"),
        (
            "/twilio/recording",
            &[recording[0], recording[2]][..],
            "RecordingSid",
        ),
        (
            "/twilio/recording",
            &[recording[0], ("RecordingSid", "RE../../x"), recording[2]][..],
            "RecordingSid",
        ),
        ("/twilio/recording", &recording[..2], "RecordingStatus"),
        ("/twilio/transcription", &transcription[1..], "CallSid"),
        (
            "/twilio/transcription",
            &[
                transcription[0],
                transcription[1],
                ("TranscriptionData", "{not json"),
            ][..],
            "TranscriptionData",
        ),
        (
            "/twilio/voice/menu?attempt=1&fallback=0",
            &[("Digits", "1")][..],
            "CallSid",
        ),
    ] {
        let (status, body) = hooks
            .post(&format!("{}{path}", app.base), params)
            .await
            .expect("answers");
        assert_eq!(status, 400, "{path} {params:?}: {body}");
        assert!(body.contains(field), "{path}: {body}");
    }
    let (status, body) = hooks
        .post(
            &format!("{}/twilio/voice/menu", app.base),
            &[("CallSid", call_sid), ("Digits", "1")],
        )
        .await
        .expect("answers");
    assert_eq!(status, 400, "a menu answer without its query: {body}");
    // Oversize: refused before it is read.
    let big = "x".repeat(70 * 1024);
    for path in [
        "/twilio/recording",
        "/twilio/voice/menu?attempt=1&fallback=0",
    ] {
        let (status, _) = unsigned_post(&app, path, &[("CallSid", call_sid), ("Body", &big)]).await;
        assert_eq!(status, 413, "{path}");
    }
    assert_eq!(store.get_call(call_sid).await.expect("store"), None);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn in_human_mode_people_talk_and_switchboard_transcribes_and_remembers() {
    let app = spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        human_number: Some(HUMAN.into()),
        tweak: |s| s.engine.voice.mode = actors::config::VoiceMode::Human,
        ..AppOptions::default()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000911";
    let (status, twiml) = hooks()
        .post(
            &format!("{}/twilio/voice", app.base),
            &[("CallSid", call_sid), ("From", FROM), ("To", TO)],
        )
        .await
        .expect("the webhook answers");
    assert_eq!(status, 200, "{twiml}");
    let doc = parse_document(&twiml).expect("TwiML");
    assert_eq!(verbs(&doc), ["Start", "Dial"]);
    let stream = doc.started("Stream");
    let stream = stream.first().expect("<Start><Stream>");
    assert_eq!(stream.attr("track"), Some("both_tracks"));
    assert_eq!(
        stream.attr("url"),
        Some(format!("{}/twilio/media", app.ws_base()).as_str())
    );
    assert_eq!(doc.child("Dial").map(|d| d.text.as_str()), Some(HUMAN));

    // Twilio forks both tracks while the person talks with the caller.
    let mut fork = OneWayStream::open(&twiml, Some(TOKEN), call_sid)
        .await
        .expect("the one-way stream opens");
    let speech = support::voice::speech();
    fork.silence(200).await.expect("silence");
    fork.speak(ForkTrack::Inbound, &speech)
        .await
        .expect("caller");
    fork.silence(800).await.expect("silence");
    fork.speak(ForkTrack::Outbound, &speech[..4000])
        .await
        .expect("person");
    fork.silence(800).await.expect("silence");
    // The two-party transcript is live on /actors.
    let deadline = std::time::Instant::now() + 5 * SECOND;
    let live = loop {
        let page = transcript_page(&app, call_sid).await;
        if page["transcript"].as_array().is_some_and(|t| t.len() >= 2) {
            break page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no live transcript: {page}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(live["live"], true);
    assert_eq!(live["audio_mode"], "listen");
    assert_eq!(live["transcript"][0]["role"], "user");
    assert_eq!(live["transcript"][1]["role"], "assistant");
    assert!(live["transcript"][1]["text"]
        .as_str()
        .is_some_and(|t| t.contains("seconds of audio")));
    // Bad audio on the fork is dropped and counted, as on any media socket (SPEC §12).
    let bad = r#"switchboard_bad_frames_total{reason="bad_base64"}"#;
    let before = app.metric(bad).await;
    let frame = format!(
        r#"{{"event":"media","streamSid":"{}","media":{{"track":"inbound","payload":"%%%"}}}}"#,
        fork.stream_sid()
    );
    fork.send_raw(&frame).await.expect("sent");
    let deadline = std::time::Instant::now() + 5 * SECOND;
    while app.metric(bad).await < before + 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bad frame was not counted"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = fork.stop().await.expect("stop");
    assert!(
        sent.is_empty(),
        "nothing is sent on a one-way stream: {sent:?}"
    );
    app.expect_idle().await;
    assert_eq!(app.mock.stats().transcription_sessions, 2);
    assert_eq!(app.mock.stats().responses_started, 0);
    let record = record_where(&app, call_sid, |r| {
        r.outcome == Some(CallOutcome::Completed)
    })
    .await;
    assert_eq!(record.audio_mode, AudioMode::Listened);
    assert_eq!(record.transcript.len(), 2);
    // What was said is in the customer's memory for the next SMS or call.
    let customer = app.customer_record(FROM).await;
    let summary = customer
        .calls
        .last()
        .and_then(|c| c.summary.clone())
        .expect("a summary");
    // Written by the chat model (here the emulator's), from the two-party transcript.
    assert!(!summary.is_empty());
    let told = app
        .mock
        .stats()
        .last_chat_messages
        .expect("the chat model was asked")
        .to_string();
    assert!(told.contains("call notes"), "{told}");
    assert!(
        told.contains("Caller: [") && told.contains("Colleague: ["),
        "{told}"
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn human_mode_without_a_number_to_dial_apologises() {
    let app = spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        tweak: |s| s.engine.voice.mode = actors::config::VoiceMode::Human,
        ..AppOptions::default()
    })
    .await;
    let doc = answer(&app, "CA00000000000000000000000000000913").await;
    assert_eq!(verbs(&doc), ["Say", "Hangup"]);
    assert!(doc.started("Stream").is_empty());
    app.handle.stop(false).await;
}
