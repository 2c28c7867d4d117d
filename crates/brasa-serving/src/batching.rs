//! Dynamic batching, as Triton does it: concurrent requests wait in a bounded queue and are
//! coalesced into one forward pass of up to `max_batch` rows, or when the oldest has waited
//! `max_queue_delay_us`.

use serde::{Deserialize, Serialize};

/// A model's batching configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchPolicy {
    /// Most rows in one forward pass (1 turns batching off).
    pub max_batch: usize,
    /// Longest a request waits for others before its batch runs anyway (Triton's
    /// `max_queue_delay_microseconds`).
    pub max_queue_delay_us: u64,
    /// Most rows waiting; beyond them requests are refused (HTTP 503).
    pub max_queue_rows: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy { max_batch: 32, max_queue_delay_us: 2_000, max_queue_rows: 1_024 }
    }
}

/// Whether a request may join the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It waits for its batch.
    Accept,
    /// The queue is full: refuse it, and suggest retrying after this many seconds.
    Reject {
        /// For the `Retry-After` header.
        retry_after_secs: u32,
    },
}

impl BatchPolicy {
    /// Check the policy itself.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch == 0 {
            return Err("maxBatch must be at least 1".into());
        }
        if self.max_queue_rows < self.max_batch {
            return Err(format!(
                "maxQueueRows ({}) must be at least maxBatch ({})",
                self.max_queue_rows, self.max_batch
            ));
        }
        if self.max_queue_delay_us > 10_000_000 {
            return Err("maxQueueDelay must be at most 10 s".into());
        }
        Ok(())
    }

    /// May a request of `rows` join a queue holding `queued_rows`? When not, the suggested
    /// retry delay drains the queue at `rows_per_sec` (the recent throughput), 1 to 60 s.
    pub fn admit(&self, queued_rows: usize, rows: usize, rows_per_sec: f64) -> Admission {
        if queued_rows + rows <= self.max_queue_rows {
            return Admission::Accept;
        }
        let rate = if rows_per_sec.is_finite() && rows_per_sec > 1.0 { rows_per_sec } else { 1.0 };
        let secs = ((queued_rows + rows) as f64 / rate).ceil().clamp(1.0, 60.0);
        Admission::Reject { retry_after_secs: secs as u32 }
    }

    /// How long (µs) until the queue's next batch should run: 0 when it is full enough or
    /// its oldest request has waited long enough; `None` when the queue is empty.
    pub fn dispatch_in(&self, queued_rows: usize, oldest_wait_us: u64) -> Option<u64> {
        if queued_rows == 0 {
            return None;
        }
        if queued_rows >= self.max_batch || oldest_wait_us >= self.max_queue_delay_us {
            return Some(0);
        }
        Some(self.max_queue_delay_us - oldest_wait_us)
    }

    /// How many requests, from the head of the queue (rows per request, in arrival order),
    /// go into the next batch: as many as fit in `max_batch` rows, and always at least one
    /// (a request larger than `max_batch` runs alone rather than starving).
    pub fn next_batch(&self, queued: &[usize]) -> usize {
        let mut rows = 0;
        for (taken, &r) in queued.iter().enumerate() {
            if taken > 0 && rows + r > self.max_batch {
                return taken;
            }
            rows += r;
        }
        queued.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: BatchPolicy = BatchPolicy { max_batch: 8, max_queue_delay_us: 1000, max_queue_rows: 32 };

    #[test]
    fn dispatches_when_full_or_late() {
        assert_eq!(POLICY.dispatch_in(0, 5000), None);
        assert_eq!(POLICY.dispatch_in(3, 200), Some(800));
        assert_eq!(POLICY.dispatch_in(3, 1000), Some(0));
        assert_eq!(POLICY.dispatch_in(8, 0), Some(0));
    }

    #[test]
    fn admission_is_bounded_and_suggests_a_retry() {
        assert_eq!(POLICY.admit(30, 2, 100.0), Admission::Accept);
        assert_eq!(POLICY.admit(31, 2, 100.0), Admission::Reject { retry_after_secs: 1 });
        assert_eq!(POLICY.admit(31, 2, 0.5), Admission::Reject { retry_after_secs: 33 });
        assert_eq!(POLICY.admit(31, 2, f64::NAN), Admission::Reject { retry_after_secs: 33 });
    }

    #[test]
    fn validates() {
        assert!(POLICY.validate().is_ok());
        assert!(BatchPolicy { max_batch: 0, ..POLICY }.validate().is_err());
        assert!(BatchPolicy { max_queue_rows: 4, ..POLICY }.validate().is_err());
    }

    proptest! {
        /// A batch is a non-empty prefix within max_batch rows (unless its one request is
        /// larger), and it takes every request that fits.
        #[test]
        fn batches_are_maximal_prefixes(queued in prop::collection::vec(1usize..12, 0..20)) {
            let n = POLICY.next_batch(&queued);
            if queued.is_empty() {
                prop_assert_eq!(n, 0);
            } else {
                prop_assert!(n >= 1);
                let rows: usize = queued[..n].iter().sum();
                prop_assert!(n == 1 || rows <= POLICY.max_batch);
                if n < queued.len() {
                    prop_assert!(rows + queued[n] > POLICY.max_batch);
                }
            }
        }
    }
}
