//! Steps of a simulated phone call that several end-to-end tests take.

use std::time::Duration;

use switchboard::sim::mock_openai::MockStats;
use switchboard::sim::twilio::{sine_ulaw, Event, LiveCall};

use super::TestApp;

const SECOND: Duration = Duration::from_secs(1);

/// One second of loud tone: speech to the emulator's energy VAD.
pub fn speech() -> Vec<u8> {
    sine_ulaw(320.0, 1000, 0.6)
}

pub fn is_media(e: &Event) -> bool {
    matches!(e, Event::Media { .. })
}

pub fn is_played_mark(e: &Event) -> bool {
    matches!(e, Event::MarkEchoed { flushed: false, .. })
}

/// Waits until everything the server sent has played out at the simulated phone, then
/// forgets the events seen so far.
pub async fn wait_played_out(call: &mut LiveCall, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let report = call.snapshot();
        if report.marks_received > 0 && report.marks_echoed == report.marks_received {
            call.drain();
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audio still playing after {within:?}: {report:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the greeting to start and then to play out.
pub async fn greeting_played_out(call: &mut LiveCall) {
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("greeting audio");
    wait_played_out(call, 10 * SECOND).await;
}

/// The caller speaks; waits until the emulator took it as the second turn and the
/// answer's audio reaches the phone. Returns the emulator's counters at that turn.
pub async fn caller_turn_answered(app: &TestApp, call: &mut LiveCall) -> MockStats {
    call.say(&speech()).await;
    let stats = app
        .wait_for_mock("the caller's turn", 10 * SECOND, |s| {
            s.responses_started >= 2
        })
        .await;
    call.wait_for(is_media, 5 * SECOND)
        .await
        .expect("answer audio");
    stats
}
