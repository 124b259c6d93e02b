//! The dashboard's live charts over the last hour: a small in-memory time series of live
//! calls and conversations with the latency percentiles of each interval, sampled every
//! [`SAMPLE_EVERY`] by the `Sampler` actor and bounded to [`KEEP`] samples. Nothing is
//! stored: a restart starts a fresh hour.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;

use crate::clock::wall_clock_ms;
use crate::engine::Shared;
use crate::metrics::summary::{self, Buckets};
use crate::metrics::{self, Hop, LatencySnapshot};

/// How often the engine is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// One hour of samples.
pub const KEEP: usize = 720;

/// The engine at one moment, and the latencies of the interval that ended then.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    /// Live calls (Media Streams and ConversationRelay).
    pub calls: i64,
    /// Live text conversations.
    pub conversations: i64,
    /// p99 of the hops of the interval, each way (µs); `None` without traffic.
    pub hop_inbound_p99_us: Option<u64>,
    pub hop_outbound_p99_us: Option<u64>,
    /// p99 of the voice turns of the interval (ms, at a bucket's upper bound).
    pub voice_turn_p99_ms: Option<u64>,
    /// p99 of the text turns of the interval (ms, at a bucket's upper bound).
    pub text_turn_p99_ms: Option<u64>,
}

/// The last [`KEEP`] samples, oldest first.
#[derive(Debug)]
pub struct Series {
    samples: VecDeque<Sample>,
    keep: usize,
}

impl Series {
    pub fn new(keep: usize) -> Self {
        Series {
            samples: VecDeque::with_capacity(keep.min(KEEP)),
            keep: keep.max(1),
        }
    }

    pub fn push(&mut self, sample: Sample) {
        while self.samples.len() >= self.keep {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples taken at or after `from_ms`.
    pub fn since(&self, from_ms: u64) -> Vec<Sample> {
        self.samples
            .iter()
            .filter(|s| s.at_ms >= from_ms)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// The engine's series, shared by the sampler and the dashboard's readers.
#[derive(Clone)]
pub struct Timeline(Arc<Mutex<Series>>);

impl Timeline {
    /// Starts sampling `shared`'s engine on the current actix system.
    pub fn start(shared: Arc<Shared>) -> Timeline {
        let timeline = Timeline(Arc::new(Mutex::new(Series::new(KEEP))));
        Sampler {
            shared,
            timeline: timeline.clone(),
            previous: None,
        }
        .start();
        timeline
    }

    /// The samples of the last `window`, oldest first.
    pub fn last(&self, window: Duration) -> Vec<Sample> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.lock().since(wall_clock_ms().saturating_sub(window_ms))
    }

    fn push(&self, sample: Sample) {
        self.lock().push(sample);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        // A sample is plain data: one left half-written by a panic is still readable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The histograms as they were at the previous sample.
struct Previous {
    hops: [LatencySnapshot; 2],
    voice: Buckets,
    text: Buckets,
}

impl Previous {
    fn now() -> Previous {
        Previous {
            hops: [
                metrics::hop_latency_snapshot(Hop::Inbound),
                metrics::hop_latency_snapshot(Hop::Outbound),
            ],
            voice: summary::voice_turns(),
            text: summary::text_turns(),
        }
    }
}

/// Takes a [`Sample`] every [`SAMPLE_EVERY`], the first at once.
struct Sampler {
    shared: Arc<Shared>,
    timeline: Timeline,
    previous: Option<Previous>,
}

impl Sampler {
    fn sample(&mut self) {
        let census = self.shared.census.snapshot();
        let now = Previous::now();
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let millis = |seconds: f64| (seconds * 1000.0).round() as u64;
        let (hop_in, hop_out, voice, text) = match &self.previous {
            Some(before) => {
                let [now_in, now_out] = &now.hops;
                let [before_in, before_out] = &before.hops;
                (
                    now_in.since(before_in).quantile(0.99).map(micros),
                    now_out.since(before_out).quantile(0.99).map(micros),
                    now.voice.since(&before.voice).quantile(0.99).map(millis),
                    now.text.since(&before.text).quantile(0.99).map(millis),
                )
            }
            None => (None, None, None, None),
        };
        self.timeline.push(Sample {
            at_ms: wall_clock_ms(),
            calls: census.calls + census.relay_calls,
            conversations: census.conversations,
            hop_inbound_p99_us: hop_in,
            hop_outbound_p99_us: hop_out,
            voice_turn_p99_ms: voice,
            text_turn_p99_ms: text,
        });
        self.previous = Some(now);
    }
}

impl Actor for Sampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sample();
        ctx.run_interval(SAMPLE_EVERY, |act, _ctx| act.sample());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, calls: i64) -> Sample {
        Sample {
            at_ms,
            calls,
            conversations: 0,
            hop_inbound_p99_us: None,
            hop_outbound_p99_us: None,
            voice_turn_p99_ms: None,
            text_turn_p99_ms: None,
        }
    }

    #[test]
    fn the_series_keeps_the_most_recent_samples() {
        let mut series = Series::new(3);
        for i in 0..5 {
            series.push(sample(i * 5000, i as i64));
        }
        assert_eq!(series.len(), 3);
        let kept: Vec<i64> = series.since(0).iter().map(|s| s.calls).collect();
        assert_eq!(kept, [2, 3, 4]);
        let recent: Vec<i64> = series.since(15_000).iter().map(|s| s.calls).collect();
        assert_eq!(recent, [3, 4]);
    }
}
