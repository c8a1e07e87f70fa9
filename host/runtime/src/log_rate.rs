//! How many log lines one loaded component may write: a token bucket shared by every request
//! and instance of the component, so that neither many small requests nor one long one can
//! flood the host's log.

use crate::state::Limits;
use std::sync::Mutex;
use std::time::Instant;

/// A token bucket of log lines: `burst` lines at once, refilled at `per_second`. Lines past
/// it are dropped and counted; the next line let through reports the count.
#[derive(Debug)]
pub(crate) struct LogRate {
    per_second: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

/// What the bucket says about one line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Write it; `dropped_before` lines were dropped since the last line written.
    Write { dropped_before: u64 },
    /// Drop it (counted).
    Drop,
}

impl LogRate {
    /// A full bucket of `burst` lines refilled at `per_second` lines per second.
    pub(crate) fn new(per_second: u32, burst: u32) -> LogRate {
        LogRate {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst),
                refilled: Instant::now(),
                dropped: 0,
            }),
        }
    }

    /// The rate `limits` set for a component.
    pub(crate) fn for_limits(limits: &Limits) -> LogRate {
        LogRate::new(limits.log_lines_per_second, limits.log_burst)
    }

    /// Takes a line from the bucket at time `now`.
    pub(crate) fn admit(&self, now: Instant) -> Admit {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.refilled = b.refilled.max(now);
        if b.tokens < 1.0 {
            b.dropped += 1;
            return Admit::Drop;
        }
        b.tokens -= 1.0;
        Admit::Write {
            dropped_before: std::mem::take(&mut b.dropped),
        }
    }

    /// Counts a line dropped for another reason (the request's log bytes), so that the next
    /// line written reports it with the rest.
    pub(crate) fn count_dropped(&self) {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_lines_are_dropped_and_counted() {
        let rate = LogRate::new(10, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(rate.admit(now), Admit::Write { dropped_before: 0 });
        }
        for _ in 0..5 {
            assert_eq!(rate.admit(now), Admit::Drop);
        }
        // 100 ms at 10 lines per second refills one line, which reports the five dropped.
        let later = now + Duration::from_millis(100);
        assert_eq!(rate.admit(later), Admit::Write { dropped_before: 5 });
        assert_eq!(rate.admit(later), Admit::Drop);
    }

    #[test]
    fn the_bucket_refills_at_the_rate_up_to_the_burst() {
        let rate = LogRate::new(100, 5);
        let now = Instant::now();
        for _ in 0..5 {
            assert!(matches!(rate.admit(now), Admit::Write { .. }));
        }
        // An hour idle refills only the burst.
        let later = now + Duration::from_secs(3600);
        let written = (0..20)
            .filter(|_| matches!(rate.admit(later), Admit::Write { .. }))
            .count();
        assert_eq!(written, 5);
    }

    #[test]
    fn lines_dropped_for_the_byte_budget_are_reported_too() {
        let rate = LogRate::new(10, 10);
        rate.count_dropped();
        rate.count_dropped();
        assert_eq!(
            rate.admit(Instant::now()),
            Admit::Write { dropped_before: 2 }
        );
    }

    #[test]
    fn a_zero_rate_writes_nothing() {
        let rate = LogRate::new(0, 0);
        assert_eq!(rate.admit(Instant::now()), Admit::Drop);
    }

    #[test]
    fn threads_share_one_bucket() {
        let rate = std::sync::Arc::new(LogRate::new(0, 100));
        let now = Instant::now();
        let written: usize = (0..4)
            .map(|_| {
                let rate = rate.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| matches!(rate.admit(now), Admit::Write { .. }))
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(written, 100);
    }
}
