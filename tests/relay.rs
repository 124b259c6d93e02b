//! End-to-end voice over ConversationRelay: a fake ConversationRelay (a real WebSocket
//! client speaking Twilio's JSON) calls the real server, which answers with the offline local
//! model — no OpenAI key at all. Also the Real-Time Transcription callbacks.

mod support;

use std::time::Duration;

use actix_codec::Framed;
use actors::config::VoiceMode;
use actors::domain::records::{AudioMode, CallOutcome, CallRecord};
use actors::domain::transcript::{Role, Transcript};
use actors::protocol::twilio::relay::{
    parse_outbound, Dtmf, Inbound, Interrupt, Outbound, Prompt, Setup,
};
use actors::registry::messages::{CallHandle, FindCall};
use awc::ws::{CloseCode, Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt as _, StreamExt as _};
use support::{spawn_app, AppOptions, FakeTwilioRest, TestApp};
use switchboard::sim::mock_openai::MockOptions;

const SECOND: Duration = Duration::from_secs(1);
/// The customer of order 1001 in `config/catalog/orders.json`.
const FROM: &str = "+14155550101";
const TO: &str = "+18005550100";
const HUMAN: &str = "+15555550100";

/// No API key: `/twilio/voice` answers relay TwiML and the local model talks.
fn relay_options() -> AppOptions {
    AppOptions {
        api_key: String::new(),
        ..AppOptions::default()
    }
}

/// What the fake ConversationRelay got from the server.
#[derive(Debug)]
enum Heard {
    Message(Outbound),
    Closed(Option<CloseCode>),
}

/// Twilio's side of one ConversationRelay socket.
struct FakeRelay {
    socket: Framed<BoxedSocket, Codec>,
}

impl FakeRelay {
    /// Opens `/twilio/relay`, signing the handshake when `auth_token` is given.
    async fn connect(app: &TestApp, auth_token: Option<&str>) -> Result<FakeRelay, String> {
        let url = format!("{}/twilio/relay", app.ws_base());
        let mut upgrade = awc::Client::new().ws(url.as_str());
        if let Some(token) = auth_token {
            let signature = actors::protocol::twilio::signature::compute(token, &url, &[]);
            upgrade = upgrade.set_header("X-Twilio-Signature", signature);
        }
        let (_, socket) = upgrade.connect().await.map_err(|err| format!("{err:?}"))?;
        Ok(FakeRelay { socket })
    }

    /// Opens an unsigned `/twilio/relay`, which the test expects to be accepted.
    async fn open(app: &TestApp) -> FakeRelay {
        FakeRelay::connect(app, None).await.expect("relay connects")
    }

    async fn send(&mut self, message: &Inbound) {
        let text = serde_json::to_string(message).expect("inbound serializes");
        self.send_text(text).await;
    }

    async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("frame sent");
    }

    async fn setup(&mut self, call_sid: &str) {
        let mut setup = Setup {
            session_id: Some("VX00000000000000000000000000000001".into()),
            call_sid: call_sid.into(),
            from: Some(FROM.into()),
            to: Some(TO.into()),
            call_type: Some("PSTN".into()),
            direction: Some("inbound".into()),
            call_status: Some("RINGING".into()),
            ..Setup::default()
        };
        setup.custom_parameters.insert("From".into(), FROM.into());
        self.send(&Inbound::Setup(Box::new(setup))).await;
    }

    async fn say(&mut self, words: &str) {
        self.send(&Inbound::Prompt(Prompt {
            voice_prompt: words.into(),
            lang: Some("en-US".into()),
            last: true,
        }))
        .await;
    }

    /// The next message (pings answered, other control frames skipped).
    async fn next(&mut self, within: Duration) -> Heard {
        loop {
            let frame = actix_web::rt::time::timeout(within, self.socket.next())
                .await
                .expect("the server said something in time");
            match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    let text = std::str::from_utf8(&bytes).expect("utf-8 frame");
                    return Heard::Message(parse_outbound(text).expect("a documented message"));
                }
                Some(Ok(Frame::Close(reason))) => return Heard::Closed(reason.map(|r| r.code)),
                Some(Ok(Frame::Ping(payload))) => {
                    let _ = self.socket.send(Message::Pong(payload)).await;
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => panic!("socket error: {err}"),
                None => return Heard::Closed(None),
            }
        }
    }

    /// One answer: its streamed tokens, up to the `last: true` that closes it.
    async fn answer(&mut self) -> Vec<String> {
        let mut tokens = Vec::new();
        loop {
            match self.next(5 * SECOND).await {
                Heard::Message(Outbound::Text { token, last, .. }) => {
                    if last {
                        tokens.push(token);
                        return tokens;
                    }
                    tokens.push(token);
                }
                other => panic!("expected the answer's text, got {other:?}"),
            }
        }
    }

    async fn hang_up(mut self) {
        let _ = self.socket.send(Message::Close(None)).await;
        // Drain until the server's close comes back.
        while let Ok(Some(frame)) =
            actix_web::rt::time::timeout(2 * SECOND, self.socket.next()).await
        {
            if matches!(frame, Ok(Frame::Close(_)) | Err(_)) {
                break;
            }
        }
    }
}

/// What was said in a stored call, tool turns left out.
fn spoken(record: &CallRecord) -> Vec<(Role, &str)> {
    record
        .transcript
        .turns()
        .iter()
        .filter(|t| t.role != Role::Tool)
        .map(|t| (t.role, t.text.as_str()))
        .collect()
}

/// The live call `call_sid`, if the registry knows it.
async fn find_call(app: &TestApp, call_sid: &str) -> Option<CallHandle> {
    app.engine
        .registry()
        .send(FindCall(call_sid.into()))
        .await
        .expect("registry answers")
}

/// Polls the live call's transcript until `pred` holds.
async fn wait_for_transcript(
    app: &TestApp,
    call_sid: &str,
    pred: impl Fn(&Transcript) -> bool,
) -> Transcript {
    let deadline = std::time::Instant::now() + 5 * SECOND;
    loop {
        let call = find_call(app, call_sid).await.expect("the call is live");
        let transcript = call
            .transcript
            .send(actors::call::messages::CurrentTranscript)
            .await
            .expect("the call answers");
        if pred(&transcript) {
            return transcript;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "transcript never got there: {transcript:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the registry knows the call (its `setup` was handled).
async fn wait_registered(app: &TestApp, call_sid: &str) {
    let deadline = std::time::Instant::now() + 5 * SECOND;
    loop {
        if find_call(app, call_sid).await.is_some() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{call_sid} never registered"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn without_a_key_the_voice_webhook_answers_conversation_relay_twiml() {
    let app = spawn_app(relay_options()).await;
    let call_sid = "CA00000000000000000000000000000101";
    let (status, twiml) = app
        .post_twilio(
            "/twilio/voice",
            &[("CallSid", call_sid), ("From", FROM), ("To", TO)],
        )
        .await;
    assert_eq!(status, 200);
    let relay = format!("<ConversationRelay url=\"{}/twilio/relay\"", app.ws_base());
    assert!(twiml.contains(&relay), "{twiml}");
    assert!(
        twiml.contains(&format!(
            "<Connect action=\"{}/twilio/voice/next\">",
            app.base
        )),
        "{twiml}"
    );
    for expected in [
        "welcomeGreeting=\"Thanks for calling Northwind Cycles. How can I help?\"",
        "language=\"en-US\"",
        "interruptible=\"any\"",
        "dtmfDetection=\"true\"",
        "<Parameter name=\"CallSid\" value=\"CA00000000000000000000000000000101\"/>",
        "<Parameter name=\"From\" value=\"+14155550101\"/>",
        "<Parameter name=\"To\" value=\"+18005550100\"/>",
    ] {
        assert!(twiml.contains(expected), "{expected} missing from {twiml}");
    }
    assert!(!twiml.contains("<Stream"), "{twiml}");
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_relay_call_streams_answers_keeps_what_was_heard_takes_keys_and_hands_off() {
    let app = spawn_app(AppOptions {
        human_number: Some(HUMAN.into()),
        ..relay_options()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000102";
    let mut relay = FakeRelay::open(&app).await;
    relay.setup(call_sid).await;
    wait_registered(&app, call_sid).await;

    // A question is answered in streamed tokens, closed by `last: true`.
    relay.say("where is my order 1001").await;
    let tokens = relay.answer().await;
    assert!(tokens.len() > 2, "streamed in pieces: {tokens:?}");
    let answer = tokens.concat();
    assert!(answer.contains("shipped"), "{answer}");

    // The caller talks over the answer: only what they heard stays in the transcript.
    let heard: String = tokens.iter().take(2).map(String::as_str).collect();
    relay
        .send(&Inbound::Interrupt(Interrupt {
            utterance_until_interrupt: heard.clone(),
            duration_until_interrupt_ms: Some(640),
        }))
        .await;
    let cut = format!("{}…", heard.trim_end());
    wait_for_transcript(&app, call_sid, |transcript| {
        transcript
            .turns()
            .last()
            .is_some_and(|last| last.role == Role::Assistant && last.text == cut)
    })
    .await;

    // A key press reaches the agent as text and is answered.
    relay.send(&Inbound::Dtmf(Dtmf { digit: "3".into() })).await;
    let keyed = relay.answer().await.concat();
    assert!(!keyed.trim().is_empty());

    // Asking for a person: a goodbye, then `end` with the handoff as a JSON string.
    relay.say("I want to talk to a real person").await;
    let goodbye = relay.answer().await.concat();
    assert!(!goodbye.trim().is_empty());
    let Heard::Message(Outbound::End {
        handoff_data: Some(data),
    }) = relay.next(5 * SECOND).await
    else {
        panic!("expected end with handoffData");
    };
    let data: serde_json::Value = serde_json::from_str(&data).expect("handoffData is JSON");
    assert_eq!(data["customer"], FROM);
    assert!(
        data["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{data}"
    );
    relay.hang_up().await;

    // Twilio asks the <Connect action> URL, which dials the human.
    let (status, twiml) = app
        .post_twilio(
            "/twilio/voice/next",
            &[
                ("CallSid", call_sid),
                ("From", FROM),
                ("SessionStatus", "ended"),
                ("HandoffData", &data.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains(&format!(">{HUMAN}</Number></Dial>")),
        "{twiml}"
    );
    assert!(twiml.contains("/twilio/voice/dial-result"), "{twiml}");

    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.audio_mode, AudioMode::Relay);
    assert_eq!(record.outcome, Some(CallOutcome::Escalated));
    assert_eq!(record.customer.as_deref(), Some(FROM));
    assert_eq!(record.stream_sid, "VX00000000000000000000000000000001");
    assert!(record.tools_used.iter().any(|t| t == "lookup_order"));
    assert!(record.tools_used.iter().any(|t| t == "escalate_to_human"));
    let said = spoken(&record);
    let expected = [
        (
            Role::Assistant,
            "Thanks for calling Northwind Cycles. How can I help?",
        ),
        (Role::User, "where is my order 1001"),
        (Role::Assistant, cut.as_str()),
        (Role::User, "[The caller pressed 3]"),
        (Role::Assistant, keyed.as_str()),
        (Role::User, "I want to talk to a real person"),
        (Role::Assistant, goodbye.as_str()),
    ];
    assert_eq!(said, expected);

    // The caller's words and our answers joined their thread, and the call their memory.
    let thread = app
        .engine
        .shared()
        .store
        .recent_turns(FROM, 20)
        .await
        .expect("thread readable");
    assert!(thread
        .iter()
        .any(|t| t.role == Role::User && t.text == "where is my order 1001"));
    assert!(thread
        .iter()
        .any(|t| t.role == Role::Assistant && t.text == goodbye));
    let customer = app.customer_record(FROM).await;
    assert_eq!(customer.calls.len(), 1);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn an_answer_interrupted_while_the_chat_model_thinks_is_dropped_unheard() {
    // The chat model over HTTP (the emulator, slowed down), with relay mode forced.
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            latency_ms: 600,
            ..MockOptions::default()
        },
        tweak: |settings| settings.engine.voice.mode = VoiceMode::Relay,
        ..AppOptions::default()
    })
    .await;
    let (_, twiml) = app
        .post_twilio(
            "/twilio/voice",
            &[("CallSid", "CA00000000000000000000000000000107")],
        )
        .await;
    assert!(twiml.contains("<ConversationRelay"), "{twiml}");
    let call_sid = "CA00000000000000000000000000000107";
    let mut relay = FakeRelay::open(&app).await;
    relay.setup(call_sid).await;
    relay.say("where is my order 1001").await;
    app.wait_for_mock("the chat request", 5 * SECOND, |s| s.chat_requests >= 1)
        .await;
    relay
        .send(&Inbound::Interrupt(Interrupt {
            utterance_until_interrupt: String::new(),
            duration_until_interrupt_ms: Some(0),
        }))
        .await;
    // The cancelled answer never reaches the caller.
    let early = actix_web::rt::time::timeout(SECOND, relay.socket.next()).await;
    assert!(early.is_err(), "nothing is said: {early:?}");
    relay.say("what are your opening hours").await;
    let hours = relay.answer().await;
    assert!(hours.len() > 1, "streamed: {hours:?}");
    relay.hang_up().await;
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    let said = spoken(&record);
    let hours = hours.concat();
    assert_eq!(
        said,
        vec![
            (
                Role::Assistant,
                "Thanks for calling Northwind Cycles. How can I help?"
            ),
            (Role::User, "where is my order 1001"),
            (Role::User, "what are your opening hours"),
            (Role::Assistant, hours.as_str()),
        ]
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn without_a_human_number_a_caller_asking_for_a_person_is_told_and_stays_with_the_agent() {
    let app = spawn_app(relay_options()).await;
    let call_sid = "CA00000000000000000000000000000103";
    let mut relay = FakeRelay::open(&app).await;
    relay.setup(call_sid).await;
    relay.say("can I speak to a person please").await;
    // The same rule as a Realtime call: nobody to take over, so the agent says so and
    // goes on helping instead of ending the call.
    let answer = relay.answer().await.concat();
    assert!(
        answer.contains("no human colleague is available"),
        "{answer}"
    );
    relay.say("what are your opening hours").await;
    let hours = relay.answer().await.concat();
    assert!(hours.contains("Our hours are"), "{hours}");
    relay.hang_up().await;
    let (_, twiml) = app
        .post_twilio("/twilio/voice/next", &[("CallSid", call_sid)])
        .await;
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    assert!(!twiml.contains("<Dial"), "{twiml}");
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Completed));
    assert!(record.tools_used.iter().any(|t| t == "escalate_to_human"));
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn transcription_callbacks_are_kept_in_the_call_record_and_found_by_their_words() {
    let app = spawn_app(relay_options()).await;
    let call_sid = "CA00000000000000000000000000000104";
    let mut relay = FakeRelay::open(&app).await;
    relay.setup(call_sid).await;
    wait_registered(&app, call_sid).await;

    let callback = |event: &'static str| {
        vec![
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("CallSid", call_sid),
            ("TranscriptionSid", "GT00000000000000000000000000000000"),
            ("TranscriptionEvent", event),
            ("Timestamp", "2026-09-10T18:45:21.454203Z"),
        ]
    };
    let content = |words: &'static str, is_final: &'static str| {
        let mut form = callback("transcription-content");
        form.extend([
            ("TranscriptionData", words),
            ("Final", is_final),
            ("Track", "inbound_track"),
            ("LanguageCode", "en-US"),
        ]);
        form
    };
    let mut started = callback("transcription-started");
    started.push(("LanguageCode", "en-US"));
    for form in [
        started,
        content(r#"{"transcript":"my bike has a fl"}"#, "false"),
        content(
            r#"{"transcript":"My bike has a flat tyre","confidence":0.93}"#,
            "true",
        ),
        callback("transcription-stopped"),
    ] {
        let (status, _) = app.post_twilio("/twilio/transcription", &form).await;
        assert_eq!(status, 200);
    }
    relay.hang_up().await;
    app.expect_idle().await;

    // After the call, a late result goes into the stored record.
    let (status, _) = app
        .post_twilio(
            "/twilio/transcription",
            &content(r#"{"transcript":"and a loose chain"}"#, "true"),
        )
        .await;
    assert_eq!(status, 200);
    let store = &app.engine.shared().store;
    let record = store
        .get_call(call_sid)
        .await
        .expect("store readable")
        .expect("call record");
    let kept: Vec<(Role, &str)> = record
        .transcriptions
        .iter()
        .map(|t| (t.role, t.text.as_str()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (Role::System, "transcription started (en-US)"),
            (Role::User, "My bike has a flat tyre"),
            (Role::System, "transcription stopped"),
            (Role::User, "and a loose chain"),
        ]
    );
    let found = store
        .find_calls_mentioning("FLAT TYRE", 10)
        .await
        .expect("search runs");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].call_sid, call_sid);

    // Callbacks for a call switchboard never bridged are kept too (issue 9): the call gets
    // an unbridged record with the words; bad ones are named.
    let (status, _) = app
        .post_twilio(
            "/twilio/transcription",
            &[
                ("CallSid", "CA_unknown"),
                ("TranscriptionEvent", "transcription-content"),
                ("TranscriptionData", r#"{"transcript":"hello"}"#),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let unbridged = store
        .get_call("CA_unknown")
        .await
        .expect("readable")
        .expect("kept");
    assert_eq!(unbridged.transcriptions.len(), 1);
    assert_eq!(unbridged.transcriptions[0].text, "hello");
    let (status, body) = app
        .post_twilio(
            "/twilio/transcription",
            &[("TranscriptionEvent", "transcription-stopped")],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("CallSid"), "{body}");
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn relay_handshakes_and_transcription_callbacks_are_signed_when_a_token_is_set() {
    let token = "12345678901234567890123456789012";
    let app = spawn_app(AppOptions {
        auth_token: Some(token.into()),
        ..relay_options()
    })
    .await;
    let refused = FakeRelay::connect(&app, None)
        .await
        .err()
        .expect("unsigned handshake refused");
    assert!(refused.contains("403"), "{refused}");
    let forged = FakeRelay::connect(&app, Some("not-the-token"))
        .await
        .err()
        .expect("forged handshake refused");
    assert!(forged.contains("403"), "{forged}");
    let relay = FakeRelay::connect(&app, Some(token))
        .await
        .expect("signed handshake accepted");
    relay.hang_up().await;

    let mut unsigned = awc::Client::default()
        .post(format!("{}/twilio/transcription", app.base))
        .send_form(&[
            ("CallSid", "CA00000000000000000000000000000105"),
            ("TranscriptionEvent", "transcription-started"),
        ])
        .await
        .expect("webhook answers");
    assert_eq!(unsigned.status(), 403);
    let _ = unsigned.body().await;
    let (status, _) = app
        .post_twilio(
            "/twilio/transcription",
            &[
                ("CallSid", "CA00000000000000000000000000000105"),
                ("TranscriptionEvent", "transcription-started"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn bad_relay_frames_are_dropped_until_too_many_in_a_row_and_oversize_closes() {
    let app = spawn_app(relay_options()).await;
    let call_sid = "CA00000000000000000000000000000106";
    let mut relay = FakeRelay::open(&app).await;
    // Before setup, and unparseable: dropped, and the call goes on.
    relay.say("hello?").await;
    relay.send_text("not json".into()).await;
    relay
        .send_text(r#"{"type":"debug","whatever":[1]}"#.into())
        .await;
    relay.setup(call_sid).await;
    relay.say("what are your opening hours").await;
    assert!(!relay.answer().await.concat().is_empty());
    for _ in 0..100 {
        relay.send_text("{\"type\":".into()).await;
    }
    assert!(matches!(
        relay.next(5 * SECOND).await,
        Heard::Closed(Some(CloseCode::Policy))
    ));
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Completed));

    let mut relay = FakeRelay::open(&app).await;
    relay.send_text("x".repeat(70 * 1024)).await;
    assert!(matches!(
        relay.next(5 * SECOND).await,
        Heard::Closed(Some(CloseCode::Size))
    ));
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_relay_caller_asks_to_have_the_answer_texted_and_it_reaches_the_messages_api() {
    const ACCOUNT_SID: &str = "AC00000000000000000000000000000042";
    const TOKEN: &str = "relay-token";
    let rest = FakeTwilioRest::start();
    let app = spawn_app(AppOptions {
        auth_token: Some(TOKEN.into()),
        account_sid: Some(ACCOUNT_SID.into()),
        twilio_rest: Some(rest.base.clone()),
        tweak: |settings| settings.engine.twilio.phone_number = Some(TO.into()),
        ..relay_options()
    })
    .await;
    let call_sid = "CA00000000000000000000000000000105";
    let mut relay = FakeRelay::connect(&app, Some(TOKEN))
        .await
        .expect("a signed handshake is accepted");
    relay.setup(call_sid).await;
    relay.say("where is my order 1001").await;
    let order = relay.answer().await.concat();
    assert!(order.contains("1001"), "{order}");
    relay.say("text me that please").await;
    let texted = relay.answer().await.concat();
    assert!(texted.contains("sent that to you by text"), "{texted}");
    let sent = rest.wait_for(1, 5 * SECOND).await;
    let [text] = sent.as_slice() else {
        panic!("one text expected: {sent:#?}");
    };
    assert_eq!(
        text.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    assert_eq!(text.field("To"), Some(FROM));
    assert_eq!(text.field("From"), Some(TO));
    assert_eq!(text.field("Body"), Some(order.trim()));
    relay.hang_up().await;
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert!(
        record.tools_used.iter().any(|t| t == "send_sms"),
        "{:?}",
        record.tools_used
    );
    app.handle.stop(false).await;
}

/// A graceful drain reaches relay calls too: Twilio is given the goodbye to speak, and the
/// session ends (`end`, then the socket closes) when the drain does.
#[actix_web::test]
async fn a_drain_says_goodbye_on_a_relay_call_then_ends_the_session() {
    let app = spawn_app(AppOptions {
        tweak: |settings| settings.engine.server.drain_secs = 2,
        ..relay_options()
    })
    .await;
    let mut relay = FakeRelay::open(&app).await;
    relay.setup("CA000000000000000000000000000000d1").await;
    let deadline = std::time::Instant::now() + 5 * SECOND;
    while app
        .engine
        .registry()
        .send(actors::registry::messages::ListCalls)
        .await
        .expect("registry answers")
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the call never registered"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }

    let (engine, handle) = (app.engine.clone(), app.handle.clone());
    let drained =
        actix_web::rt::spawn(async move { switchboard::shutdown::drain(&engine, &handle).await });
    let mut said = String::new();
    let ended = loop {
        match relay.next(10 * SECOND).await {
            Heard::Message(Outbound::Text { token, .. }) => said.push_str(&token),
            Heard::Message(end @ Outbound::End { .. }) => break end,
            other => panic!("expected the goodbye then end, got {other:?}"),
        }
    };
    assert!(said.contains("Goodbye"), "{said}");
    assert!(
        matches!(ended, Outbound::End { handoff_data: None }),
        "no handoff: {ended:?}"
    );
    assert!(matches!(
        relay.next(5 * SECOND).await,
        Heard::Closed(Some(CloseCode::Normal))
    ));
    drained.await.expect("the drain finishes");
    let record = app.call_record("CA000000000000000000000000000000d1").await;
    assert_eq!(record.outcome, Some(CallOutcome::Completed));
}

// --- Calls the engine places (issue 10) -----------------------------------------------------

#[actix_web::test]
async fn a_placed_relay_call_opens_with_its_reason_and_its_agent_takes_it() {
    let app = spawn_app(relay_options()).await;
    let call_sid = "CA00000000000000000000000000000b01";
    // Twilio fetches the placed call's Url once the customer answers: From is our number.
    let (status, twiml) = app
        .post_twilio(
            "/twilio/voice/outbound?agent=booking&reason=your+fitting+tomorrow",
            &[
                ("CallSid", call_sid),
                ("From", TO),
                ("To", FROM),
                ("Direction", "outbound-api"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{twiml}");
    let opening = "Hello, this is a call from our team about the following: your fitting \
                   tomorrow. Is now a good time?";
    for expected in [
        format!("welcomeGreeting=\"{opening}\""),
        "<Parameter name=\"From\" value=\"+14155550101\"/>".to_owned(),
        "<Parameter name=\"OutboundAgent\" value=\"booking\"/>".to_owned(),
        "<Parameter name=\"OutboundReason\" value=\"your fitting tomorrow\"/>".to_owned(),
    ] {
        assert!(twiml.contains(&expected), "{expected} missing from {twiml}");
    }

    let mut relay = FakeRelay::open(&app).await;
    let mut setup = Setup {
        session_id: Some("VX00000000000000000000000000000b01".into()),
        call_sid: call_sid.into(),
        from: Some(TO.into()),
        to: Some(FROM.into()),
        direction: Some("outbound-api".into()),
        ..Setup::default()
    };
    for (name, value) in [
        ("From", FROM),
        ("OutboundAgent", "booking"),
        ("OutboundReason", "your fitting tomorrow"),
    ] {
        setup.custom_parameters.insert(name.into(), value.into());
    }
    relay.send(&Inbound::Setup(Box::new(setup))).await;
    wait_registered(&app, call_sid).await;
    relay.say("what times are free on saturday").await;
    let answer = relay.answer().await.concat();
    assert!(!answer.trim().is_empty());
    relay.hang_up().await;
    app.wait_until_idle(5 * SECOND)
        .await
        .expect("no actor left");
    let record = app.call_record(call_sid).await;
    assert_eq!(record.agent, "booking");
    assert_eq!(
        spoken(&record).first(),
        Some(&(Role::Assistant, opening)),
        "the record starts with what Twilio said"
    );
    app.handle.stop(false).await;
}

/// On a relay call the local model takes a voicemail when the caller asks to leave a
/// message: the answer, then `end`, and `/twilio/voice/next` answers `<Record>`; the
/// simulated Twilio's transcription joins the customer's record. Text channels are never
/// offered the tool.
#[actix_web::test]
async fn a_relay_caller_leaves_a_voicemail() {
    let app = spawn_app(relay_options()).await;
    let call_sid = "CA00000000000000000000000000000121";
    let mut relay = FakeRelay::open(&app).await;
    relay.setup(call_sid).await;
    wait_registered(&app, call_sid).await;
    relay.say("can I leave a voicemail for the workshop").await;
    let said = relay.answer().await.concat();
    assert!(said.contains("after the beep"), "{said}");
    let Heard::Message(Outbound::End { .. }) = relay.next(5 * SECOND).await else {
        panic!("expected end");
    };
    relay.hang_up().await;
    app.expect_idle().await;
    let record = app.call_record(call_sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Voicemail));
    let from = [("CallSid", call_sid), ("From", FROM), ("To", TO)];
    let (status, twiml) = app.post_twilio("/twilio/voice/next", &from).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(twiml.contains(r#"transcribe="true""#), "{twiml}");
    let left = switchboard::sim::twilio::leave_voicemail(
        &twiml,
        None,
        call_sid,
        FROM,
        TO,
        "The brakes squeak again, please call me.",
    )
    .await
    .expect("Twilio records and calls back");
    assert!(left.transcribed && left.action_twiml.contains("<Hangup/>"));
    let customer = app.customer_record(FROM).await;
    let texts: Vec<_> = customer
        .voicemails
        .iter()
        .filter_map(|v| v.text.as_deref())
        .collect();
    assert_eq!(texts, ["The brakes squeak again, please call me."]);
    app.handle.stop(false).await;
}
