//! Hop latency of a remote server, read from its `/metrics`: the cumulative buckets of
//! `switchboard_hop_latency_seconds{direction}` before and after the run. Coarser than the
//! in-process recorder (a quantile is reported as the bucket bound it falls under), but it
//! needs nothing from the server beyond what Prometheus already scrapes.

use super::report::HopStats;

const SERIES: &str = "switchboard_hop_latency_seconds_bucket{";

/// Cumulative `(le, count)` pairs per direction, `le` ascending (`+Inf` last).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Buckets {
    pub(super) inbound: Vec<(f64, u64)>,
    pub(super) outbound: Vec<(f64, u64)>,
}

/// The value of `name="…"` in a label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = labels.get(start..)?;
    rest.get(..rest.find('"')?)
}

/// Reads the hop buckets from a Prometheus text exposition.
pub(super) fn parse(text: &str) -> Buckets {
    let mut buckets = Buckets::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(SERIES) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let le = match label(labels, "le") {
            Some("+Inf") => f64::INFINITY,
            Some(le) => match le.parse() {
                Ok(le) => le,
                Err(_) => continue,
            },
            None => continue,
        };
        let Some(count) = value.trim().parse::<f64>().ok().filter(|c| *c >= 0.0) else {
            continue;
        };
        // Counts are integers printed as floats; `as` saturates.
        let entry = (le, count as u64);
        match label(labels, "direction") {
            Some("inbound") => buckets.inbound.push(entry),
            Some("outbound") => buckets.outbound.push(entry),
            _ => {}
        }
    }
    for series in [&mut buckets.inbound, &mut buckets.outbound] {
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    buckets
}

/// Quantiles of what was observed between two scrapes, as bucket upper bounds.
pub(super) fn stats(before: &[(f64, u64)], after: &[(f64, u64)]) -> HopStats {
    let diff: Vec<(f64, u64)> = after
        .iter()
        .map(|&(le, count)| {
            let earlier = before.iter().find(|(b, _)| *b == le).map_or(0, |&(_, c)| c);
            (le, count.saturating_sub(earlier))
        })
        .collect();
    let total = diff.last().map_or(0, |&(_, c)| c);
    let bound = |rank: u64| {
        diff.iter()
            .find(|&&(_, cumulative)| cumulative >= rank)
            .map(|&(le, _)| le * 1e6)
            .filter(|us| us.is_finite())
    };
    let at = |q: f64| (total > 0).then(|| bound(((q * total as f64).ceil() as u64).max(1)))?;
    HopStats {
        count: total,
        p50_us: at(0.50),
        p90_us: at(0.90),
        p95_us: at(0.95),
        p99_us: at(0.99),
        max_us: at(1.0),
        // The series has no 15 ms bound.
        over_15ms: None,
        over_15ms_share: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# TYPE switchboard_hop_latency_seconds histogram
switchboard_hop_latency_seconds_bucket{direction="inbound",le="0.0001"} 10
switchboard_hop_latency_seconds_bucket{direction="inbound",le="0.0005"} 10
switchboard_hop_latency_seconds_bucket{direction="inbound",le="+Inf"} 10
switchboard_hop_latency_seconds_sum{direction="inbound"} 0.0002
"#;
    const AFTER: &str = r#"switchboard_hop_latency_seconds_bucket{direction="inbound",le="0.0005"} 108
switchboard_hop_latency_seconds_bucket{direction="inbound",le="0.0001"} 60
switchboard_hop_latency_seconds_bucket{direction="inbound",le="+Inf"} 110
switchboard_hop_latency_seconds_bucket{le="0.001",direction="outbound"} 4
switchboard_hop_latency_seconds_bucket{direction="outbound",le="+Inf"} 4
switchboard_turn_latency_seconds_bucket{le="0.001"} 99
"#;

    #[test]
    fn buckets_are_read_per_direction_in_order() {
        let after = parse(AFTER);
        assert_eq!(
            after.inbound,
            [(0.0001, 60), (0.0005, 108), (f64::INFINITY, 110)]
        );
        assert_eq!(after.outbound, [(0.001, 4), (f64::INFINITY, 4)]);
    }

    #[test]
    fn quantiles_are_bucket_bounds_of_the_difference() {
        let (before, after) = (parse(BEFORE), parse(AFTER));
        let inbound = stats(&before.inbound, &after.inbound);
        assert_eq!(inbound.count, 100);
        // 50 of the 100 new ones under 100 µs, 48 more under 500 µs, 2 beyond.
        assert_eq!(inbound.p50_us, Some(100.0));
        assert_eq!(inbound.p95_us, Some(500.0));
        assert_eq!(inbound.p99_us, None, "beyond the last finite bucket");
        let outbound = stats(&before.outbound, &after.outbound);
        assert_eq!((outbound.count, outbound.max_us), (4, Some(1000.0)));
        assert_eq!(stats(&[], &[]).p50_us, None);
    }
}
