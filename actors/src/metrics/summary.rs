//! What the dashboard's charts read from the process's series: quantiles of the turn
//! latency histograms (from their Prometheus buckets, so at a bucket's upper bound) and
//! the finished calls per agent and outcome.

use std::collections::BTreeMap;

use prometheus::core::Collector;

/// The cumulative buckets of a histogram, summed over its label values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    /// Upper bounds in seconds, ascending (the `+Inf` bucket is the count).
    bounds: Vec<f64>,
    /// Observations at or below each bound.
    cumulative: Vec<u64>,
    count: u64,
}

impl Buckets {
    fn of(collector: &dyn Collector) -> Buckets {
        let mut buckets = Buckets::default();
        for family in collector.collect() {
            for metric in family.get_metric() {
                let histogram = metric.get_histogram();
                buckets.count += histogram.get_sample_count();
                for (i, bucket) in histogram.get_bucket().iter().enumerate() {
                    match buckets.cumulative.get_mut(i) {
                        Some(count) => *count += bucket.cumulative_count(),
                        None => {
                            buckets.bounds.push(bucket.upper_bound());
                            buckets.cumulative.push(bucket.cumulative_count());
                        }
                    }
                }
            }
        }
        buckets
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// What was observed after `earlier` (of the same histogram).
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets {
            bounds: self.bounds.clone(),
            cumulative: self
                .cumulative
                .iter()
                .zip(earlier.cumulative.iter().chain(std::iter::repeat(&0)))
                .map(|(now, before)| now.saturating_sub(*before))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
        }
    }

    /// The upper bound (seconds) of the bucket holding the `q` quantile; `None` when
    /// nothing was observed, or when it lies beyond the last bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // `as` saturates; the rank is at least 1.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        self.cumulative
            .iter()
            .position(|&seen| seen >= rank)
            .and_then(|i| self.bounds.get(i).copied())
    }
}

/// Caller speech end → first answer audio played, every Realtime and relay call.
pub fn voice_turns() -> Buckets {
    Buckets::of(&*super::TURN_LATENCY)
}

/// Customer message → answer ready, every text channel together.
pub fn text_turns() -> Buckets {
    Buckets::of(&*super::TEXT_TURN_LATENCY)
}

/// Finished calls per agent (active at the end), then per outcome.
pub fn call_outcomes_by_agent() -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut outcomes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for family in super::CALL_OUTCOMES_BY_AGENT.collect() {
        for metric in family.get_metric() {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|pair| pair.name() == name)
                    .map(|pair| pair.value().to_owned())
                    .unwrap_or_default()
            };
            // Counter values are whole numbers kept as f64.
            let value = metric.get_counter().get_value().max(0.0) as u64;
            if value > 0 {
                *outcomes
                    .entry(label("agent"))
                    .or_default()
                    .entry(label("outcome"))
                    .or_default() += value;
            }
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(cumulative: &[u64]) -> Buckets {
        Buckets {
            bounds: vec![0.1, 0.5, 1.0],
            cumulative: cumulative.to_vec(),
            count: cumulative.last().copied().unwrap_or(0),
        }
    }

    #[test]
    fn quantiles_are_the_bound_of_the_bucket_that_holds_them() {
        let b = buckets(&[50, 90, 100]);
        assert_eq!(b.quantile(0.5), Some(0.1));
        assert_eq!(b.quantile(0.9), Some(0.5));
        assert_eq!(b.quantile(0.99), Some(1.0));
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn since_keeps_what_came_later() {
        let later = buckets(&[50, 90, 100]).since(&buckets(&[50, 60, 60]));
        assert_eq!(later.count(), 40);
        assert_eq!(later.quantile(0.5), Some(0.5));
    }
}
