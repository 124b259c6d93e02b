//! Graceful drain: what the engine needs to know while the process is being stopped.
//!
//! On SIGTERM/SIGINT the shell starts the drain with a deadline (`server.drain_secs`);
//! from then on `/health` answers `503 {"status":"draining"}` so load balancers stop
//! sending, new calls hear the busy TwiML, and a new text message is taken only while
//! enough of the drain is left to answer it (`messaging.deadline_ms`) — else it is refused
//! as when every conversation slot is taken. Text turns in progress are counted here
//! ([`TurnInFlight`]) so the drain can wait for them; live calls are the registry's.
//!
//! Plain state, no actix: the shell orchestrates, the routes and actors read it.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    /// When the drain ends; set once, when it starts.
    deadline: OnceLock<Instant>,
    /// Text turns being answered.
    turns: AtomicUsize,
    /// Signalled whenever a turn ends.
    turn_ended: Notify,
}

/// The drain state of one engine. Cheap to clone; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    inner: Arc<Inner>,
}

impl Drain {
    /// Starts the drain, to end `within` from now. Returns `false` if it had started
    /// already (the first deadline stands).
    pub fn start(&self, within: Duration) -> bool {
        self.inner.deadline.set(Instant::now() + within).is_ok()
    }

    pub fn is_draining(&self) -> bool {
        self.inner.deadline.get().is_some()
    }

    /// When the drain ends, once it has started.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline.get().copied()
    }

    /// Whether a new text message, answered within `answer_within`, can be taken: always
    /// when not draining, and during the drain while that much of it is left.
    pub fn takes_text(&self, answer_within: Duration) -> bool {
        self.deadline().is_none_or(|deadline| {
            deadline.saturating_duration_since(Instant::now()) >= answer_within
        })
    }

    /// A text turn begins; it is counted until the returned guard is dropped.
    pub fn turn(&self) -> TurnInFlight {
        self.inner.turns.fetch_add(1, Ordering::AcqRel);
        TurnInFlight {
            inner: self.inner.clone(),
        }
    }

    /// Text turns being answered now.
    pub fn turns(&self) -> usize {
        self.inner.turns.load(Ordering::Acquire)
    }

    /// Resolves once no text turn is in progress.
    pub async fn turns_done(&self) {
        loop {
            let mut ended = pin!(self.inner.turn_ended.notified());
            // Registered before the check, so an end between the two is not missed.
            ended.as_mut().enable();
            if self.turns() == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// One text turn in progress (see [`Drain::turn`]).
#[derive(Debug)]
pub struct TurnInFlight {
    inner: Arc<Inner>,
}

impl Drop for TurnInFlight {
    fn drop(&mut self) {
        self.inner.turns.fetch_sub(1, Ordering::AcqRel);
        self.inner.turn_ended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_taken_while_there_is_time_to_answer_them() {
        let drain = Drain::default();
        assert!(!drain.is_draining());
        assert!(drain.takes_text(Duration::from_secs(3600)));
        assert!(drain.start(Duration::from_secs(60)));
        assert!(
            !drain.start(Duration::from_secs(1)),
            "the first deadline stands"
        );
        assert!(drain.is_draining());
        assert!(drain.takes_text(Duration::from_secs(10)));
        assert!(!drain.takes_text(Duration::from_secs(120)));
    }

    #[actix_web::test]
    async fn turns_are_counted_until_their_guard_drops() {
        let drain = Drain::default();
        drain.turns_done().await;
        let first = drain.turn();
        let second = drain.turn();
        assert_eq!(drain.turns(), 2);
        let waiter = {
            let drain = drain.clone();
            actix_web::rt::spawn(async move { drain.turns_done().await })
        };
        drop(first);
        assert_eq!(drain.turns(), 1);
        drop(second);
        waiter
            .await
            .expect("the waiter resolves once both turns ended");
        assert_eq!(drain.turns(), 0);
    }
}
