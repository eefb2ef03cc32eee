//! Waiting for a condition, and deciding whether a test that needs something from the
//! host runs: one of each for every suite.

use std::time::Duration;

/// The variable that makes a test fail, instead of skipping, when the host lacks what
/// it needs (CI sets `WEFT_E2E=required`).
pub const E2E_ENV: &str = "WEFT_E2E";

/// Whether `WEFT_E2E=required`: tests must not skip.
pub fn required() -> bool {
    std::env::var(E2E_ENV).is_ok_and(|v| v == "required")
}

/// Skips `test` because `why`: prints `skipping <test>: <why>` and returns `false`, or
/// panics with that message when [`required`] (so CI fails instead of skipping).
pub fn skip(test: &str, why: &str) -> bool {
    let message = format!("skipping {test}: {why}");
    assert!(!required(), "{message} ({E2E_ENV}=required)");
    eprintln!("{message} (set {E2E_ENV}=required to fail instead)");
    false
}

/// Polls `check` every 50 ms until it holds or `timeout` passes; whether it held.
/// Blocks the thread: for tests outside an async runtime.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Polls `check` every 10 ms of tokio time until it holds; fails the test, naming
/// `what`, after `timeout`. Works with paused time.
pub async fn eventually_async(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_reports_a_condition_that_holds_late_and_one_that_never_does() {
        let mut calls = 0;
        assert!(eventually(Duration::from_secs(5), || {
            calls += 1;
            calls >= 3
        }));
        assert!(!eventually(Duration::from_millis(120), || false));
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_async_waits_in_tokio_time() {
        let start = tokio::time::Instant::now();
        eventually_async("a second", Duration::from_secs(5), || {
            start.elapsed() >= Duration::from_secs(1)
        })
        .await;
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
