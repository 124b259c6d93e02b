//! The simulated call against a tiny in-test server: an actix-web app that answers the voice
//! webhook with TwiML and plays the server's role on the Media Streams socket, steered by the
//! test through channels. Timing rules themselves are tested with explicit clocks next to the
//! pure modules; here only coarse bounds are checked (nothing early, nothing stuck).

use std::time::{Duration, Instant};

use actix::{Actor, ActorContext as _, Addr, AsyncContext as _, Handler, StreamHandler};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use actors::protocol::twilio::signature;
use actors::protocol::twilio::twiml::{Response, Verb};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// Something the in-test server saw.
#[derive(Debug)]
enum Seen {
    Webhook {
        signature: Option<String>,
        form: Vec<(String, String)>,
    },
    Upgrade {
        signature: Option<String>,
    },
    Peer(Addr<Peer>),
    Frame(Value, Instant),
    Closed(Option<u16>),
}

#[derive(Clone)]
struct Shared {
    twiml: String,
    status: u16,
    seen: mpsc::UnboundedSender<Seen>,
}

/// The server end of the Media Streams socket.
struct Peer {
    seen: mpsc::UnboundedSender<Seen>,
}

impl Actor for Peer {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _ = self.seen.send(Seen::Peer(ctx.address()));
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Peer {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => {
                let value = serde_json::from_str(&text).expect("Twilio frames are JSON");
                let _ = self.seen.send(Seen::Frame(value, Instant::now()));
            }
            Ok(ws::Message::Close(reason)) => {
                let _ = self
                    .seen
                    .send(Seen::Closed(reason.as_ref().map(|r| u16::from(r.code))));
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            _ => {}
        }
    }
}

/// What the test makes the server do on the socket.
#[derive(actix::Message)]
#[rtype(result = "()")]
enum Act {
    Text(String),
    Binary,
    Close(u16),
}

impl Handler<Act> for Peer {
    type Result = ();

    fn handle(&mut self, act: Act, ctx: &mut Self::Context) {
        match act {
            Act::Text(text) => ctx.text(text),
            Act::Binary => ctx.binary(vec![1u8, 2, 3]),
            Act::Close(code) => {
                ctx.close(Some(ws::CloseReason {
                    code: code.into(),
                    description: None,
                }));
                ctx.stop();
            }
        }
    }
}

async fn voice(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let _ = shared.seen.send(Seen::Webhook {
        signature: header(&req),
        form: form.into_inner(),
    });
    let status = actix_web::http::StatusCode::from_u16(shared.status).unwrap();
    HttpResponse::build(status)
        .content_type("text/xml")
        .body(shared.twiml.clone())
}

async fn media(
    req: HttpRequest,
    stream: web::Payload,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, actix_web::Error> {
    let _ = shared.seen.send(Seen::Upgrade {
        signature: header(&req),
    });
    ws::start(
        Peer {
            seen: shared.seen.clone(),
        },
        &req,
        stream,
    )
}

fn header(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("X-Twilio-Signature")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The in-test server and what it has seen.
struct Server {
    origin: String,
    ws_url: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    peer: Option<Addr<Peer>>,
    stream_sid: String,
}

fn parameters() -> Vec<(String, String)> {
    vec![
        ("From".to_owned(), "+15551230000".to_owned()),
        ("Note".to_owned(), "a \"quoted\" & <odd> value".to_owned()),
    ]
}

impl Server {
    /// Serves TwiML `twiml(ws_url)` with `status` on the voice webhook.
    async fn start(twiml: impl Fn(&str) -> String, status: u16) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let origin = format!("http://127.0.0.1:{port}");
        let ws_url = format!("ws://127.0.0.1:{port}/twilio/media");
        let (tx, seen) = mpsc::unbounded_channel();
        let shared = Shared {
            twiml: twiml(&ws_url),
            status,
            seen: tx,
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .route("/twilio/voice", web::post().to(voice))
                .route("/twilio/media", web::get().to(media))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Server {
            origin,
            ws_url,
            seen,
            peer: None,
            stream_sid: String::new(),
        }
    }

    /// A server answering with `<Connect><Stream>` and two parameters.
    async fn streaming() -> Server {
        Server::start(
            |url| {
                Response::new()
                    .push(Verb::Say("Connecting".to_owned()))
                    .push(Verb::ConnectStream {
                        action: Some("/twilio/voice/next".to_owned()),
                        url: url.to_owned(),
                        parameters: parameters(),
                    })
                    .render()
            },
            200,
        )
        .await
    }

    async fn next(&mut self) -> Seen {
        let seen = tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("the server saw nothing in time")
            .expect("server channel closed");
        if let Seen::Peer(addr) = &seen {
            self.peer = Some(addr.clone());
        }
        seen
    }

    /// The next socket frame (skipping other observations), with its arrival time.
    async fn frame(&mut self) -> (Value, Instant) {
        loop {
            if let Seen::Frame(value, at) = self.next().await {
                return (value, at);
            }
        }
    }

    /// The next frame whose event is `event` (skipping others).
    async fn frame_of(&mut self, event: &str) -> (Value, Instant) {
        loop {
            let (value, at) = self.frame().await;
            if value["event"] == event {
                return (value, at);
            }
        }
    }

    /// Reads `connected` and `start`, remembering the stream SID.
    async fn handshake(&mut self) -> Value {
        let (connected, _) = self.frame().await;
        assert_eq!(
            connected,
            json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        );
        let (start, _) = self.frame().await;
        assert_eq!(start["event"], "start");
        self.stream_sid = start["streamSid"].as_str().unwrap().to_owned();
        start
    }

    fn act(&self, act: Act) {
        self.peer.as_ref().expect("no socket yet").do_send(act);
    }

    fn send(&self, frame: Value) {
        self.act(Act::Text(frame.to_string()));
    }

    fn send_audio(&self, ms: u64) {
        self.send(json!({
            "event": "media", "streamSid": self.stream_sid,
            "media": {"payload": STANDARD.encode(sine_ulaw(300.0, ms, 0.5))},
        }));
    }

    fn send_mark(&self, name: &str) {
        self.send(json!({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}));
    }

    /// Reads media frames until one carries speech (is not all silence).
    async fn until_speech(&mut self) {
        while is_silent(&self.frame_of("media").await.0) {}
    }

    /// Reads media frames until one is silent again: the caller stopped talking.
    async fn until_silence(&mut self) {
        while !is_silent(&self.frame_of("media").await.0) {}
    }
}

fn is_silent(media: &Value) -> bool {
    let payload = STANDARD
        .decode(media["media"]["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(payload.len(), 160, "every caller frame is 20 ms");
    // An on-wire tag is near-silence over the frame's first bytes.
    let audio = match crate::sim::onwire::Tag::read(&payload) {
        Some(_) => &payload[crate::sim::onwire::TAG_LEN..],
        None => &payload[..],
    };
    audio.iter().all(|&b| b == 0xFF)
}

fn plan(server: &Server, utterances: Vec<Utterance>, barge_in: bool) -> CallPlan {
    CallPlan {
        target: server.origin.clone(),
        auth_token: None,
        call_sid: "CA0123".to_owned(),
        from: "+15551230000".to_owned(),
        to: "+15559870000".to_owned(),
        utterances,
        hangup_after_ms: 20_000,
        barge_in,
        on_wire: None,
    }
}

fn speech(ms: u64, wait_for_reply: bool, pause_before_ms: u64) -> Utterance {
    Utterance {
        ulaw: sine_ulaw(440.0, ms, 0.5).into(),
        wait_for_reply,
        pause_before_ms,
    }
}

async fn dial(server: &Server, token: Option<&str>) -> LiveCall {
    LiveCall::dial(
        &server.origin,
        token,
        "CA0123",
        "+15551230000",
        "+15559870000",
    )
    .await
    .unwrap()
}

fn is_echo(name: &'static str) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::MarkEchoed { name: n, .. } if n == name)
}

#[actix_web::test]
async fn dial_posts_the_webhook_then_streams_paced_frames() {
    let mut server = Server::streaming().await;
    let mut call = dial(&server, None).await;

    let Seen::Webhook { signature, form } = server.next().await else {
        panic!("expected the webhook first")
    };
    assert_eq!(signature, None, "unsigned without an auth token");
    for (name, value) in [
        ("CallSid", "CA0123"),
        ("From", "+15551230000"),
        ("To", "+15559870000"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
    ] {
        assert!(
            form.contains(&(name.to_owned(), value.to_owned())),
            "{name}={value} missing from {form:?}"
        );
    }
    assert!(form
        .iter()
        .any(|(k, v)| k == "AccountSid" && v.starts_with("AC")));
    assert!(matches!(
        server.next().await,
        Seen::Upgrade { signature: None }
    ));

    let start = server.handshake().await;
    let expected: BTreeMap<String, String> = parameters().into_iter().collect();
    assert_eq!(call.custom_parameters(), &expected);
    assert_eq!(start["sequenceNumber"], "1");
    assert_eq!(start["start"]["callSid"], "CA0123");
    assert_eq!(
        start["start"]["customParameters"],
        serde_json::to_value(&expected).unwrap()
    );
    assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");

    // Silence flows at once, numbered and stamped by the frame clock.
    let mut arrivals = Vec::new();
    for n in 0..50u64 {
        let (media, at) = server.frame_of("media").await;
        assert_eq!(media["sequenceNumber"], (n + 2).to_string());
        assert_eq!(media["media"]["chunk"], (n + 1).to_string());
        assert_eq!(media["media"]["timestamp"], (n * 20).to_string());
        assert_eq!(media["media"]["track"], "inbound");
        assert_eq!(media["streamSid"], server.stream_sid);
        assert!(is_silent(&media));
        arrivals.push(at);
    }
    // Real time, not faster and not drifting; the first frames may queue behind the
    // server's socket set-up, so measure from the tenth.
    let span = arrivals[49] - arrivals[9];
    assert!(
        (Duration::from_millis(760)..Duration::from_millis(1500)).contains(&span),
        "40 frame periods took {span:?}"
    );

    call.say(&sine_ulaw(440.0, 100, 0.5)).await;
    server.until_speech().await;
    for _ in 0..4 {
        assert!(!is_silent(&server.frame_of("media").await.0));
    }
    assert!(
        is_silent(&server.frame_of("media").await.0),
        "silence resumes"
    );

    let report = call.hang_up().await.unwrap();
    let (stop, _) = server.frame_of("stop").await;
    assert_eq!(stop["stop"]["callSid"], "CA0123");
    assert_eq!(stop["streamSid"], server.stream_sid);
    assert!(matches!(server.next().await, Seen::Closed(Some(1000))));
    assert_eq!(report.close_code, Some(1000));
    assert_eq!(report.events.last().map(String::as_str), Some("close:1000"));
    assert!(report.frames_sent >= 15);
    assert_eq!(report.stream_url, server.ws_url);
    assert_eq!(report.custom_parameters, expected);
    assert!(report.twiml.contains("<Connect"));
    assert_eq!(report.error, None);
}

#[actix_web::test]
async fn marks_are_echoed_only_once_their_audio_has_played() {
    let mut server = Server::streaming().await;
    let mut call = dial(&server, None).await;
    server.handshake().await;

    let sent = Instant::now();
    server.send_audio(200);
    server.send_mark("a");
    server.send_mark("b");
    let (echo_a, at_a) = server.frame_of("mark").await;
    let (echo_b, at_b) = server.frame_of("mark").await;
    assert!(
        at_a - sent >= Duration::from_millis(200),
        "echoed after {:?}, before its 200 ms of audio played",
        at_a - sent
    );
    assert!(at_b >= at_a);
    let seq_a: u64 = echo_a["sequenceNumber"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        echo_a,
        json!({
            "event": "mark", "sequenceNumber": seq_a.to_string(),
            "streamSid": server.stream_sid, "mark": {"name": "a"},
        })
    );
    assert_eq!(echo_b["mark"]["name"], "b");
    assert_eq!(echo_b["sequenceNumber"], (seq_a + 1).to_string());

    // Nothing buffered now: a new mark comes straight back.
    let sent = Instant::now();
    server.send_mark("c");
    let (echo_c, at_c) = server.frame_of("mark").await;
    assert_eq!(echo_c["mark"]["name"], "c");
    assert!(
        at_c - sent < Duration::from_millis(150),
        "took {:?}",
        at_c - sent
    );

    // The test side sees the same story, in order.
    assert!(matches!(
        call.wait_for(|e| matches!(e, Event::Media { .. }), WAIT)
            .await,
        Ok(Event::Media { bytes: 1600, .. })
    ));
    for name in ["a", "b", "c"] {
        assert_eq!(
            call.wait_for(is_echo(name), WAIT).await.unwrap(),
            Event::MarkEchoed {
                name: name.to_owned(),
                flushed: false
            }
        );
    }
    // Skipped events were kept: the marks themselves are still there to be found.
    assert_eq!(
        call.wait_for(|e| matches!(e, Event::Mark { .. }), WAIT)
            .await
            .unwrap(),
        Event::Mark {
            name: "a".to_owned()
        }
    );

    let report = call.snapshot();
    assert_eq!(report.media_received, 1);
    assert_eq!(report.audio_received_ms, 200);
    assert_eq!(report.marks_received, 3);
    assert_eq!(report.marks_echoed, 3);
    assert_eq!(report.marks_flushed_by_clear, 0);
    assert!(report.first_audio_at_ms.is_some());
    let marks: Vec<&str> = report
        .events
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "media")
        .collect();
    assert_eq!(
        marks,
        ["mark:a", "mark:b", "echo:a", "echo:b", "mark:c", "echo:c"]
    );
    call.hang_up().await.unwrap();
}

#[actix_web::test]
async fn clear_drops_the_audio_and_echoes_pending_marks_at_once() {
    let mut server = Server::streaming().await;
    let mut call = dial(&server, None).await;
    server.handshake().await;

    server.send_audio(2000);
    server.send_mark("x");
    server.send_audio(1000);
    server.send_mark("y");
    call.wait_for(|e| matches!(e, Event::Mark { name } if name == "y"), WAIT)
        .await
        .unwrap();
    let cleared = Instant::now();
    server.send(json!({"event": "clear", "streamSid": server.stream_sid}));
    let (x, at_x) = server.frame_of("mark").await;
    let (y, _) = server.frame_of("mark").await;
    assert_eq!(
        (&x["mark"]["name"], &y["mark"]["name"]),
        (&json!("x"), &json!("y"))
    );
    assert!(
        at_x - cleared < Duration::from_millis(1000),
        "flushed marks must not wait for the 3 s of audio ({:?})",
        at_x - cleared
    );
    assert_eq!(
        call.wait_for(|e| *e == Event::Clear, WAIT).await.unwrap(),
        Event::Clear
    );
    for name in ["x", "y"] {
        assert_eq!(
            call.wait_for(is_echo(name), WAIT).await.unwrap(),
            Event::MarkEchoed {
                name: name.to_owned(),
                flushed: true
            }
        );
    }

    // The buffer really is empty: the next mark is echoed at once.
    server.send_mark("z");
    assert_eq!(server.frame_of("mark").await.0["mark"]["name"], "z");

    let report = call.hang_up().await.unwrap();
    assert_eq!(report.clears_received, 1);
    assert_eq!(report.marks_echoed, 3);
    assert_eq!(report.marks_flushed_by_clear, 2);
    assert_eq!(
        report.barge_in_latencies_ms,
        Vec::<u64>::new(),
        "the caller never spoke"
    );
    let tail: Vec<&str> = report
        .events
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "media")
        .collect();
    assert_eq!(
        tail,
        [
            "mark:x",
            "mark:y",
            "clear",
            "flushed:x",
            "flushed:y",
            "mark:z",
            "echo:z",
            "close:1000"
        ]
    );
}

#[actix_web::test]
async fn webhook_and_upgrade_are_signed_like_twilio() {
    let mut server = Server::streaming().await;
    let token = "12345";
    let call = dial(&server, Some(token)).await;

    let Seen::Webhook { signature, form } = server.next().await else {
        panic!("expected the webhook first")
    };
    let webhook_url = format!("{}/twilio/voice", server.origin);
    let signature = signature.expect("signed");
    assert_eq!(signature, signature::compute(token, &webhook_url, &form));
    assert!(signature::validate(
        token,
        &webhook_url,
        &form,
        None,
        &signature
    ));
    assert!(!signature::validate(
        "other",
        &webhook_url,
        &form,
        None,
        &signature
    ));

    let Seen::Upgrade { signature } = server.next().await else {
        panic!("expected the upgrade")
    };
    let signature = signature.expect("signed");
    assert_eq!(signature, signature::compute(token, &server.ws_url, &[]));
    assert!(signature::validate(
        token,
        &server.ws_url,
        &[],
        None,
        &signature
    ));
    call.hang_up().await.unwrap();
}

#[actix_web::test]
async fn run_call_speaks_waits_for_the_reply_and_hangs_up() {
    let mut server = Server::streaming().await;
    let call =
        tokio::task::spawn_local(run_call(plan(&server, vec![speech(300, true, 100)], false)));
    server.handshake().await;
    server.until_speech().await;
    server.until_silence().await;
    server.send_audio(300);
    server.send_mark("r1");
    let (echo, _) = server.frame_of("mark").await;
    assert_eq!(echo["mark"]["name"], "r1");
    // The reply has played out: the script is finished and the caller hangs up.
    server.frame_of("stop").await;

    let report = call.await.unwrap().unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.turn_latencies_ms.len(), 1);
    assert!(
        report.turn_latencies_ms[0] < 2000,
        "{:?}",
        report.turn_latencies_ms
    );
    assert_eq!(report.marks_received, 1);
    assert_eq!(report.marks_echoed, 1);
    assert_eq!(report.audio_received_ms, 300);
    assert_eq!(report.close_code, Some(1000));
    assert_eq!(report.events, ["media", "mark:r1", "echo:r1", "close:1000"]);
    // 100 ms pause + 300 ms speech + reply round trip + 300 ms playback.
    assert!(report.frames_sent >= 35, "{}", report.frames_sent);
}

#[actix_web::test]
async fn tagged_calls_tag_every_frame_and_time_the_tagged_replies() {
    use crate::sim::onwire::{now_us, Tag};
    use actors::metrics::LatencyRecorder;

    let mut server = Server::streaming().await;
    let heard = Arc::new(LatencyRecorder::new());
    let mut plan = plan(&server, vec![speech(300, true, 100)], false);
    plan.on_wire = Some(OnWire {
        call: 7,
        heard: Arc::clone(&heard),
    });
    let call = tokio::task::spawn_local(run_call(plan));
    server.handshake().await;
    // Silence and speech alike carry the call and their chunk number.
    let mut speech_seen = false;
    loop {
        let (media, _) = server.frame_of("media").await;
        let payload = STANDARD
            .decode(media["media"]["payload"].as_str().unwrap())
            .unwrap();
        let tag = Tag::read(&payload).expect("every caller frame is tagged");
        assert_eq!(tag.call, 7);
        assert_eq!(
            tag.seq.to_string(),
            media["media"]["chunk"].as_str().unwrap()
        );
        let silent = is_silent(&media);
        if speech_seen && silent {
            break;
        }
        speech_seen |= !silent;
    }
    // A tagged reply is timed; an untagged one (a hold prompt, say) is not.
    let mut reply = sine_ulaw(300.0, 200, 0.5);
    assert!(Tag::new(42, 1, now_us()).write(&mut reply));
    server.send(json!({
        "event": "media", "streamSid": server.stream_sid,
        "media": {"payload": STANDARD.encode(&reply)},
    }));
    server.send_audio(100);
    server.send_mark("r1");
    server.frame_of("stop").await;

    let report = call.await.unwrap().unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.media_received, 2);
    assert_eq!(heard.snapshot().count(), 1, "the tagged frame alone");
}

#[actix_web::test]
async fn run_call_barges_in_and_times_the_clear() {
    let mut server = Server::streaming().await;
    let call = tokio::task::spawn_local(run_call(plan(
        &server,
        vec![speech(200, true, 0), speech(200, false, 100)],
        true,
    )));
    server.handshake().await;
    server.until_speech().await;
    server.until_silence().await;
    server.send_audio(3000);
    server.send_mark("long");
    // The caller talks over the reply 100 ms after it started; the server clears.
    server.until_speech().await;
    server.send(json!({"event": "clear", "streamSid": server.stream_sid}));
    let (echo, _) = server.frame_of("mark").await;
    assert_eq!(echo["mark"]["name"], "long");
    server.frame_of("stop").await;

    let report = call.await.unwrap().unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.barge_in_latencies_ms.len(), 1);
    assert!(report.barge_in_latencies_ms[0] < 2000);
    assert_eq!(report.clears_received, 1);
    assert_eq!(report.marks_flushed_by_clear, 1);
    assert_eq!(report.turn_latencies_ms.len(), 1);
}

#[actix_web::test]
async fn a_server_close_ends_the_call_with_its_code() {
    let mut server = Server::streaming().await;
    let mut call = dial(&server, None).await;
    server.handshake().await;
    server.act(Act::Close(1011));
    assert_eq!(
        call.wait_for(|e| matches!(e, Event::Closed { .. }), WAIT)
            .await
            .unwrap(),
        Event::Closed { code: Some(1011) }
    );
    // The task has ended: waiting for more is an error, not a hang.
    assert!(matches!(
        call.wait_for(|e| *e == Event::Clear, WAIT).await,
        Err(SimError::Ended)
    ));
    let report = call.hang_up().await.unwrap();
    assert_eq!(report.close_code, Some(1011));
    assert_eq!(report.error, None);
    assert_eq!(report.events.last().map(String::as_str), Some("close:1011"));
}

#[actix_web::test]
async fn frames_twilio_would_reject_are_reported_and_ignored() {
    let mut server = Server::streaming().await;
    let mut call = dial(&server, None).await;
    server.handshake().await;
    server.send(json!({"event": "mark", "streamSid": "MZwrong", "mark": {"name": "m"}}));
    server.act(Act::Binary);
    server.send(json!({"event": "clear", "streamSid": server.stream_sid}));
    call.wait_for(|e| *e == Event::Clear, WAIT).await.unwrap();
    let report = call.hang_up().await.unwrap();
    assert_eq!(report.marks_received, 0);
    assert_eq!(report.marks_echoed, 0);
    assert!(
        report.events[0].starts_with("invalid:wrong streamSid"),
        "{:?}",
        report.events
    );
    assert_eq!(report.events[1], "invalid:binary frame");
    assert_eq!(report.events[2], "clear");
}

#[actix_web::test]
async fn a_call_that_cannot_start_is_an_error() {
    let relay = Server::start(
        |url| {
            Response::new()
                .push(Verb::ConnectRelay {
                    action: None,
                    url: url.to_owned(),
                    attributes: Vec::new(),
                    parameters: Vec::new(),
                })
                .render()
        },
        200,
    )
    .await;
    assert!(matches!(
        run_call(plan(&relay, Vec::new(), false)).await,
        Err(SimError::Twiml(TwimlError::NoStream))
    ));

    let forbidden = Server::start(|_| "bad signature".to_owned(), 403).await;
    match run_call(plan(&forbidden, Vec::new(), false)).await {
        Err(SimError::WebhookStatus { status, body, .. }) => {
            assert_eq!((status, body.as_str()), (403, "bad signature"));
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[test]
fn test_audio_helpers() {
    assert_eq!(silence_ulaw(20), vec![0xFF; 160]);
    let tone = sine_ulaw(440.0, 100, 0.5);
    assert_eq!(tone.len(), 800);
    let pcm: Vec<i16> = tone
        .iter()
        .map(|&b| actors::audio::g711::decode(b))
        .collect();
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!((15_000..=17_500).contains(&peak), "peak {peak}");
    assert!(sine_ulaw(440.0, 10, 0.0).iter().all(|&b| b == 0xFF));
}
