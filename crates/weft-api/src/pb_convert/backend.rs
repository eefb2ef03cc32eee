//! `BackendPolicy` on the wire ↔ in the proxy model. Zero values on the wire mean the
//! documented default where zero would be meaningless (limits, thresholds), so an
//! older control plane that leaves a field out gets the default, never a limit of 0.

use std::time::Duration;

use super::{duration_from_pb, duration_to_pb, port, Error};
use crate::pb::v1 as pb;
use crate::proxy;

/// Reads a wire `BackendPolicy`; `path` is its field path in the `Service`.
pub(super) fn policy(path: &str, p: &pb::BackendPolicy) -> Result<proxy::BackendPolicy, Error> {
    let defaults = proxy::BackendPolicy::default();
    let hash_on = p
        .hash_on
        .as_ref()
        .and_then(|h| h.kind.as_ref())
        .map(|kind| hash_on(&format!("{path}.hashOn"), kind))
        .transpose()?;
    let slow_start = p
        .slow_start
        .as_ref()
        .map(|d| duration_from_pb(&format!("{path}.slowStart"), d))
        .transpose()?;
    let limits = p.limits.as_ref().map_or_else(proxy::Limits::default, |l| {
        let or_default = |v: u32| if v == 0 { proxy::Limits::DEFAULT } else { v };
        proxy::Limits {
            max_connections: or_default(l.max_connections),
            max_pending_requests: or_default(l.max_pending_requests),
            max_requests: or_default(l.max_requests),
            max_requests_per_connection: (l.max_requests_per_connection != 0)
                .then_some(l.max_requests_per_connection),
        }
    });
    let outlier_detection = p
        .outlier_detection
        .as_ref()
        .map(|o| outlier(&format!("{path}.outlierDetection"), o))
        .transpose()?;
    let health_check = p
        .health_check
        .as_ref()
        .map(|h| health(&format!("{path}.healthCheck"), h))
        .transpose()?;
    let budget = p.retry_budget.unwrap_or_default();
    let retry_budget = proxy::RetryBudget {
        percent: percent(
            &format!("{path}.retryBudget.percent"),
            budget.percent.unwrap_or(defaults.retry_budget.percent),
        )?,
        min_retries_per_second: budget
            .min_retries_per_second
            .unwrap_or(defaults.retry_budget.min_retries_per_second),
    };
    let locality = p.locality.unwrap_or_default();
    let locality = proxy::Locality {
        prefer_zone: locality
            .prefer_zone
            .unwrap_or(defaults.locality.prefer_zone),
        min_healthy_percent: percent(
            &format!("{path}.locality.minHealthyPercent"),
            locality
                .min_healthy_percent
                .unwrap_or(defaults.locality.min_healthy_percent),
        )?,
    };
    Ok(proxy::BackendPolicy {
        hash_on,
        slow_start,
        limits,
        outlier_detection,
        health_check,
        retry_budget,
        locality,
        panic_threshold_percent: percent(
            &format!("{path}.panicThresholdPercent"),
            p.panic_threshold_percent
                .unwrap_or(defaults.panic_threshold_percent),
        )?,
        source: (!p.source.is_empty()).then(|| p.source.clone()),
    })
}

fn percent(path: &str, value: u32) -> Result<u32, Error> {
    if value <= 100 {
        Ok(value)
    } else {
        Err(Error::new(
            path,
            format!("{value} is not a percentage (0-100)"),
        ))
    }
}

fn hash_on(path: &str, kind: &pb::hash_on::Kind) -> Result<proxy::HashOn, Error> {
    Ok(match kind {
        pb::hash_on::Kind::Header(name) if !name.is_empty() => {
            proxy::HashOn::Header(name.to_ascii_lowercase())
        }
        pb::hash_on::Kind::Header(_) => {
            return Err(Error::new(format!("{path}.header"), "must not be empty"))
        }
        pb::hash_on::Kind::Cookie(c) if !c.name.is_empty() => {
            proxy::HashOn::Cookie(proxy::HashCookie {
                name: c.name.clone(),
                ttl: c
                    .ttl
                    .as_ref()
                    .map(|d| duration_from_pb(&format!("{path}.cookie.ttl"), d))
                    .transpose()?,
                path: if c.path.is_empty() {
                    "/".to_owned()
                } else {
                    c.path.clone()
                },
            })
        }
        pb::hash_on::Kind::Cookie(_) => {
            return Err(Error::new(
                format!("{path}.cookie.name"),
                "must not be empty",
            ))
        }
        pb::hash_on::Kind::SourceIp(_) => proxy::HashOn::SourceIp,
    })
}

fn outlier(path: &str, o: &pb::OutlierDetection) -> Result<proxy::OutlierDetection, Error> {
    let defaults = proxy::OutlierDetection::default();
    let duration = |field: &str, d: Option<&prost_types::Duration>, default: Duration| {
        d.map_or(Ok(default), |d| {
            duration_from_pb(&format!("{path}.{field}"), d)
        })
    };
    let nonzero = |v: u32| (v != 0).then_some(v);
    let success_rate = o.success_rate.map(|r| {
        let defaults = proxy::SuccessRate::default();
        proxy::SuccessRate {
            minimum_hosts: nonzero(r.minimum_hosts).unwrap_or(defaults.minimum_hosts),
            request_volume: nonzero(r.request_volume).unwrap_or(defaults.request_volume),
            stdev_factor: if r.stdev_factor.is_finite() && r.stdev_factor > 0.0 {
                r.stdev_factor
            } else {
                defaults.stdev_factor
            },
        }
    });
    Ok(proxy::OutlierDetection {
        consecutive_5xx: nonzero(o.consecutive_5xx),
        consecutive_gateway_errors: nonzero(o.consecutive_gateway_errors),
        interval: duration("interval", o.interval.as_ref(), defaults.interval)?,
        base_ejection_time: duration(
            "baseEjectionTime",
            o.base_ejection_time.as_ref(),
            defaults.base_ejection_time,
        )?,
        max_ejection_time: duration(
            "maxEjectionTime",
            o.max_ejection_time.as_ref(),
            defaults.max_ejection_time,
        )?,
        max_ejection_percent: percent(
            &format!("{path}.maxEjectionPercent"),
            o.max_ejection_percent,
        )?,
        success_rate,
    })
}

fn health(path: &str, h: &pb::HealthCheck) -> Result<proxy::HealthCheck, Error> {
    let defaults = proxy::HealthCheck {
        port: 0,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        unhealthy_threshold: 3,
        healthy_threshold: 2,
        check: proxy::HealthCheckKind::Tcp,
    };
    let duration = |field: &str, d: Option<&prost_types::Duration>, default: Duration| {
        d.map_or(Ok(default), |d| {
            duration_from_pb(&format!("{path}.{field}"), d)
        })
        .and_then(|d| {
            if d.is_zero() {
                Err(Error::new(format!("{path}.{field}"), "must be positive"))
            } else {
                Ok(d)
            }
        })
    };
    let check = match &h.kind {
        Some(pb::health_check::Kind::Http(http)) => {
            if !http.path.starts_with('/') {
                return Err(Error::new(
                    format!("{path}.http.path"),
                    format!("{:?} must start with '/'", http.path),
                ));
            }
            let expected = if http.expected.is_empty() {
                proxy::default_expected_statuses()
            } else {
                http.expected
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let low = u16::try_from(r.low)
                            .ok()
                            .filter(|c| (100..=599).contains(c));
                        let high = u16::try_from(r.high)
                            .ok()
                            .filter(|c| (100..=599).contains(c));
                        match (low, high) {
                            (Some(l), Some(h)) if l <= h => Ok((l, h)),
                            _ => Err(Error::new(
                                format!("{path}.http.expected[{i}]"),
                                format!(
                                    "{}-{} is not a status range (100-599, low ≤ high)",
                                    r.low, r.high
                                ),
                            )),
                        }
                    })
                    .collect::<Result<Vec<_>, Error>>()?
            };
            proxy::HealthCheckKind::Http {
                path: http.path.clone(),
                host: http.host.clone(),
                expected,
            }
        }
        Some(pb::health_check::Kind::Tcp(_)) => proxy::HealthCheckKind::Tcp,
        Some(pb::health_check::Kind::Grpc(g)) => proxy::HealthCheckKind::Grpc {
            service: g.service.clone(),
        },
        None => {
            return Err(Error::new(
                path,
                "needs one of http, tcp or grpc (a newer control plane?)",
            ))
        }
    };
    let nonzero = |v: u32, default: u32| if v == 0 { default } else { v };
    Ok(proxy::HealthCheck {
        port: port(&format!("{path}.port"), h.port)?,
        interval: duration("interval", h.interval.as_ref(), defaults.interval)?,
        timeout: duration("timeout", h.timeout.as_ref(), defaults.timeout)?,
        unhealthy_threshold: nonzero(h.unhealthy_threshold, defaults.unhealthy_threshold),
        healthy_threshold: nonzero(h.healthy_threshold, defaults.healthy_threshold),
        check,
    })
}

/// Writes a proxy `BackendPolicy` in its wire form.
pub fn policy_to_pb(p: &proxy::BackendPolicy) -> pb::BackendPolicy {
    pb::BackendPolicy {
        hash_on: p.hash_on.as_ref().map(|h| pb::HashOn {
            kind: Some(match h {
                proxy::HashOn::Header(name) => pb::hash_on::Kind::Header(name.clone()),
                proxy::HashOn::Cookie(c) => pb::hash_on::Kind::Cookie(pb::HashCookie {
                    name: c.name.clone(),
                    ttl: c.ttl.map(duration_to_pb),
                    path: c.path.clone(),
                }),
                proxy::HashOn::SourceIp => pb::hash_on::Kind::SourceIp(true),
            }),
        }),
        slow_start: p.slow_start.map(duration_to_pb),
        limits: Some(pb::ConnectionLimits {
            max_connections: p.limits.max_connections,
            max_pending_requests: p.limits.max_pending_requests,
            max_requests: p.limits.max_requests,
            max_requests_per_connection: p.limits.max_requests_per_connection.unwrap_or(0),
        }),
        outlier_detection: p.outlier_detection.as_ref().map(|o| pb::OutlierDetection {
            consecutive_5xx: o.consecutive_5xx.unwrap_or(0),
            consecutive_gateway_errors: o.consecutive_gateway_errors.unwrap_or(0),
            interval: Some(duration_to_pb(o.interval)),
            base_ejection_time: Some(duration_to_pb(o.base_ejection_time)),
            max_ejection_time: Some(duration_to_pb(o.max_ejection_time)),
            max_ejection_percent: o.max_ejection_percent,
            success_rate: o.success_rate.map(|r| pb::SuccessRate {
                minimum_hosts: r.minimum_hosts,
                request_volume: r.request_volume,
                stdev_factor: r.stdev_factor,
            }),
        }),
        health_check: p.health_check.as_ref().map(|h| pb::HealthCheck {
            port: u32::from(h.port),
            interval: Some(duration_to_pb(h.interval)),
            timeout: Some(duration_to_pb(h.timeout)),
            unhealthy_threshold: h.unhealthy_threshold,
            healthy_threshold: h.healthy_threshold,
            kind: Some(match &h.check {
                proxy::HealthCheckKind::Http {
                    path,
                    host,
                    expected,
                } => pb::health_check::Kind::Http(pb::HttpHealthCheck {
                    path: path.clone(),
                    host: host.clone(),
                    expected: expected
                        .iter()
                        .map(|(low, high)| pb::StatusRange {
                            low: u32::from(*low),
                            high: u32::from(*high),
                        })
                        .collect(),
                }),
                proxy::HealthCheckKind::Tcp => pb::health_check::Kind::Tcp(pb::TcpHealthCheck {}),
                proxy::HealthCheckKind::Grpc { service } => {
                    pb::health_check::Kind::Grpc(pb::GrpcHealthCheck {
                        service: service.clone(),
                    })
                }
            }),
        }),
        retry_budget: Some(pb::RetryBudget {
            percent: Some(p.retry_budget.percent),
            min_retries_per_second: Some(p.retry_budget.min_retries_per_second),
        }),
        locality: Some(pb::Locality {
            prefer_zone: Some(p.locality.prefer_zone),
            min_healthy_percent: Some(p.locality.min_healthy_percent),
        }),
        panic_threshold_percent: Some(p.panic_threshold_percent),
        source: p.source.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_round_trips_through_the_wire_form() {
        let policy = proxy::BackendPolicy {
            hash_on: Some(proxy::HashOn::Cookie(proxy::HashCookie {
                name: "session".into(),
                ttl: Some(Duration::from_secs(3600)),
                path: "/app".into(),
            })),
            slow_start: Some(Duration::from_secs(30)),
            limits: proxy::Limits {
                max_connections: 10,
                max_pending_requests: 20,
                max_requests: 30,
                max_requests_per_connection: Some(100),
            },
            outlier_detection: Some(proxy::OutlierDetection {
                consecutive_gateway_errors: Some(3),
                success_rate: Some(proxy::SuccessRate::default()),
                ..proxy::OutlierDetection::default()
            }),
            health_check: Some(proxy::HealthCheck {
                port: 8080,
                interval: Duration::from_secs(2),
                timeout: Duration::from_millis(500),
                unhealthy_threshold: 2,
                healthy_threshold: 1,
                check: proxy::HealthCheckKind::Http {
                    path: "/healthz".into(),
                    host: "catalog".into(),
                    expected: vec![(200, 204)],
                },
            }),
            retry_budget: proxy::RetryBudget {
                percent: 0,
                min_retries_per_second: 1,
            },
            locality: proxy::Locality {
                prefer_zone: false,
                min_healthy_percent: 50,
            },
            panic_threshold_percent: 0,
            source: Some("BackendPolicy/default/catalog".into()),
        };
        let wire = policy_to_pb(&policy);
        assert_eq!(super::policy("policy", &wire), Ok(policy));
    }

    #[test]
    fn an_empty_wire_policy_means_every_default_but_no_ejection() {
        let read = super::policy("policy", &pb::BackendPolicy::default()).expect("valid");
        assert_eq!(read.limits, proxy::Limits::default());
        assert_eq!(read.retry_budget, proxy::RetryBudget::default());
        assert_eq!(read.locality, proxy::Locality::default());
        assert_eq!(read.panic_threshold_percent, 50);
        assert_eq!(read.outlier_detection, None);
    }

    #[test]
    fn bad_wire_values_name_their_field() {
        let wire = pb::BackendPolicy {
            retry_budget: Some(pb::RetryBudget {
                percent: Some(150),
                min_retries_per_second: None,
            }),
            ..pb::BackendPolicy::default()
        };
        let err = super::policy("policy", &wire).expect_err("150%");
        assert_eq!(err.path, "policy.retryBudget.percent");

        let wire = pb::BackendPolicy {
            health_check: Some(pb::HealthCheck {
                port: 80,
                kind: Some(pb::health_check::Kind::Http(pb::HttpHealthCheck {
                    path: "/".into(),
                    host: String::new(),
                    expected: vec![pb::StatusRange {
                        low: 300,
                        high: 200,
                    }],
                })),
                ..pb::HealthCheck::default()
            }),
            ..pb::BackendPolicy::default()
        };
        let err = super::policy("policy", &wire).expect_err("inverted range");
        assert_eq!(err.path, "policy.healthCheck.http.expected[0]");
    }
}
