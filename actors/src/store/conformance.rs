//! One conformance suite for every [`Store`] backend: what the engine relies on, checked
//! the same way against sled and PostgreSQL. Each check takes a fresh, empty store;
//! [`conformance_tests!`] turns the list into `#[test]`s for a backend.

use std::future::Future;
use std::sync::Arc;

use super::Store;
use crate::domain::bookings::{BookOutcome, Booking, CancelOutcome};
use crate::domain::outreach::{PlacingOutcome, ScheduleState, ScheduledCall};
use crate::domain::records::{
    AudioMode, CallOutcome, CallRecord, CustomerChange, RecordingEntry, Voicemail,
};
use crate::domain::transcript::{Role, Turn};

/// Runs `check` on a fresh runtime, as each test does.
pub(crate) fn run<F: Future<Output = ()>>(check: F) {
    block_on(check);
}

/// Drives `work` to its end on a fresh current-thread runtime.
pub(crate) fn block_on<F: Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(work)
}

/// Runs `work(i)` on `n` OS threads at once (each with its own runtime), so writers really
/// race, and returns their results.
pub(crate) fn on_threads<T, F, Fut>(n: usize, work: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T>,
{
    let work = Arc::new(work);
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let work = Arc::clone(&work);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                barrier.wait();
                runtime.block_on(work(i))
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a writer thread"))
        .collect()
}

pub(crate) fn call(sid: &str, started_at_ms: u64) -> CallRecord {
    let mut rec = CallRecord::new(
        sid,
        "MZ1",
        Some("+14155550101".into()),
        "triage",
        AudioMode::Pcmu,
        started_at_ms,
    );
    rec.transcript
        .push(Role::User, "Where is my order?", started_at_ms + 1);
    rec
}

pub(crate) fn booking(slot: &str, customer: &str) -> Booking {
    Booking {
        slot_id: slot.into(),
        customer: customer.into(),
        name: None,
    }
}

fn turn(text: &str, at_ms: u64) -> Turn {
    Turn {
        role: Role::User,
        text: text.into(),
        at_ms,
    }
}

pub(crate) async fn calls_round_trip_and_replace(store: Arc<dyn Store>) {
    assert_eq!(store.get_call("CA1").await.unwrap(), None);
    let mut rec = call("CA1", 1_000);
    store.put_call(&rec).await.unwrap();
    assert_eq!(store.get_call("CA1").await.unwrap(), Some(rec.clone()));
    rec.finish(CallOutcome::Completed, 5_000);
    store.put_call(&rec).await.unwrap();
    assert_eq!(store.get_call("CA1").await.unwrap(), Some(rec));
    assert_eq!(store.recent_calls(10).await.unwrap().len(), 1);
}

pub(crate) async fn recent_calls_are_newest_first_limited_and_listed_once(store: Arc<dyn Store>) {
    for (sid, at) in [
        ("CA_b", 2_000),
        ("CA_a", 1_000),
        ("CA_d", 300_000),
        ("CA_c", 3_000),
    ] {
        store.put_call(&call(sid, at)).await.unwrap();
    }
    // A call re-put with another start time is listed once, under its current one.
    store.put_call(&call("CA_a", 250_000)).await.unwrap();
    let sids: Vec<String> = store
        .recent_calls(3)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call_sid)
        .collect();
    assert_eq!(sids, vec!["CA_d", "CA_a", "CA_c"]);
    assert!(store.recent_calls(0).await.unwrap().is_empty());
    assert_eq!(store.recent_calls(10).await.unwrap().len(), 4);
}

pub(crate) async fn transcriptions_are_appended_and_found_by_their_words(store: Arc<dyn Store>) {
    for (sid, at) in [("CA1", 1_000), ("CA2", 2_000), ("CA3", 3_000)] {
        store.put_call(&call(sid, at)).await.unwrap();
    }
    store
        .append_transcription("CA1", &turn("My bike has a Flat Tyre", 5))
        .await
        .unwrap();
    store
        .append_transcription("CA3", &turn("another flat tyre, sadly", 5))
        .await
        .unwrap();
    assert_eq!(
        store.get_call("CA1").await.unwrap().unwrap().transcriptions,
        vec![turn("My bike has a Flat Tyre", 5)]
    );
    let sids =
        |calls: Vec<CallRecord>| -> Vec<String> { calls.into_iter().map(|c| c.call_sid).collect() };
    assert_eq!(
        sids(store.find_calls_mentioning("flat TYRE", 10).await.unwrap()),
        vec!["CA3", "CA1"]
    );
    assert_eq!(
        sids(store.find_calls_mentioning("flat tyre", 1).await.unwrap()),
        vec!["CA3"]
    );
    assert_eq!(
        store
            .find_calls_mentioning("where is my order", 10)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(store
        .find_calls_mentioning("  ", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .find_calls_mentioning("unicycle", 10)
        .await
        .unwrap()
        .is_empty());
}

pub(crate) async fn escalation_marks(store: Arc<dyn Store>) {
    assert!(!store.is_escalated("CA1").await.unwrap());
    store.set_escalated("CA1").await.unwrap();
    store.set_escalated("CA1").await.unwrap();
    assert!(store.is_escalated("CA1").await.unwrap());
    assert!(!store.is_escalated("CA2").await.unwrap());
    store.clear_escalated("CA1").await.unwrap();
    store.clear_escalated("CA2").await.unwrap();
    assert!(!store.is_escalated("CA1").await.unwrap());
}

pub(crate) async fn customer_memory_accumulates_calls(store: Arc<dyn Store>) {
    let id = "+14155550101";
    assert_eq!(store.customer(id).await.unwrap(), None);
    let mut first = call("CA1", 1_000);
    first.finish(CallOutcome::Completed, 2_000);
    store
        .record_call_for_customer(id, first.summary())
        .await
        .unwrap();
    store
        .record_call_for_customer(id, call("CA2", 9_000).summary())
        .await
        .unwrap();
    store
        .record_call_for_customer(id, first.summary())
        .await
        .unwrap();
    let customer = store.customer(id).await.unwrap().unwrap();
    assert_eq!(customer.id, id);
    assert_eq!(customer.calls.len(), 2);
    assert_eq!(customer.first_seen_ms, 1_000);
    assert_eq!(customer.last_seen_ms, 9_000);
}

pub(crate) async fn voicemails_join_the_customer_record_once(store: Arc<dyn Store>) {
    let id = "+14155550101";
    let voicemail = |recording: &str, text: &str, at_ms: u64| {
        CustomerChange::Voicemail(Voicemail {
            call_sid: "CA1".into(),
            recording_sid: Some(recording.into()),
            recording_url: Some(format!("https://api.twilio.com/Recordings/{recording}")),
            text: Some(text.into()),
            at_ms,
        })
    };
    // A first contact by voicemail creates the customer.
    store
        .update_customer(id, &voicemail("RE1", "call me back", 5_000))
        .await
        .unwrap();
    store
        .record_call_for_customer(id, call("CA1", 1_000).summary())
        .await
        .unwrap();
    // Twilio retrying the callback replaces, never duplicates.
    store
        .update_customer(id, &voicemail("RE1", "call me back please", 5_000))
        .await
        .unwrap();
    store
        .update_customer(id, &voicemail("RE2", "about order 1001", 7_000))
        .await
        .unwrap();
    let customer = store.customer(id).await.unwrap().unwrap();
    assert_eq!(customer.calls.len(), 1);
    let texts: Vec<_> = customer
        .voicemails
        .iter()
        .map(|v| v.text.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["call me back please", "about order 1001"]);
    assert_eq!(
        customer.voicemails[1].recording_url.as_deref(),
        Some("https://api.twilio.com/Recordings/RE2")
    );
    assert_eq!(customer.first_seen_ms, 1_000);
    assert_eq!(customer.last_seen_ms, 7_000);
}

pub(crate) fn concurrent_customer_updates_are_not_lost(store: Arc<dyn Store>) {
    let writers = Arc::clone(&store);
    on_threads(4, move |t| {
        let store = Arc::clone(&writers);
        async move {
            for i in 0..10 {
                let summary = call(&format!("CA{t}-{i}"), 1_000).summary();
                store
                    .record_call_for_customer("+14155550101", summary)
                    .await
                    .unwrap();
            }
        }
    });
    run(async move {
        let customer = store.customer("+14155550101").await.unwrap().unwrap();
        assert_eq!(customer.calls.len(), 40);
    });
}

pub(crate) async fn threads_are_ordered_and_separate(store: Arc<dyn Store>) {
    for i in 0..5u64 {
        store
            .append_turn("a", &turn(&format!("message {i}"), i))
            .await
            .unwrap();
    }
    // A customer id that extends another's must not share its thread.
    store.append_turn("ab", &turn("other", 9)).await.unwrap();
    let texts: Vec<String> = store
        .recent_turns("a", 3)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert_eq!(texts, vec!["message 2", "message 3", "message 4"]);
    assert_eq!(store.recent_turns("ab", 10).await.unwrap().len(), 1);
    assert!(store.recent_turns("nobody", 10).await.unwrap().is_empty());
}

pub(crate) fn turns_appended_at_once_keep_one_order(store: Arc<dyn Store>) {
    // Writers race on one thread; each one's turns must come out in its own order.
    let writers = Arc::clone(&store);
    on_threads(4, move |t| {
        let store = Arc::clone(&writers);
        async move {
            for i in 0..10u64 {
                store
                    .append_turn("+14155550101", &turn(&format!("{t}:{i}"), i))
                    .await
                    .unwrap();
            }
        }
    });
    run(async move {
        let turns = store.recent_turns("+14155550101", 100).await.unwrap();
        assert_eq!(turns.len(), 40);
        for t in 0..4 {
            let mine: Vec<u64> = turns
                .iter()
                .filter_map(|turn| turn.text.strip_prefix(&format!("{t}:")))
                .filter_map(|i| i.parse().ok())
                .collect();
            assert_eq!(mine, (0..10).collect::<Vec<u64>>(), "writer {t}");
        }
    });
}

pub(crate) async fn message_sids_are_seen_once_and_pruned(store: Arc<dyn Store>) {
    assert!(store.first_sight("SM-old", 100).await.unwrap());
    assert!(!store.first_sight("SM-old", 101).await.unwrap());
    assert!(store.first_sight("SM-new", 900).await.unwrap());
    assert_eq!(store.prune_seen_messages(500).await.unwrap(), 1);
    assert!(
        store.first_sight("SM-old", 1000).await.unwrap(),
        "forgotten, so new again"
    );
    assert!(!store.first_sight("SM-new", 1000).await.unwrap());
}

pub(crate) fn a_message_sid_raced_by_many_is_first_seen_once(store: Arc<dyn Store>) {
    let racers = Arc::clone(&store);
    let firsts = on_threads(8, move |_| {
        let store = Arc::clone(&racers);
        async move { store.first_sight("SM-raced", 1).await.unwrap() }
    });
    assert_eq!(firsts.into_iter().filter(|first| *first).count(), 1);
}

pub(crate) async fn the_catalog_round_trips(store: Arc<dyn Store>) {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/catalog");
    let catalog = crate::domain::catalog::Catalog::load(&shipped).unwrap();
    assert!(store.catalog().await.unwrap().is_none());
    store.put_catalog(&catalog).await.unwrap();
    assert_eq!(store.catalog().await.unwrap(), Some(catalog));
}

pub(crate) async fn pruning_removes_old_calls_only(store: Arc<dyn Store>) {
    store.put_call(&call("CA_old", 1_000)).await.unwrap();
    store.set_escalated("CA_old").await.unwrap();
    store.put_call(&call("CA_new", 10_000)).await.unwrap();
    // A call whose start time moved is judged by its current one.
    store.put_call(&call("CA_moved", 2_000)).await.unwrap();
    store.put_call(&call("CA_moved", 20_000)).await.unwrap();
    assert_eq!(store.prune_calls(5_000).await.unwrap(), 1);
    assert_eq!(store.get_call("CA_old").await.unwrap(), None);
    assert!(!store.is_escalated("CA_old").await.unwrap());
    assert!(store.get_call("CA_new").await.unwrap().is_some());
    assert!(store.get_call("CA_moved").await.unwrap().is_some());
    assert_eq!(store.recent_calls(10).await.unwrap().len(), 2);
    assert_eq!(store.prune_calls(5_000).await.unwrap(), 0);
}

pub(crate) fn bookings_refuse_double_booking_and_foreign_cancels(store: Arc<dyn Store>) {
    let bookings = store.bookings();
    assert_eq!(
        bookings.try_book(&booking("S101", "alice")).unwrap(),
        BookOutcome::Booked
    );
    assert_eq!(
        bookings.try_book(&booking("S101", "bob")).unwrap(),
        BookOutcome::AlreadyBooked(booking("S101", "alice"))
    );
    assert_eq!(
        bookings.cancel("S101", "bob").unwrap(),
        CancelOutcome::NotYours
    );
    assert_eq!(
        bookings.cancel("S999", "bob").unwrap(),
        CancelOutcome::NotBooked
    );
    bookings.try_book(&booking("S102", "alice")).unwrap();
    assert_eq!(bookings.customer_bookings("alice").unwrap().len(), 2);
    assert_eq!(
        bookings.cancel("S101", "alice").unwrap(),
        CancelOutcome::Cancelled(booking("S101", "alice"))
    );
    assert_eq!(bookings.booking("S101").unwrap(), None);
    assert_eq!(
        bookings.try_book(&booking("S101", "bob")).unwrap(),
        BookOutcome::Booked
    );
}

pub(crate) fn one_slot_booked_at_once_has_one_winner(store: Arc<dyn Store>) {
    let racers = Arc::clone(&store);
    let outcomes = on_threads(8, move |t| {
        let store = Arc::clone(&racers);
        async move {
            store
                .bookings()
                .try_book(&booking("S101", &format!("c{t}")))
                .unwrap()
        }
    });
    let winners = outcomes
        .into_iter()
        .filter(|o| *o == BookOutcome::Booked)
        .count();
    assert_eq!(winners, 1);
}

/// Acknowledged means committed: what was written and flushed is there when the store is
/// opened again (`reopen` opens a new handle on the same data; the old one is dropped
/// first).
pub(crate) fn acknowledged_writes_survive_reopening(
    store: Arc<dyn Store>,
    reopen: impl FnOnce() -> Arc<dyn Store>,
) {
    let customer = "+14155550101";
    assert_eq!(
        store
            .bookings()
            .try_book(&booking("S101", customer))
            .unwrap(),
        BookOutcome::Booked
    );
    run({
        let store = Arc::clone(&store);
        async move {
            store.put_call(&call("CA1", 1_000)).await.unwrap();
            store
                .record_call_for_customer(customer, call("CA1", 1_000).summary())
                .await
                .unwrap();
            store.set_escalated("CA1").await.unwrap();
            store.append_turn(customer, &turn("hi", 1)).await.unwrap();
            assert!(store.first_sight("SM1", 1).await.unwrap());
            store.flush().await.unwrap();
        }
    });
    drop(store);
    let store = reopen();
    assert_eq!(
        store.bookings().booking("S101").unwrap(),
        Some(booking("S101", customer))
    );
    assert_eq!(
        store
            .bookings()
            .try_book(&booking("S101", "+14155550199"))
            .unwrap(),
        BookOutcome::AlreadyBooked(booking("S101", customer))
    );
    run(async move {
        assert!(store.get_call("CA1").await.unwrap().is_some());
        assert!(store.is_escalated("CA1").await.unwrap());
        assert_eq!(
            store.customer(customer).await.unwrap().unwrap().calls.len(),
            1
        );
        assert_eq!(store.recent_turns(customer, 5).await.unwrap().len(), 1);
        assert!(!store.first_sight("SM1", 2).await.unwrap());
    });
}

// --- Numbers and identity, text channels (issue 9) ----------------------------------

pub(crate) async fn customer_changes_create_and_accumulate(store: Arc<dyn Store>) {
    use crate::domain::records::{CustomerChange, LineInfo, VerifiedNumber};
    let id = "+14155550123";
    let written = store
        .update_customer(
            id,
            &CustomerChange::TextAgent {
                agent: "booking".into(),
                at_ms: 5_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(written.first_seen_ms, 5_000);
    let line = LineInfo {
        line_type: "landline".into(),
        carrier: Some("AT&T".into()),
        checked_at_ms: 6_000,
    };
    store
        .update_customer(id, &CustomerChange::Line(line.clone()))
        .await
        .unwrap();
    store
        .update_customer(
            id,
            &CustomerChange::Verified(VerifiedNumber {
                number: "+14155550101".into(),
                at_ms: 7_000,
            }),
        )
        .await
        .unwrap();
    // Memory of calls and the changes live side by side.
    store
        .record_call_for_customer(id, call("CA9", 8_000).summary())
        .await
        .unwrap();
    let customer = store.customer(id).await.unwrap().unwrap();
    assert_eq!(customer.text_agent.as_deref(), Some("booking"));
    assert_eq!(customer.line, Some(line));
    assert!(customer.has_verified("+14155550101", 7_000));
    assert!(!customer.has_verified("+14155550101", 7_001));
    assert_eq!(customer.calls.len(), 1);
    assert_eq!(customer.last_seen_ms, 8_000);
}

pub(crate) fn concurrent_first_changes_are_not_lost(store: Arc<dyn Store>) {
    use crate::domain::records::{CustomerChange, VerifiedNumber};
    let writers = Arc::clone(&store);
    on_threads(4, move |t| {
        let store = Arc::clone(&writers);
        async move {
            store
                .update_customer(
                    "+14155550124",
                    &CustomerChange::Verified(VerifiedNumber {
                        number: format!("+1415555020{t}"),
                        at_ms: 1,
                    }),
                )
                .await
                .unwrap();
        }
    });
    run(async move {
        let customer = store.customer("+14155550124").await.unwrap().unwrap();
        assert_eq!(customer.verified.len(), 4, "{customer:?}");
    });
}

pub(crate) async fn old_turns_are_pruned_by_their_time(store: Arc<dyn Store>) {
    store.append_turn("a", &turn("old", 100)).await.unwrap();
    store.append_turn("b", &turn("old too", 200)).await.unwrap();
    store.append_turn("a", &turn("new", 900)).await.unwrap();
    assert_eq!(store.prune_turns(500).await.unwrap(), 2);
    let texts: Vec<String> = store
        .recent_turns("a", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert_eq!(texts, vec!["new"]);
    assert!(store.recent_turns("b", 10).await.unwrap().is_empty());
    assert_eq!(store.prune_turns(500).await.unwrap(), 0);
}

/// Twilio's callbacks (transcription, recording) for a call with no record make an
/// unbridged one; a stream's record written later keeps what they wrote, and so does
/// every snapshot after it.
pub(crate) async fn callbacks_make_and_keep_their_part_of_the_record(store: Arc<dyn Store>) {
    store
        .append_transcription("CA_menu", &turn("two please", 700))
        .await
        .unwrap();
    let unbridged = store.get_call("CA_menu").await.unwrap().unwrap();
    assert_eq!(unbridged.audio_mode, AudioMode::Unbridged);
    assert_eq!(unbridged.outcome, Some(CallOutcome::NotBridged));
    assert_eq!(unbridged.started_at_ms, 700);
    assert_eq!(unbridged.transcriptions, vec![turn("two please", 700)]);
    let recording = |status: &str, url: Option<&str>, at_ms| RecordingEntry {
        sid: "RE1".into(),
        url: url.map(str::to_owned),
        status: status.into(),
        duration_secs: None,
        channels: Some(2),
        source: None,
        at_ms,
    };
    store
        .note_recording(
            "CA_menu",
            &recording("in-progress", Some("https://r/RE1"), 710),
        )
        .await
        .unwrap();
    // The stream starts: its record replaces the unbridged one, callbacks kept.
    let mut live = call("CA_menu", 720);
    store.put_call(&live).await.unwrap();
    store
        .append_transcription("CA_menu", &turn("thanks", 900))
        .await
        .unwrap();
    live.finish(CallOutcome::Completed, 1_000);
    store.put_call(&live).await.unwrap();
    store
        .note_recording("CA_menu", &recording("completed", None, 1_100))
        .await
        .unwrap();
    let stored = store.get_call("CA_menu").await.unwrap().unwrap();
    assert_eq!(stored.outcome, Some(CallOutcome::Completed));
    assert_eq!(stored.audio_mode, AudioMode::Pcmu);
    assert_eq!(stored.transcript, live.transcript);
    assert_eq!(
        stored.transcriptions,
        vec![turn("two please", 700), turn("thanks", 900)]
    );
    // One entry per recording, at its latest status, its URL kept.
    assert_eq!(
        stored.recordings,
        vec![recording("completed", Some("https://r/RE1"), 1_100)]
    );
    let listed: Vec<String> = store
        .recent_calls(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call_sid)
        .collect();
    assert_eq!(listed, vec!["CA_menu"]);
}

pub(crate) fn callback(id: &str, due_at_ms: u64) -> ScheduledCall {
    let mut call = ScheduledCall::new("+14155550101", "booking", "the quote", due_at_ms, 1);
    call.id = id.to_owned();
    call
}

pub(crate) async fn scheduled_calls_are_claimed_when_due_and_settled_once(store: Arc<dyn Store>) {
    assert!(store.schedule_call(&callback("cb1", 100)).await.unwrap());
    assert!(store.schedule_call(&callback("cb2", 300)).await.unwrap());
    let mut again = callback("cb1", 999);
    again.reason = "changed".into();
    assert!(
        !store.schedule_call(&again).await.unwrap(),
        "the same promise twice is kept once"
    );
    assert!(store.claim_due_calls(50, "a", 10).await.unwrap().is_empty());
    let claimed = store.claim_due_calls(100, "a", 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, "cb1");
    assert_eq!(claimed[0].reason, "the quote");
    assert_eq!(claimed[0].state, ScheduleState::Placing);
    assert_eq!(claimed[0].node.as_deref(), Some("a"));
    assert!(store
        .claim_due_calls(200, "b", 10)
        .await
        .unwrap()
        .is_empty());
    let placed = PlacingOutcome::Placed {
        call_sid: "CA1".into(),
    };
    assert!(!store.settle_call("cb1", "b", &placed, 101).await.unwrap());
    assert!(store.settle_call("cb1", "a", &placed, 101).await.unwrap());
    assert!(!store.settle_call("cb1", "a", &placed, 102).await.unwrap());
    assert!(!store.settle_call("nope", "a", &placed, 102).await.unwrap());
    let listed = store.scheduled_calls(10).await.unwrap();
    let states: Vec<(&str, ScheduleState)> =
        listed.iter().map(|c| (c.id.as_str(), c.state)).collect();
    assert_eq!(
        states,
        vec![
            ("cb2", ScheduleState::Pending),
            ("cb1", ScheduleState::Placed)
        ]
    );
    assert_eq!(listed[1].call_sid.as_deref(), Some("CA1"));

    // Every line taken: put back, due later, tried again then.
    assert_eq!(store.claim_due_calls(300, "a", 10).await.unwrap().len(), 1);
    let busy = PlacingOutcome::Retry {
        at_ms: 600,
        reason: "every line taken".into(),
    };
    assert!(store.settle_call("cb2", "a", &busy, 300).await.unwrap());
    assert!(store
        .claim_due_calls(599, "a", 10)
        .await
        .unwrap()
        .is_empty());
    let retried = store.claim_due_calls(600, "b", 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);

    // Its node stopped while placing it: unconfirmed, never placed again.
    assert_eq!(
        store.abandon_stale_calls(600, 700).await.unwrap(),
        0,
        "fresh"
    );
    assert_eq!(store.abandon_stale_calls(601, 700).await.unwrap(), 1);
    assert!(store
        .claim_due_calls(10_000, "c", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(!store.settle_call("cb2", "b", &placed, 701).await.unwrap());
    let listed = store.scheduled_calls(10).await.unwrap();
    assert_eq!(listed[0].id, "cb2", "most recently changed first");
    assert_eq!(listed[0].state, ScheduleState::Unconfirmed);
    assert_eq!(store.scheduled_calls(1).await.unwrap().len(), 1);
}

pub(crate) fn due_calls_raced_by_many_nodes_are_each_claimed_once(store: Arc<dyn Store>) {
    run({
        let store = Arc::clone(&store);
        async move {
            for i in 0..6 {
                store
                    .schedule_call(&callback(&format!("cb{i}"), 100 + i))
                    .await
                    .unwrap();
            }
        }
    });
    let racers = Arc::clone(&store);
    let claims = on_threads(8, move |node| {
        let store = Arc::clone(&racers);
        async move {
            let mut mine = Vec::new();
            for _ in 0..3 {
                let claimed = store
                    .claim_due_calls(1_000, &format!("node{node}"), 2)
                    .await
                    .unwrap();
                mine.extend(claimed.into_iter().map(|c| c.id));
            }
            mine
        }
    });
    let mut ids: Vec<String> = claims.into_iter().flatten().collect();
    ids.sort();
    assert_eq!(ids, (0..6).map(|i| format!("cb{i}")).collect::<Vec<_>>());
}

/// A promised call back survives a restart and is placed once: one still pending is
/// claimable after reopening, once; one whose placing was interrupted by the restart is
/// never claimed again, and becomes `unconfirmed`.
pub(crate) fn scheduled_calls_survive_reopening_and_are_placed_once(
    store: Arc<dyn Store>,
    reopen: impl FnOnce() -> Arc<dyn Store>,
) {
    run({
        let store = Arc::clone(&store);
        async move {
            store
                .schedule_call(&callback("due-later", 5_000))
                .await
                .unwrap();
            store
                .schedule_call(&callback("interrupted", 100))
                .await
                .unwrap();
            assert_eq!(
                store.claim_due_calls(1_000, "a", 10).await.unwrap().len(),
                1
            );
            store.flush().await.unwrap();
        }
    });
    drop(store);
    let store = reopen();
    run(async move {
        assert!(store
            .claim_due_calls(4_999, "a", 10)
            .await
            .unwrap()
            .is_empty());
        let claimed = store.claim_due_calls(5_000, "a", 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, "due-later");
        assert!(store
            .claim_due_calls(9_000, "b", 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.abandon_stale_calls(2_000, 9_000).await.unwrap(), 1);
        let listed = store.scheduled_calls(10).await.unwrap();
        let interrupted = listed.iter().find(|c| c.id == "interrupted").expect("kept");
        assert_eq!(interrupted.state, ScheduleState::Unconfirmed);
    });
}

/// Generates one `#[test]` per check for a backend. `$fresh` is an expression giving
/// `Some` fresh, empty `Arc<dyn Store>`, or `None` when the backend is unavailable here (the
/// backend says why, and refuses to be unavailable under `CI=true`).
macro_rules! conformance_tests {
    ($fresh:expr) => {
        mod conformance_suite {
            #[allow(unused_imports)]
            use super::*;
            use $crate::store::conformance as c;

            #[test]
            fn calls_round_trip_and_replace() {
                if let Some(store) = $fresh {
                    c::run(c::calls_round_trip_and_replace(store));
                }
            }
            #[test]
            fn recent_calls_are_newest_first_limited_and_listed_once() {
                if let Some(store) = $fresh {
                    c::run(c::recent_calls_are_newest_first_limited_and_listed_once(
                        store,
                    ));
                }
            }
            #[test]
            fn transcriptions_are_appended_and_found_by_their_words() {
                if let Some(store) = $fresh {
                    c::run(c::transcriptions_are_appended_and_found_by_their_words(
                        store,
                    ));
                }
            }
            #[test]
            fn callbacks_make_and_keep_their_part_of_the_record() {
                if let Some(store) = $fresh {
                    c::run(c::callbacks_make_and_keep_their_part_of_the_record(store));
                }
            }
            #[test]
            fn escalation_marks() {
                if let Some(store) = $fresh {
                    c::run(c::escalation_marks(store));
                }
            }
            #[test]
            fn customer_memory_accumulates_calls() {
                if let Some(store) = $fresh {
                    c::run(c::customer_memory_accumulates_calls(store));
                }
            }
            #[test]
            fn voicemails_join_the_customer_record_once() {
                if let Some(store) = $fresh {
                    c::run(c::voicemails_join_the_customer_record_once(store));
                }
            }
            #[test]
            fn concurrent_customer_updates_are_not_lost() {
                if let Some(store) = $fresh {
                    c::concurrent_customer_updates_are_not_lost(store);
                }
            }
            #[test]
            fn threads_are_ordered_and_separate() {
                if let Some(store) = $fresh {
                    c::run(c::threads_are_ordered_and_separate(store));
                }
            }
            #[test]
            fn turns_appended_at_once_keep_one_order() {
                if let Some(store) = $fresh {
                    c::turns_appended_at_once_keep_one_order(store);
                }
            }
            #[test]
            fn message_sids_are_seen_once_and_pruned() {
                if let Some(store) = $fresh {
                    c::run(c::message_sids_are_seen_once_and_pruned(store));
                }
            }
            #[test]
            fn a_message_sid_raced_by_many_is_first_seen_once() {
                if let Some(store) = $fresh {
                    c::a_message_sid_raced_by_many_is_first_seen_once(store);
                }
            }
            #[test]
            fn the_catalog_round_trips() {
                if let Some(store) = $fresh {
                    c::run(c::the_catalog_round_trips(store));
                }
            }
            #[test]
            fn pruning_removes_old_calls_only() {
                if let Some(store) = $fresh {
                    c::run(c::pruning_removes_old_calls_only(store));
                }
            }
            #[test]
            fn bookings_refuse_double_booking_and_foreign_cancels() {
                if let Some(store) = $fresh {
                    c::bookings_refuse_double_booking_and_foreign_cancels(store);
                }
            }
            #[test]
            fn scheduled_calls_are_claimed_when_due_and_settled_once() {
                if let Some(store) = $fresh {
                    c::run(c::scheduled_calls_are_claimed_when_due_and_settled_once(
                        store,
                    ));
                }
            }
            #[test]
            fn due_calls_raced_by_many_nodes_are_each_claimed_once() {
                if let Some(store) = $fresh {
                    c::due_calls_raced_by_many_nodes_are_each_claimed_once(store);
                }
            }
            #[test]
            fn one_slot_booked_at_once_has_one_winner() {
                if let Some(store) = $fresh {
                    c::one_slot_booked_at_once_has_one_winner(store);
                }
            }
            // Numbers and identity, text channels.
            #[test]
            fn customer_changes_create_and_accumulate() {
                if let Some(store) = $fresh {
                    c::run(c::customer_changes_create_and_accumulate(store));
                }
            }
            #[test]
            fn concurrent_first_changes_are_not_lost() {
                if let Some(store) = $fresh {
                    c::concurrent_first_changes_are_not_lost(store);
                }
            }
            #[test]
            fn old_turns_are_pruned_by_their_time() {
                if let Some(store) = $fresh {
                    c::run(c::old_turns_are_pruned_by_their_time(store));
                }
            }
        }
    };
}

pub(crate) use conformance_tests;
