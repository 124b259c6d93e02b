//! Frame pacing for the caller's audio: frame `n` is due at `t0 + n·20 ms`, an absolute
//! deadline, so a late wake-up never shifts later frames (no drift) and a stalled task
//! catches up with a burst, as a real media gateway's clock would.
//!
//! Pure: the caller passes the instant each frame actually went out.

use std::time::Duration;

use tokio::time::Instant;

/// One Media Streams frame: 20 ms of μ-law at 8 kHz.
pub(super) const FRAME: Duration = Duration::from_millis(20);
/// Bytes in one [`FRAME`].
pub(super) const FRAME_BYTES: usize = 160;

/// Where the caller's stream stands: how many frames have gone out since `t0`.
#[derive(Debug)]
pub(super) struct Pacer {
    t0: Instant,
    sent: u64,
}

/// What a frame carries on the wire, and whether it missed its slot.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    /// `media.chunk`: 1 for the first frame.
    pub(super) chunk: u64,
    /// `media.timestamp`: the frame's place in the stream in ms, from its deadline (not from
    /// when it happened to be sent), as a gateway's presentation timestamps are.
    pub(super) timestamp_ms: u64,
    /// Sent more than one frame period after its deadline.
    pub(super) late: bool,
}

impl Pacer {
    pub(super) fn new(t0: Instant) -> Self {
        Self { t0, sent: 0 }
    }

    /// The call's time origin.
    pub(super) fn t0(&self) -> Instant {
        self.t0
    }

    /// The next frame's offset from `t0`.
    pub(super) fn next_offset(&self) -> Duration {
        FRAME.saturating_mul(u32::try_from(self.sent).unwrap_or(u32::MAX))
    }

    /// The instant the next frame is due.
    pub(super) fn next_deadline(&self) -> Instant {
        self.t0 + self.next_offset()
    }

    /// Records that the next frame went out at `at` and returns its stamp.
    pub(super) fn sent(&mut self, at: Instant) -> Stamp {
        let deadline = self.next_deadline();
        let stamp = Stamp {
            chunk: self.sent + 1,
            timestamp_ms: u64::try_from(self.next_offset().as_millis()).unwrap_or(u64::MAX),
            late: at.saturating_duration_since(deadline) > FRAME,
        };
        self.sent += 1;
        stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn deadlines_are_absolute_multiples_of_the_frame() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert_eq!(p.next_deadline(), t0);
        // Each frame goes out 7 ms late; the schedule does not slide.
        for n in 0..100u64 {
            assert_eq!(p.next_deadline(), t0 + ms(20 * n));
            let stamp = p.sent(t0 + ms(20 * n + 7));
            assert_eq!(stamp.chunk, n + 1);
            assert_eq!(stamp.timestamp_ms, 20 * n);
            assert!(!stamp.late);
        }
        assert_eq!(p.next_deadline(), t0 + ms(2000));
    }

    #[test]
    fn a_stall_is_followed_by_a_burst_on_the_original_schedule() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        p.sent(t0);
        // The task stalls for 100 ms: frames 1..=5 all go out at 105 ms.
        let wake = t0 + ms(105);
        let late: Vec<bool> = (0..5)
            .map(|_| {
                assert!(p.next_deadline() <= wake, "still behind: send at once");
                p.sent(wake).late
            })
            .collect();
        // Deadlines 20, 40, 60, 80 ms are missed by more than a frame; 100 ms is not.
        assert_eq!(late, [true, true, true, true, false]);
        assert_eq!(p.next_deadline(), t0 + ms(120));
    }

    #[test]
    fn exactly_one_frame_late_is_not_late() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert!(!p.sent(t0 + ms(20)).late);
        assert!(p.sent(t0 + ms(20) + ms(20) + Duration::from_micros(1)).late);
        // Early (a timer firing a hair before the deadline) is not late either.
        assert!(!p.sent(t0 + ms(39)).late);
    }
}
