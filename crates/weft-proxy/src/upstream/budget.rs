//! The retry budget of one destination service, in each proxy: every request deposits
//! a share of a retry (`BackendPolicy.retryBudget.percent`, default a fifth), a retry
//! withdraws a whole one, and the savings are capped ([`BUDGET_CAP_MILLI`]), so a long
//! healthy spell cannot pay for a storm later. On top of that a small floor
//! (`minRetriesPerSecond`, default 10) lets a quiet client retry at all. With every
//! request failing, a proxy sends at most about 1.2× the requests it was given, plus
//! the floor, however many attempts the routes allow. All of it is atomics: no lock on
//! the request path, and a reload changes the rates without losing the savings.
//!
//! Not here: which outcomes are retried and the wait between attempts
//! ([`crate::outbound::retry`]).

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The most a budget saves, in thousandths of a retry: 10 retries.
pub const BUDGET_CAP_MILLI: i64 = 10_000;
/// One destination's retry budget.
#[derive(Debug)]
pub struct Budget {
    /// What each request deposits, in thousandths of a retry.
    ratio_milli: AtomicI64,
    /// Retries allowed each second regardless of the savings.
    floor_per_second: AtomicU32,
    /// Savings, in thousandths of a retry.
    balance: AtomicI64,
    /// The second (since the process started) the floor counter is for.
    second: AtomicU64,
    /// Floor retries used in that second.
    floor_used: AtomicU32,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(&weft_api::proxy::RetryBudget::default())
    }
}

impl Budget {
    /// An empty budget with `config`'s rates.
    pub fn new(config: &weft_api::proxy::RetryBudget) -> Self {
        let budget = Self {
            ratio_milli: AtomicI64::new(0),
            floor_per_second: AtomicU32::new(0),
            balance: AtomicI64::new(0),
            second: AtomicU64::new(0),
            floor_used: AtomicU32::new(0),
        };
        budget.set(config);
        budget
    }

    /// Applies new rates; the savings carry over.
    pub fn set(&self, config: &weft_api::proxy::RetryBudget) {
        self.ratio_milli
            .store(i64::from(config.percent.min(100)) * 10, Ordering::Relaxed);
        self.floor_per_second
            .store(config.min_retries_per_second, Ordering::Relaxed);
    }

    /// A request was sent (its first attempt).
    pub fn deposit(&self) {
        // In the healthy steady state the savings sit at the cap: a plain load keeps
        // the cache line shared between cores instead of writing it on every request.
        if self.balance.load(Ordering::Relaxed) >= BUDGET_CAP_MILLI {
            return;
        }
        let ratio = self.ratio_milli.load(Ordering::Relaxed);
        let before = self.balance.fetch_add(ratio, Ordering::Relaxed);
        if before + ratio > BUDGET_CAP_MILLI {
            self.balance.fetch_min(BUDGET_CAP_MILLI, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the savings, else from this second's floor. `false`: the
    /// budget is spent, do not retry.
    pub fn withdraw(&self) -> bool {
        if self.balance.fetch_sub(1000, Ordering::Relaxed) >= 1000 {
            return true;
        }
        self.balance.fetch_add(1000, Ordering::Relaxed);
        let now = seconds();
        let second = self.second.load(Ordering::Relaxed);
        if second != now
            && self
                .second
                .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.floor_used.store(0, Ordering::Relaxed);
        }
        self.floor_used.fetch_add(1, Ordering::Relaxed)
            < self.floor_per_second.load(Ordering::Relaxed)
    }
}

/// Whole seconds since the first call (a coarse monotonic clock).
fn seconds() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_every_request_failing_the_budget_allows_a_fifth_more_plus_the_floor() {
        let budget = Budget::default();
        let mut retried = 0;
        for _ in 0..1000 {
            budget.deposit();
            // Each request would like three retries.
            for _ in 0..3 {
                if budget.withdraw() {
                    retried += 1;
                }
            }
        }
        // 200 from the ratio, at most 10 from the floor of this second (and the next,
        // if the loop straddles one).
        assert!((200..=220).contains(&retried), "{retried} retries");
    }

    #[test]
    fn savings_are_capped_so_a_healthy_spell_cannot_fund_a_storm() {
        let budget = Budget::default();
        for _ in 0..100_000 {
            budget.deposit();
        }
        let mut retried = 0;
        while budget.withdraw() {
            retried += 1;
            assert!(retried < 1000, "unbounded");
        }
        let cap = usize::try_from(BUDGET_CAP_MILLI / 1000).expect("small");
        let floor = 10;
        assert!(retried <= cap + 2 * floor, "{retried}");
        assert!(retried >= cap, "{retried}");
    }

    #[test]
    fn a_configured_budget_changes_the_share_and_the_floor() {
        let budget = Budget::new(&weft_api::proxy::RetryBudget {
            percent: 50,
            min_retries_per_second: 0,
        });
        let mut retried = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.withdraw() {
                retried += 1;
            }
        }
        // Half the requests may retry; with no floor, not one more.
        assert_eq!(retried, 500);
        budget.set(&weft_api::proxy::RetryBudget {
            percent: 0,
            min_retries_per_second: 0,
        });
        let mut more = 0;
        for _ in 0..100 {
            budget.deposit();
            if budget.withdraw() {
                more += 1;
            }
        }
        assert_eq!(more, 0, "a zero budget allows no retries");
    }
}
