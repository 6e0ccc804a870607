//! Latency histograms that travel between processes.
//!
//! Workers record into an HdrHistogram and ship it to the parent as the list
//! of its non-empty buckets, which the parent adds into its own; percentiles
//! of the merged histogram are then exact to the histogram's precision,
//! which averaging per-worker percentiles would not be.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Up to an hour in microseconds, three significant digits.
const HIGHEST: u64 = 3_600_000_000;

#[derive(Debug, Clone)]
pub struct Recorder(Histogram<u64>);

/// A histogram as `[value, count]` pairs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Buckets(pub Vec<(u64, u64)>);

/// The figures a report shows for one histogram, in the unit recorded.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        // The bounds are constants that HdrHistogram accepts.
        Recorder(Histogram::new_with_bounds(1, HIGHEST, 3).expect("valid histogram bounds"))
    }

    /// Records `value`, clamped into the histogram's range: a negative
    /// latency (clock step) counts as 1, an absurd one as the maximum.
    pub fn record(&mut self, value: u64) {
        self.0.saturating_record(value.clamp(1, HIGHEST));
    }

    pub fn buckets(&self) -> Buckets {
        Buckets(
            self.0
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    pub fn add(&mut self, buckets: &Buckets) {
        for &(value, count) in &buckets.0 {
            // Values came from a histogram with the same bounds.
            let _ = self.0.record_n(value.clamp(1, HIGHEST), count);
        }
    }

    pub fn summary(&self) -> Summary {
        let h = &self.0;
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_buckets_give_the_percentiles_of_the_whole() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for v in 1..=500 {
            a.record(v);
        }
        for v in 501..=1000 {
            b.record(v);
        }
        let mut whole = Recorder::new();
        whole.add(&a.buckets());
        whole.add(&b.buckets());
        let summary = whole.summary();
        assert_eq!(summary.count, 1000);
        assert!((499..=501).contains(&summary.p50), "{summary:?}");
        assert!((989..=991).contains(&summary.p99), "{summary:?}");
    }
}
