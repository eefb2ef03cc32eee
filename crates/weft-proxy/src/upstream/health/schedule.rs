//! The checker task of one endpoint: a [`probe`] every [`Check::interval`] (±10%,
//! the first within 10% of it), each outcome fed to the endpoint's [`State`], and the
//! state changes logged.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::{probe, Check, State, MIN_INTERVAL};
use crate::backoff::full_jitter;
use crate::http::pool::Dialer;

/// The checker task of one endpoint; dropping it stops the checks.
#[derive(Debug)]
#[must_use = "dropping the handle stops the health checks"]
pub struct Handle {
    task: JoinHandle<()>,
}

/// Starts checking an endpoint with `check` over streams from `dialer`, recording the
/// outcomes in `state`: the first check within 10% of the interval, then one every
/// interval ±10%. State changes are logged with `label` (e.g. the endpoint address) as
/// `endpoint`. Must be called within a Tokio runtime.
pub fn spawn(check: Check, dialer: Dialer, state: Arc<State>, label: Arc<str>) -> Handle {
    Handle {
        task: tokio::spawn(run(check, dialer, state, label)),
    }
}

/// The checker loop; runs until its task is aborted.
async fn run(check: Check, dialer: Dialer, state: Arc<State>, label: Arc<str>) {
    let interval = check.interval.max(MIN_INTERVAL);
    let mut delay = full_jitter(interval / 10);
    // Whether anything about this endpoint was logged above debug yet: a new endpoint
    // that never passes has no state change to log, but the operator must learn why.
    let mut announced = false;
    loop {
        tokio::time::sleep(delay).await;
        let result = probe(&check, &dialer).await;
        let change = state.observe(&check, result.is_ok());
        let kind = check.kind.name();
        match (&result, change) {
            (_, Some(true)) => {
                tracing::info!(endpoint = %label, check = kind, "endpoint passed its health check; load balancing uses it");
            }
            (Err(failure), Some(false)) => {
                tracing::warn!(
                    endpoint = %label, check = kind, reason = failure.reason(), error = %failure,
                    failures = check.unhealthy_threshold.max(1),
                    "endpoint failed its health checks; load balancing skips it"
                );
            }
            (Err(failure), _) if !announced => {
                tracing::warn!(
                    endpoint = %label, check = kind, reason = failure.reason(), error = %failure,
                    "endpoint has not passed a health check yet; load balancing skips it until one passes"
                );
            }
            (Err(failure), _) => {
                tracing::debug!(endpoint = %label, check = kind, reason = failure.reason(), error = %failure, "health check failed");
            }
            (Ok(()), _) => {
                tracing::debug!(endpoint = %label, check = kind, "health check passed");
            }
        }
        announced |= change.is_some() || result.is_err();
        delay = interval
            .saturating_sub(interval / 10)
            .saturating_add(full_jitter(interval / 5));
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
