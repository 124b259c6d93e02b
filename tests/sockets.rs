//! SPEC §13: every socket the server accepts or opens sets `TCP_NODELAY` (with Nagle on, a
//! caller frame written behind an unacknowledged one waits ~20 ms for the peer's delayed
//! ACK). Checked on the live sockets of this process, found through `/proc/self/fd`, on
//! plain loopback; `tests/tls.rs` checks the same over TLS.

mod support;

use std::time::Duration;

use support::sockets::{self, assert_nodelay, Ends};
use support::voice::{caller_turn_answered, greeting_played_out};
use support::{spawn_app, AppOptions};
use switchboard::sim::mock_openai::MockOptions;
use switchboard::sim::twilio::LiveCall;

const SECOND: Duration = Duration::from_secs(1);

#[actix_web::test]
async fn every_socket_of_a_live_call_sets_nodelay() {
    let app = spawn_app(AppOptions::default()).await;
    let call_sid = "CA0000000000000000000000000000n001";
    let mut call = LiveCall::dial(&app.base, None, call_sid, "+14155550101", "+18005550100")
        .await
        .expect("the call connects");
    greeting_played_out(&mut call).await;
    caller_turn_answered(&app, &mut call).await;

    let all = sockets::connected_tcp();
    let server = Ends::of(app.port(), &all);
    let model = Ends::of(app.mock.addr.port(), &all);
    // The Media Streams socket at both ends, and the Realtime socket at both ends.
    assert_nodelay("accepted by the server", &server.accepted, 1);
    assert_nodelay("opened by the simulated Twilio", &server.opened, 1);
    assert_nodelay("opened by the engine (Realtime)", &model.opened, 1);
    assert_nodelay("accepted by the emulator", &model.accepted, 1);

    call.hang_up().await.expect("hang up");
    app.expect_idle().await;
}

#[actix_web::test]
async fn the_engines_http_requests_set_nodelay() {
    // The model holds every answer for minutes and the webhook waits for it, so the engine's
    // chat connection is open while the sockets are read (the engine gives a request 30 s).
    let app = spawn_app(AppOptions {
        mock: MockOptions {
            latency_ms: 600_000,
            ..MockOptions::default()
        },
        tweak: |settings| settings.engine.messaging.deadline_ms = 600_000,
        ..AppOptions::default()
    })
    .await;
    let sms = app.post_twilio(
        "/twilio/messaging",
        &[
            ("MessageSid", "SM0000000000000000000000000000n001"),
            ("AccountSid", "AC00000000000000000000000000000042"),
            ("From", "+14155550101"),
            ("To", "+18005550100"),
            ("Body", "Where is my order 1001?"),
            ("NumMedia", "0"),
        ],
    );
    let check = async {
        app.wait_for_mock("the chat request", 10 * SECOND, |s| s.chat_requests >= 1)
            .await;
        let all = sockets::connected_tcp();
        let model = Ends::of(app.mock.addr.port(), &all);
        assert_nodelay("opened by the engine (Chat Completions)", &model.opened, 1);
        assert_nodelay("accepted by the emulator", &model.accepted, 1);
    };
    tokio::select! {
        () = check => {}
        answer = sms => panic!("the SMS was answered before the check: {answer:?}"),
    }
}
