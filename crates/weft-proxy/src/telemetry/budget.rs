//! A budget of lines per second, shared by every connection without a lock: how many
//! denial and audit lines (and tap events) may be written in the current second.

use std::time::Duration;

/// Denial and audit log lines allowed per second; more are counted, not written, so a
/// flood of refused requests cannot fill the disk.
pub const AUTHZ_LOG_LINES_PER_SECOND: u32 = 20;

/// A budget of log lines per second, shared by every connection without a lock.
#[derive(Debug)]
pub struct LogBudget {
    per_second: u32,
    /// The second (since `start`) the count is for, and the count, in one word.
    state: std::sync::atomic::AtomicU64,
    start: std::time::Instant,
}

impl LogBudget {
    /// A budget of `per_second` lines.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            state: std::sync::atomic::AtomicU64::new(0),
            start: std::time::Instant::now(),
        }
    }

    /// Whether one more line may be written now.
    pub fn take(&self) -> bool {
        self.take_at(self.start.elapsed())
    }

    fn take_at(&self, since_start: Duration) -> bool {
        use std::sync::atomic::Ordering;
        let second = since_start.as_secs() & 0xffff_ffff;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (at, count) = (current >> 32, current & 0xffff_ffff);
            let next = if at == second {
                if count >= u64::from(self.per_second) {
                    return false;
                }
                current + 1
            } else {
                (second << 32) | 1
            };
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_allows_its_lines_each_second_and_no_more() {
        let budget = LogBudget::new(3);
        let at = |ms| budget.take_at(Duration::from_millis(ms));
        assert_eq!(
            [at(0), at(10), at(20), at(30), at(999)],
            [true, true, true, false, false]
        );
        assert_eq!(
            [at(1000), at(1001), at(1002), at(1003)],
            [true, true, true, false]
        );
        assert!(at(5000), "a new second starts a new budget");
    }
}
