//! SPEC §12 on the Media Streams socket: garbage, bad base64, media before `start` and
//! oversize frames are dropped and counted, the call goes on, and only a run of 100 bad
//! frames (1008) or one oversize message (1009) closes the socket. Spoken over a raw
//! WebSocket so the test can send what no well-behaved Twilio would.

mod support;

use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{self, Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt as _, StreamExt as _};
use support::{spawn_app, AppOptions, TestApp};

type Socket = Framed<BoxedSocket, Codec>;

const STREAM_SID: &str = "MZ00000000000000000000000000000001";

async fn open(app: &TestApp) -> Socket {
    let (_response, socket) = awc::Client::new()
        .ws(format!("{}/twilio/media", app.ws_base()))
        .connect()
        .await
        .expect("media socket opens");
    socket
}

async fn send(socket: &mut Socket, text: impl Into<String>) {
    socket
        .send(Message::Text(text.into().into()))
        .await
        .expect("frame sent");
}

fn start_frame(call_sid: &str) -> String {
    serde_json::json!({
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": STREAM_SID,
        "start": {
            "accountSid": "AC00000000000000000000000000000000",
            "streamSid": STREAM_SID,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": {"From": "+14155550101"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        }
    })
    .to_string()
}

fn media_frame(payload: &str) -> String {
    serde_json::json!({
        "event": "media",
        "sequenceNumber": "2",
        "streamSid": STREAM_SID,
        "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": payload}
    })
    .to_string()
}

/// Reads until the server closes; the close code, or `None` if the stream just ended.
async fn close_code(socket: &mut Socket, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Frame::Close(reason)))) => return reason.map(|r| u16::from(r.code)),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) => return None,
            Err(_) => panic!("the server did not close the socket within {within:?}"),
        }
    }
}

/// Waits for one server `media` frame: proof the call is alive and talking.
async fn expect_media(socket: &mut Socket, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Frame::Text(text)))) if text.starts_with(b"{\"event\":\"media\"") => return,
            Ok(Some(Ok(Frame::Close(reason)))) => panic!("closed: {reason:?}"),
            Ok(Some(_)) => continue,
            Ok(None) => panic!("socket ended"),
            Err(_) => panic!("no media within {within:?}"),
        }
    }
}

/// The counter `series` as a whole number, as the assertions below compare it.
async fn metric(app: &TestApp, series: &str) -> u64 {
    app.metric(series).await as u64
}

#[actix_web::test]
async fn unusable_frames_are_dropped_and_counted_while_the_call_goes_on() {
    let app = spawn_app(AppOptions::default()).await;
    let before_not_json = metric(&app, "switchboard_bad_frames_total{reason=\"not_json\"}").await;
    let before_early = metric(
        &app,
        "switchboard_bad_frames_total{reason=\"before_start\"}",
    )
    .await;
    let before_b64 = metric(&app, "switchboard_bad_frames_total{reason=\"bad_base64\"}").await;

    let mut socket = open(&app).await;
    send(&mut socket, "this is not JSON").await;
    send(&mut socket, "{\"event\":\"media\"").await;
    send(&mut socket, media_frame("//8=")).await; // media before start
    send(&mut socket, "{\"event\":\"something-new\",\"x\":1}").await; // unknown: ignored
    send(
        &mut socket,
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    )
    .await;
    send(
        &mut socket,
        start_frame("CA00000000000000000000000000000101"),
    )
    .await;
    send(&mut socket, media_frame("***not base64***")).await;
    send(&mut socket, media_frame(&"/".repeat(215))).await;
    socket
        .send(Message::Binary(vec![0u8; 16].into()))
        .await
        .expect("binary sent");

    // The call is up regardless: the greeting streams.
    expect_media(&mut socket, Duration::from_secs(5)).await;
    assert!(
        metric(&app, "switchboard_bad_frames_total{reason=\"not_json\"}").await > before_not_json
    );
    assert!(
        metric(
            &app,
            "switchboard_bad_frames_total{reason=\"before_start\"}"
        )
        .await
            > before_early
    );
    assert!(
        metric(&app, "switchboard_bad_frames_total{reason=\"bad_base64\"}").await >= before_b64 + 2
    );

    // A good frame resets the run; 100 bad ones in a row close with 1008.
    send(&mut socket, media_frame("//8=")).await;
    for _ in 0..100 {
        send(&mut socket, "garbage").await;
    }
    assert_eq!(
        close_code(&mut socket, Duration::from_secs(5)).await,
        Some(1008)
    );
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn an_oversize_message_closes_with_1009() {
    let app = spawn_app(AppOptions::default()).await;
    let mut socket = open(&app).await;
    send(
        &mut socket,
        start_frame("CA00000000000000000000000000000102"),
    )
    .await;
    expect_media(&mut socket, Duration::from_secs(5)).await;
    send(&mut socket, media_frame(&"A".repeat(70 * 1024))).await;
    assert_eq!(
        close_code(&mut socket, Duration::from_secs(5)).await,
        Some(1009)
    );
    app.expect_idle().await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_socket_that_never_starts_is_not_a_call() {
    let app = spawn_app(AppOptions::default()).await;
    let mut socket = open(&app).await;
    for _ in 0..3 {
        send(&mut socket, "{}").await;
    }
    socket
        .send(Message::Close(Some(ws::CloseCode::Normal.into())))
        .await
        .expect("close sent");
    let _ = close_code(&mut socket, Duration::from_secs(5)).await;
    app.expect_idle().await;
    let calls = app
        .engine
        .registry()
        .send(actors::registry::messages::ListCalls)
        .await
        .expect("registry answers");
    assert!(calls.is_empty());
    app.handle.stop(false).await;
}
