//! A latency histogram on atomics: one relaxed increment of a bucket and one of the sum per
//! observation, no lock and no allocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds, in seconds. The MCP conventions' boundaries (0.01 s to 300 s) with three
/// below them: a gateway's own refusals and a backend on the same network answer within
/// milliseconds, which the conventions' first bucket would not tell apart.
pub const BOUNDS: [f64; 17] =
    [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// The same bounds in microseconds, which observations are compared with.
const BOUNDS_MICROS: [u64; 17] = {
    let mut micros = [0u64; 17];
    let mut idx = 0;
    while idx < BOUNDS.len() {
        micros[idx] = (BOUNDS[idx] * 1e6) as u64;
        idx += 1;
    }
    micros
};

#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

/// What a scrape reads of a [`Histogram`].
pub struct Read {
    /// Cumulative counts per bound, then the total (`+Inf`).
    pub cumulative: [u64; BOUNDS.len() + 1],
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let idx = BOUNDS_MICROS.partition_point(|bound| *bound < micros);
        self.buckets[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|it| it.load(Ordering::Relaxed)).sum()
    }

    /// The count is the sum of the buckets read, so `+Inf` and `_count` always agree.
    pub fn read(&self) -> Read {
        let mut cumulative = [0u64; BOUNDS.len() + 1];
        let mut total = 0u64;
        for (idx, bucket) in self.buckets.iter().enumerate() {
            total += bucket.load(Ordering::Relaxed);
            cumulative[idx] = total;
        }
        Read { cumulative, sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(1000));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(1000));
        let read = histogram.read();
        assert_eq!(read.cumulative[0], 1, "0.001 s is in le=0.001");
        assert_eq!(read.cumulative[1], 1);
        assert_eq!(read.cumulative[2], 2, "3 ms is in le=0.005");
        assert_eq!(read.cumulative[BOUNDS.len() - 1], 2);
        assert_eq!(read.cumulative[BOUNDS.len()], 3, "1000 s only in +Inf");
        assert_eq!(histogram.count(), 3);
        assert!((read.sum_seconds - 1000.004).abs() < 1e-9, "{}", read.sum_seconds);
    }
}
