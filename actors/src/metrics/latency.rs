//! A lock-free log-linear latency histogram, fine enough for sub-millisecond quantiles: the
//! in-process twin of the Prometheus hop histogram that `switchboard loadtest` reads.
//!
//! A [`LatencySnapshot`] serialises sparsely (`[[bucket, count], …]`, empty buckets left
//! out), so a histogram can travel between processes (the OpenAI emulator's `/mock/stats`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two: a recorded value is kept within 1/32 (3 %) of itself.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two above the exact range, up to 2^41 ns (36 minutes); longer is clamped.
const OCTAVES: usize = 36;
const BUCKETS: usize = SUB + OCTAVES * SUB;

/// A lock-free log-linear histogram of durations (nanoseconds below 32 ns are exact, then
/// 32 buckets per power of two), cheap enough to update on every audio frame.
pub struct LatencyRecorder {
    counts: [AtomicU64; BUCKETS],
}

impl LatencyRecorder {
    pub const fn new() -> Self {
        LatencyRecorder {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    pub fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get(bucket_of(nanos)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket holding `nanos`.
fn bucket_of(nanos: u64) -> usize {
    if nanos < SUB as u64 {
        return nanos as usize;
    }
    // `nanos >= 32`, so the highest set bit is at least SUB_BITS.
    let shift = 63 - nanos.leading_zeros() - SUB_BITS;
    let sub = (nanos >> shift) as usize & (SUB - 1);
    (((shift as usize) + 1) << SUB_BITS | sub).min(BUCKETS - 1)
}

/// The largest value bucket `index` holds.
fn bucket_ceiling(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let shift = (index >> SUB_BITS) - 1;
    let sub = (index & (SUB - 1)) as u64;
    ((SUB as u64 + sub + 1) << shift) - 1
}

/// The counts of a [`LatencyRecorder`] at one moment (empty by default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Sparse", from = "Sparse")]
pub struct LatencySnapshot {
    counts: Vec<u64>,
}

/// The wire form of a [`LatencySnapshot`]: `(bucket, count)` for every non-empty bucket.
#[derive(Serialize, Deserialize)]
struct Sparse(Vec<(usize, u64)>);

impl From<LatencySnapshot> for Sparse {
    fn from(snapshot: LatencySnapshot) -> Sparse {
        Sparse(
            snapshot
                .counts
                .into_iter()
                .enumerate()
                .filter(|&(_, count)| count > 0)
                .collect(),
        )
    }
}

impl From<Sparse> for LatencySnapshot {
    /// Buckets this build does not have (another version's, or nonsense) are dropped.
    fn from(Sparse(buckets): Sparse) -> LatencySnapshot {
        let mut counts = vec![0u64; BUCKETS];
        for (index, count) in buckets {
            if let Some(slot) = counts.get_mut(index) {
                *slot = slot.saturating_add(count);
            }
        }
        LatencySnapshot { counts }
    }
}

impl LatencySnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was recorded between `earlier` and this snapshot.
    pub fn since(&self, earlier: &LatencySnapshot) -> LatencySnapshot {
        LatencySnapshot {
            counts: self
                .counts
                .iter()
                .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(now, before)| now.saturating_sub(*before))
                .collect(),
        }
    }

    /// The value at or below which a share `q` (0..=1) of the observations lie, rounded up
    /// to its bucket's ceiling (so never under-reported); `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        // `as` saturates; the rank is at least 1 so q = 0 gives the minimum.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        self.counts.iter().enumerate().find_map(|(index, &count)| {
            seen = seen.saturating_add(count);
            (total > 0 && seen >= rank).then(|| Duration::from_nanos(bucket_ceiling(index)))
        })
    }

    /// Observations that may exceed `limit`: those in buckets whose ceiling is above it (so a
    /// value up to 3 % under `limit` can be counted, one over it never escapes).
    pub fn count_over(&self, limit: Duration) -> u64 {
        let limit = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        self.counts
            .iter()
            .enumerate()
            .filter(|&(index, _)| bucket_ceiling(index) > limit)
            .map(|(_, &count)| count)
            .sum()
    }

    /// The largest observation, to its bucket's ceiling.
    pub fn max(&self) -> Option<Duration> {
        self.counts
            .iter()
            .rposition(|&count| count > 0)
            .map(|index| Duration::from_nanos(bucket_ceiling(index)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_every_value_within_three_percent() {
        let mut v = 0u64;
        while v < 1 << 40 {
            let index = bucket_of(v);
            let ceiling = bucket_ceiling(index);
            assert!(ceiling >= v, "{v} → bucket {index} ≤ {ceiling}");
            assert!(ceiling - v <= v / 32, "{v} → {ceiling}");
            if index > 0 {
                assert!(bucket_ceiling(index - 1) < v, "{v} belongs below {index}");
            }
            v = v * 21 / 20 + 1;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_and_max_come_from_the_recorded_distribution() {
        let recorder = LatencyRecorder::new();
        assert_eq!(recorder.snapshot().quantile(0.5), None);
        assert_eq!(recorder.snapshot().max(), None);
        // 1..=100 µs, one each.
        for us in 1..=100 {
            recorder.record(Duration::from_micros(us));
        }
        let snap = recorder.snapshot();
        assert_eq!(snap.count(), 100);
        let within = |got: Option<Duration>, us: u64| {
            let got = got.expect("recorded").as_nanos() as u64;
            let want = us * 1000;
            assert!(got >= want && got - want <= want / 32, "{got} vs {want}");
        };
        within(snap.quantile(0.5), 50);
        within(snap.quantile(0.99), 99);
        within(snap.quantile(0.0), 1);
        within(snap.max(), 100);
    }

    #[test]
    fn snapshots_travel_as_json_and_refuse_foreign_buckets() {
        let recorder = LatencyRecorder::new();
        for us in [3, 700, 700, 16_000] {
            recorder.record(Duration::from_micros(us));
        }
        let snap = recorder.snapshot();
        let json = serde_json::to_string(&snap).unwrap();
        assert_eq!(json.matches('[').count(), 4, "sparse: {json}");
        let back: LatencySnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        assert_eq!(back.count_over(Duration::from_millis(15)), 1);
        assert_eq!(back.count_over(Duration::from_micros(600)), 3);
        let foreign: LatencySnapshot = serde_json::from_str("[[5,2],[999999,7]]").unwrap();
        assert_eq!(foreign.count(), 2);
        assert_eq!(LatencySnapshot::default().max(), None);
        assert_eq!(snap.since(&LatencySnapshot::default()), snap);
    }

    #[test]
    fn since_keeps_only_what_came_later() {
        let recorder = LatencyRecorder::new();
        recorder.record(Duration::from_millis(10));
        let before = recorder.snapshot();
        recorder.record(Duration::from_micros(3));
        let diff = recorder.snapshot().since(&before);
        assert_eq!(diff.count(), 1);
        assert!(diff.max().is_some_and(|d| d < Duration::from_micros(4)));
    }
}
