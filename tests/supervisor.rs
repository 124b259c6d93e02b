//! A supervisor who can act (SPEC §15), through the JSON endpoints under `/actors/…` that
//! the dashboard uses too: instruct a live agent (it reaches the model at once), end a call
//! (after a goodbye), transfer it to the human number, and take a text conversation over —
//! against the real server, a simulated Twilio and the OpenAI emulator, over real sockets.
//! Every action is refused without admin rights, or from another site's page, with nothing
//! done.

mod support;

use std::time::Duration;

use actix_codec::Framed;
use actix_web::http::header;
use actors::config::{Secret, VoiceMode};
use actors::domain::records::CallOutcome;
use actors::domain::transcript::Role;
use actors::protocol::twilio::relay::{parse_outbound, Inbound, Outbound, Prompt, Setup};
use actors::registry::messages::FindCall;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use support::voice::greeting_played_out;
use support::{spawn_app, twiml_messages, AppOptions, FakeTwilioRest, TestApp};
use switchboard::sim::twilio::{Event, LiveCall};

const SECOND: Duration = Duration::from_secs(1);
const FROM: &str = "+14155550101";
const TO: &str = "+18005550100";
const HUMAN: &str = "+15555550100";
const ADMIN_TOKEN: &str = "supervisor-admin-token";
const AUTH_TOKEN: &str = "supervisor-twilio-auth-token";
const ACCOUNT_SID: &str = "AC0000000000000000000000000000beef";

/// `POST {path}` with a JSON body from this machine, with extra headers.
async fn post(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = awc::Client::default().post(format!("{}{path}", app.base));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request.send_json(&body).await.expect("answers");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn act(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    post(app, path, body, &[]).await
}

async fn is_live(app: &TestApp, call_sid: &str) -> bool {
    app.engine
        .registry()
        .send(FindCall(call_sid.into()))
        .await
        .expect("registry answers")
        .is_some()
}

fn system_turns(turns: &[actors::domain::transcript::Turn]) -> Vec<String> {
    turns
        .iter()
        .filter(|t| t.role == Role::System)
        .map(|t| t.text.clone())
        .collect()
}

#[actix_web::test]
async fn an_instruction_reaches_the_realtime_model_at_once_and_end_says_goodbye_first() {
    let app = spawn_app(AppOptions::default()).await;
    let sid = "CA0000000000000000000000000000e001";
    let mut call = LiveCall::dial(&app.base, None, sid, FROM, TO)
        .await
        .expect("the call connects");
    greeting_played_out(&mut call).await;
    let items_before = app.mock.stats().client_items_created;

    let (status, body) = act(
        &app,
        &format!("/actors/calls/{sid}/instruct"),
        json!({ "text": "Offer the 10 % voucher" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["action"], "instruct");
    // The live session has it: its instructions, and a system item at this point.
    app.wait_for_mock("the instruction in the session", 5 * SECOND, |stats| {
        stats.client_items_created > items_before
            && stats
                .last_session
                .as_ref()
                .and_then(|s| s["instructions"].as_str())
                .is_some_and(|i| i.contains("Offer the 10 % voucher"))
    })
    .await;

    // An empty instruction is refused, and an unknown action.
    let (status, body) = act(
        &app,
        &format!("/actors/calls/{sid}/instruct"),
        json!({ "text": " " }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = act(&app, &format!("/actors/calls/{sid}/explode"), json!({})).await;
    assert_eq!(status, 404);
    // A call cannot be taken over.
    let (status, _) = act(&app, &format!("/actors/calls/{sid}/takeover"), json!({})).await;
    assert_eq!(status, 400);

    let responses_before = app.mock.stats().responses_started;
    let (status, body) = act(&app, &format!("/actors/calls/{sid}/end"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    // The model is asked for a goodbye, which plays; then the call hangs up.
    call.wait_for(|e| matches!(e, Event::Media { .. }), 10 * SECOND)
        .await
        .expect("the goodbye is heard");
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 20 * SECOND)
        .await
        .expect("the server hangs up");
    assert!(app.mock.stats().responses_started > responses_before);
    let record = app.call_record(sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Ended));
    assert_eq!(
        system_turns(record.transcript.turns()),
        [
            "supervisor: instruction: Offer the 10 % voucher",
            "supervisor: ended the call"
        ]
    );
    // Twilio then hangs up the call: it was not escalated.
    let (_, twiml) = app
        .post_twilio(
            "/twilio/voice/next",
            &[("CallSid", sid), ("From", FROM), ("To", TO)],
        )
        .await;
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    // Ended calls are gone: acting on one is a 404.
    let (status, _) = act(&app, &format!("/actors/calls/{sid}/end"), json!({})).await;
    assert_eq!(status, 404);
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_transfer_needs_a_human_number_and_then_dials_it_like_an_escalation() {
    // Without a human number: 409, and the call goes on.
    let app = spawn_app(AppOptions::default()).await;
    let sid = "CA0000000000000000000000000000e002";
    let mut call = LiveCall::dial(&app.base, None, sid, FROM, TO)
        .await
        .expect("the call connects");
    greeting_played_out(&mut call).await;
    let (status, body) = act(&app, &format!("/actors/calls/{sid}/transfer"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("twilio.human_number"),
        "{body}"
    );
    assert!(is_live(&app, sid).await);
    call.hang_up().await.expect("hang up");
    app.handle.stop(false).await;

    let app = spawn_app(AppOptions {
        human_number: Some(HUMAN.into()),
        ..AppOptions::default()
    })
    .await;
    let mut call = LiveCall::dial(&app.base, None, sid, FROM, TO)
        .await
        .expect("the call connects");
    greeting_played_out(&mut call).await;
    let (status, body) = act(&app, &format!("/actors/calls/{sid}/transfer"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 20 * SECOND)
        .await
        .expect("the stream ends");
    let (_, twiml) = app
        .post_twilio(
            "/twilio/voice/next",
            &[("CallSid", sid), ("From", FROM), ("To", TO)],
        )
        .await;
    assert!(twiml.contains("<Dial") && twiml.contains(HUMAN), "{twiml}");
    let record = app.call_record(sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Escalated));
    assert_eq!(
        system_turns(record.transcript.turns()),
        ["supervisor: transferred the call to a person"]
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn without_admin_rights_or_from_another_site_nothing_is_done() {
    // With a token: the bearer token, or nothing.
    let app = spawn_app(AppOptions {
        tweak: |settings| settings.engine.admin.token = Some(Secret::new(ADMIN_TOKEN)),
        ..AppOptions::default()
    })
    .await;
    let sid = "CA0000000000000000000000000000e003";
    let mut call = LiveCall::dial(&app.base, None, sid, FROM, TO)
        .await
        .expect("the call connects");
    greeting_played_out(&mut call).await;
    let end = format!("/actors/calls/{sid}/end");
    for auth in [None, Some("Bearer nope"), Some(ADMIN_TOKEN)] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let (status, _) = post(&app, &end, json!({}), &headers).await;
        assert_eq!(status, 403, "{auth:?}");
    }
    for path in [
        format!("/actors/calls/{sid}/instruct"),
        format!("/actors/calls/{sid}/transfer"),
        "/actors/conversations/c1/takeover".into(),
        "/actors/conversations/c1/reply".into(),
    ] {
        let (status, _) = post(&app, &path, json!({ "text": "x" }), &[]).await;
        assert_eq!(status, 403, "{path}");
    }
    assert!(is_live(&app, sid).await, "nothing was done");
    let record = app
        .engine
        .registry()
        .send(FindCall(sid.into()))
        .await
        .expect("registry")
        .expect("live");
    let transcript = record
        .transcript
        .send(actors::call::messages::CurrentTranscript)
        .await
        .expect("answers");
    assert!(
        system_turns(transcript.turns()).is_empty(),
        "nothing recorded"
    );
    // A script with the bearer token needs no more.
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut response = awc::Client::default()
        .post(format!("{}{end}", app.base))
        .insert_header(("Authorization", bearer.as_str()))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200, "{:?}", response.body().await);
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 20 * SECOND)
        .await
        .expect("ended");
    app.handle.stop(false).await;

    // Without a token, from this machine: only JSON, and only from the server's own pages.
    let app = spawn_app(AppOptions::default()).await;
    let mut call = LiveCall::dial(&app.base, None, sid, FROM, TO)
        .await
        .expect("the call connects");
    greeting_played_out(&mut call).await;
    let form = awc::Client::default()
        .post(format!("{}{end}", app.base))
        .send_form(&[("x", "1")])
        .await
        .expect("answers");
    assert_eq!(form.status(), 403, "a cross-site form cannot act");
    let host = app.base.trim_start_matches("http://").to_string();
    for headers in [
        vec![("Origin", "http://evil.example")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
    ] {
        let (status, _) = post(&app, &end, json!({}), &headers).await;
        assert_eq!(status, 403, "{headers:?}");
    }
    assert!(is_live(&app, sid).await, "nothing was done");
    let origin = format!("http://{host}");
    let (status, body) = post(
        &app,
        &end,
        json!({}),
        &[
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    call.wait_for(|e| matches!(e, Event::Closed { .. }), 20 * SECOND)
        .await
        .expect("ended");
    app.handle.stop(false).await;
}

/// Twilio's side of a ConversationRelay socket, reduced to what these tests need.
struct Relay {
    socket: Framed<BoxedSocket, Codec>,
}

impl Relay {
    async fn open(app: &TestApp, call_sid: &str) -> Relay {
        let (_, socket) = awc::Client::new()
            .ws(format!("{}/twilio/relay", app.ws_base()))
            .connect()
            .await
            .expect("relay connects");
        let mut relay = Relay { socket };
        let mut setup = Setup {
            session_id: Some("VX0000000000000000000000000000e004".into()),
            call_sid: call_sid.into(),
            from: Some(FROM.into()),
            to: Some(TO.into()),
            ..Setup::default()
        };
        setup.custom_parameters.insert("From".into(), FROM.into());
        relay.send(&Inbound::Setup(Box::new(setup))).await;
        relay
    }

    async fn send(&mut self, message: &Inbound) {
        let text = serde_json::to_string(message).expect("serializes");
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("sent");
    }

    async fn say(&mut self, words: &str) {
        self.send(&Inbound::Prompt(Prompt {
            voice_prompt: words.into(),
            lang: Some("en-US".into()),
            last: true,
        }))
        .await;
    }

    /// Messages up to and including the first that `stop` accepts.
    async fn until(&mut self, stop: impl Fn(&Outbound) -> bool) -> Vec<Outbound> {
        let mut heard = Vec::new();
        loop {
            let frame = actix_web::rt::time::timeout(10 * SECOND, self.socket.next())
                .await
                .expect("the server said something in time")
                .expect("socket open")
                .expect("frame");
            if let Frame::Text(bytes) = frame {
                let message =
                    parse_outbound(std::str::from_utf8(&bytes).expect("utf-8")).expect("known");
                let done = stop(&message);
                heard.push(message);
                if done {
                    return heard;
                }
            }
        }
    }
}

#[actix_web::test]
async fn on_a_relay_call_the_instruction_joins_the_next_turn_and_end_speaks_a_goodbye() {
    let app = spawn_app(AppOptions {
        tweak: |settings| settings.engine.voice.mode = VoiceMode::Relay,
        ..AppOptions::default()
    })
    .await;
    let sid = "CA0000000000000000000000000000e004";
    let mut relay = Relay::open(&app, sid).await;
    let deadline = std::time::Instant::now() + 5 * SECOND;
    while !is_live(&app, sid).await {
        assert!(std::time::Instant::now() < deadline, "never registered");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = act(
        &app,
        &format!("/actors/calls/{sid}/instruct"),
        json!({ "text": "Offer the 10 % voucher" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    relay.say("What are your opening hours?").await;
    relay
        .until(|m| matches!(m, Outbound::Text { last: true, .. }))
        .await;
    let told = app
        .mock
        .stats()
        .last_chat_messages
        .unwrap_or_default()
        .to_string();
    assert!(told.contains("Offer the 10 % voucher"), "{told}");

    let (status, body) = act(&app, &format!("/actors/calls/{sid}/end"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let heard = relay.until(|m| matches!(m, Outbound::End { .. })).await;
    let spoken: String = heard
        .iter()
        .filter_map(|m| match m {
            Outbound::Text { token, .. } => Some(token.as_str()),
            _ => None,
        })
        .collect();
    assert!(spoken.contains("goodbye"), "{heard:?}");
    assert!(
        matches!(heard.last(), Some(Outbound::End { handoff_data: None })),
        "{heard:?}"
    );
    drop(relay);
    let record = app.call_record(sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Ended));
    assert_eq!(
        system_turns(record.transcript.turns()),
        [
            "supervisor: instruction: Offer the 10 % voucher",
            "supervisor: ended the call"
        ]
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_supervisor_takes_a_text_conversation_over_answers_and_gives_it_back() {
    let rest = FakeTwilioRest::start();
    let app = spawn_app(AppOptions {
        auth_token: Some(AUTH_TOKEN.into()),
        account_sid: Some(ACCOUNT_SID.into()),
        twilio_rest: Some(rest.base.clone()),
        ..AppOptions::default()
    })
    .await;
    let texter = "+14155550177";
    let sms = |sid: &'static str, body: &'static str| {
        [
            ("MessageSid", sid),
            ("From", texter),
            ("To", TO),
            ("Body", body),
            ("NumMedia", "0"),
        ]
    };
    let (status, _) = app
        .post_twilio(
            "/twilio/messaging",
            &sms(
                "SM00000000000000000000000000000e01",
                "Hi, where is my order 1001?",
            ),
        )
        .await;
    assert_eq!(status, 200);
    rest.wait_for(1, 10 * SECOND).await;

    // The supervisor finds the conversation by the customer's number.
    let mut listing = awc::Client::default()
        .get(format!(
            "{}/actors?q=(415)%20555-0177&kind=conversations",
            app.base
        ))
        .insert_header((header::ACCEPT, "application/json"))
        .send()
        .await
        .expect("answers");
    let listing: Value = listing.json().await.expect("JSON");
    assert_eq!(listing["page"]["matched"], 1, "{listing}");
    let key = listing["conversations"][0]["key"]
        .as_str()
        .expect("a key")
        .to_string();
    assert_eq!(listing["conversations"][0]["customer"], "+1******0177");
    let base = format!("/actors/conversations/{key}");

    // Replying before taking over is refused; an instruction is fine.
    let (status, _) = act(&app, &format!("{base}/reply"), json!({ "text": "hello" })).await;
    assert_eq!(status, 409);
    let (status, body) = act(
        &app,
        &format!("{base}/instruct"),
        json!({ "text": "Offer the 10 % voucher" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = act(&app, &format!("{base}/takeover"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let mut shown = awc::Client::default()
        .get(format!("{}{base}", app.base))
        .insert_header((header::ACCEPT, "application/json"))
        .send()
        .await
        .expect("answers");
    let shown: Value = shown.json().await.expect("JSON");
    assert_eq!(shown["taken_over"], true, "{shown}");
    assert_eq!(shown["state"], "taken over", "{shown}");

    // The customer writes: stored, not answered by the model.
    let chats_before = app.mock.stats().chat_requests;
    let (status, twiml) = app
        .post_twilio(
            "/twilio/messaging",
            &sms("SM00000000000000000000000000000e02", "Is a person there?"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(twiml_messages(&twiml).is_empty(), "{twiml}");
    // The supervisor answers; it reaches the customer through the Messages API.
    let (status, body) = act(
        &app,
        &format!("{base}/reply"),
        json!({ "text": "Yes, this is Sam from the store." }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = rest.wait_for(2, 10 * SECOND).await;
    assert_eq!(
        sent[1].field("Body"),
        Some("Yes, this is Sam from the store.")
    );
    assert_eq!(sent[1].field("To"), Some(texter));
    assert_eq!(
        app.mock.stats().chat_requests,
        chats_before,
        "the model was not asked"
    );

    // Released, the assistant answers again, knowing what was said and the instruction.
    let (status, body) = act(&app, &format!("{base}/release"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .post_twilio(
            "/twilio/messaging",
            &sms(
                "SM00000000000000000000000000000e03",
                "Thanks! And your opening hours?",
            ),
        )
        .await;
    assert_eq!(status, 200);
    let sent = rest.wait_for(3, 10 * SECOND).await;
    assert_ne!(
        sent[2].field("Body"),
        Some("Yes, this is Sam from the store.")
    );
    let told = app
        .mock
        .stats()
        .last_chat_messages
        .unwrap_or_default()
        .to_string();
    assert!(told.contains("Is a person there?"), "{told}");
    assert!(told.contains("Yes, this is Sam from the store."), "{told}");
    assert!(told.contains("Offer the 10 % voucher"), "{told}");

    // The thread keeps every step, in order.
    let thread = app
        .engine
        .shared()
        .store
        .recent_turns(texter, 50)
        .await
        .expect("thread");
    let steps: Vec<(Role, &str)> = thread
        .iter()
        .filter(|t| t.role != Role::Tool)
        .map(|t| (t.role, t.text.as_str()))
        .collect();
    let at = |role: Role, text: &str| {
        steps
            .iter()
            .position(|(r, t)| *r == role && t.contains(text))
            .unwrap_or_else(|| panic!("{role:?} {text:?} not in {steps:#?}"))
    };
    let taken = at(Role::System, "supervisor: took over");
    let asked = at(Role::User, "Is a person there?");
    let sam = at(Role::Assistant, "this is Sam");
    let released = at(Role::System, "supervisor: released");
    assert!(
        at(
            Role::System,
            "supervisor: instruction: Offer the 10 % voucher"
        ) < taken
    );
    assert!(taken < asked && asked < sam && sam < released, "{steps:#?}");
    assert_eq!(
        steps.get(asked + 1).map(|s| s.0),
        Some(Role::Assistant),
        "{steps:#?}"
    );
    assert_eq!(
        steps.get(asked + 1).map(|s| s.1),
        Some("Yes, this is Sam from the store."),
        "the model never answered the held message: {steps:#?}"
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_relay_call_is_transferred_after_the_escalation_is_written() {
    let app = spawn_app(AppOptions {
        human_number: Some(HUMAN.into()),
        tweak: |settings| settings.engine.voice.mode = VoiceMode::Relay,
        ..AppOptions::default()
    })
    .await;
    let sid = "CA0000000000000000000000000000e005";
    let mut relay = Relay::open(&app, sid).await;
    let deadline = std::time::Instant::now() + 5 * SECOND;
    while !is_live(&app, sid).await {
        assert!(std::time::Instant::now() < deadline, "never registered");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = act(&app, &format!("/actors/calls/{sid}/transfer"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let heard = relay.until(|m| matches!(m, Outbound::End { .. })).await;
    let spoken: String = heard
        .iter()
        .filter_map(|m| match m {
            Outbound::Text { token, .. } => Some(token.as_str()),
            _ => None,
        })
        .collect();
    assert!(spoken.contains("colleague"), "{heard:?}");
    let Some(Outbound::End {
        handoff_data: Some(data),
    }) = heard.last()
    else {
        panic!("end with handoffData: {heard:?}");
    };
    assert!(data.contains("live-agent-handoff"), "{data}");
    // By the time Twilio asks, the escalation is on record: it dials.
    let (_, twiml) = app
        .post_twilio(
            "/twilio/voice/next",
            &[("CallSid", sid), ("From", FROM), ("To", TO)],
        )
        .await;
    assert!(twiml.contains("<Dial") && twiml.contains(HUMAN), "{twiml}");
    // A second transfer or an end is refused: the call is ending.
    let (status, _) = act(&app, &format!("/actors/calls/{sid}/end"), json!({})).await;
    assert_eq!(status, 409);
    drop(relay);
    let record = app.call_record(sid).await;
    assert_eq!(record.outcome, Some(CallOutcome::Escalated));
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_taken_over_web_chat_gets_the_supervisors_words_on_its_socket() {
    let app = spawn_app(AppOptions::default()).await;
    let visitor = "visitor-e006-abcdef";
    let (_, mut socket) = awc::Client::new()
        .ws(format!("{}/chat/ws?id={visitor}", app.ws_base()))
        .connect()
        .await
        .expect("chat socket opens");
    let say =
        |text: &str| Message::Text(json!({"type": "message", "text": text}).to_string().into());
    async fn done(socket: &mut Framed<BoxedSocket, Codec>) -> String {
        loop {
            let frame = actix_web::rt::time::timeout(10 * SECOND, socket.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .expect("frame");
            if let Frame::Text(bytes) = frame {
                let event: Value = serde_json::from_slice(&bytes).expect("JSON");
                if event["type"] == "done" {
                    return event["text"].as_str().unwrap_or_default().to_string();
                }
            }
        }
    }
    socket.send(say("Hello there")).await.expect("sent");
    let first = done(&mut socket).await;
    assert!(!first.is_empty());

    let mut listing = awc::Client::default()
        .get(format!("{}/actors?q={visitor}", app.base))
        .insert_header((header::ACCEPT, "application/json"))
        .send()
        .await
        .expect("answers");
    let listing: Value = listing.json().await.expect("JSON");
    let key = listing["conversations"][0]["key"]
        .as_str()
        .expect("found")
        .to_string();
    let base = format!("/actors/conversations/{key}");
    let (status, _) = act(&app, &format!("{base}/takeover"), json!({})).await;
    assert_eq!(status, 200);

    socket
        .send(say("Can I talk to someone?"))
        .await
        .expect("sent");
    // Once the message is on the thread, the supervisor answers it.
    let customer = format!("web:{visitor}");
    let deadline = std::time::Instant::now() + 5 * SECOND;
    loop {
        let thread = app
            .engine
            .shared()
            .store
            .recent_turns(&customer, 20)
            .await
            .expect("thread");
        if thread.iter().any(|t| t.text == "Can I talk to someone?") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never stored: {thread:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = act(
        &app,
        &format!("{base}/reply"),
        json!({ "text": "Sam here, how can I help?" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(done(&mut socket).await, "Sam here, how can I help?");

    // Once the visitor has left, a reply cannot reach them.
    let _ = socket.send(Message::Close(None)).await;
    drop(socket);
    let deadline = std::time::Instant::now() + 5 * SECOND;
    loop {
        let (status, body) = act(
            &app,
            &format!("{base}/reply"),
            json!({ "text": "Still there?" }),
        )
        .await;
        if status == 409 {
            assert!(
                body["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no longer connected"),
                "{body}"
            );
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the closed socket still counts as connected"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    app.handle.stop(false).await;
}
