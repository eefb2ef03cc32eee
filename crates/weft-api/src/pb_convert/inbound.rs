//! Rate limits and faults of an `InboundPolicy`, on the wire ↔ in the proxy model.

use std::collections::BTreeMap;

use super::route::route_match;
use super::{duration_from_pb, duration_to_pb, port, Error};
use crate::pb::v1 as pb;
use crate::proxy;

fn ports(path: &str, list: &[u32]) -> Result<Vec<u16>, Error> {
    list.iter()
        .enumerate()
        .map(|(i, p)| port(&format!("{path}.ports[{i}]"), *p))
        .collect()
}

fn matches(path: &str, list: &[pb::RouteMatch]) -> Result<Vec<proxy::RouteMatch>, Error> {
    list.iter()
        .enumerate()
        .map(|(i, m)| route_match(&format!("{path}.matches[{i}]"), m))
        .collect()
}

/// A share in millionths as a percentage.
fn percent(path: &str, per_million: u32) -> Result<f64, Error> {
    if per_million > 1_000_000 {
        return Err(Error::new(
            path,
            format!("{per_million} is more than 1000000 (all requests)"),
        ));
    }
    Ok(proxy::percent_of(per_million))
}

pub(super) fn rate_limit(path: &str, l: &pb::RateLimit) -> Result<proxy::RateLimit, Error> {
    if l.requests == 0 {
        return Err(Error::new(format!("{path}.requests"), "must be at least 1"));
    }
    let per = l
        .per
        .as_ref()
        .map(|d| duration_from_pb(&format!("{path}.per"), d))
        .transpose()?
        .unwrap_or(std::time::Duration::from_secs(1));
    if per.is_zero() {
        return Err(Error::new(format!("{path}.per"), "must be positive"));
    }
    Ok(proxy::RateLimit {
        ports: ports(path, &l.ports)?,
        matches: matches(path, &l.matches)?,
        requests: l.requests,
        per,
        burst: (l.burst != 0).then_some(l.burst),
        per_identity: l.per_identity,
        source: (!l.source.is_empty()).then(|| l.source.clone()),
    })
}

/// The wire form of a rate limit.
pub fn rate_limit_to_pb(l: &proxy::RateLimit) -> pb::RateLimit {
    pb::RateLimit {
        ports: l.ports.iter().map(|p| u32::from(*p)).collect(),
        matches: l.matches.iter().map(pb::RouteMatch::from).collect(),
        requests: l.requests,
        per: Some(duration_to_pb(l.per)),
        burst: l.burst.unwrap_or(0),
        per_identity: l.per_identity,
        source: l.source.clone().unwrap_or_default(),
    }
}

pub(super) fn fault(path: &str, f: &pb::Fault) -> Result<proxy::Fault, Error> {
    let delay = if f.delay_per_million == 0 {
        None
    } else {
        Some(proxy::FaultDelay {
            percent: percent(&format!("{path}.delayPerMillion"), f.delay_per_million)?,
            duration: f
                .delay
                .as_ref()
                .map(|d| duration_from_pb(&format!("{path}.delay"), d))
                .transpose()?
                .unwrap_or_default(),
        })
    };
    let abort = if f.abort_per_million == 0 {
        None
    } else {
        let status = u16::try_from(f.abort_http_status)
            .ok()
            .filter(|s| (200..=599).contains(s))
            .or((f.abort_http_status == 0).then_some(503))
            .ok_or_else(|| {
                Error::new(
                    format!("{path}.abortHttpStatus"),
                    format!("{} is not an HTTP status (200-599)", f.abort_http_status),
                )
            })?;
        if f.abort_grpc_status.is_some_and(|s| s > 16) {
            return Err(Error::new(
                format!("{path}.abortGrpcStatus"),
                "is not a gRPC status code (0-16)",
            ));
        }
        Some(proxy::FaultAbort {
            percent: percent(&format!("{path}.abortPerMillion"), f.abort_per_million)?,
            http_status: status,
            grpc_status: f.abort_grpc_status,
        })
    };
    Ok(proxy::Fault {
        ports: ports(path, &f.ports)?,
        matches: matches(path, &f.matches)?,
        delay,
        abort,
        source: (!f.source.is_empty()).then(|| f.source.clone()),
    })
}

/// The wire form of a fault.
pub fn fault_to_pb(f: &proxy::Fault) -> pb::Fault {
    pb::Fault {
        ports: f.ports.iter().map(|p| u32::from(*p)).collect(),
        matches: f.matches.iter().map(pb::RouteMatch::from).collect(),
        delay_per_million: f
            .delay
            .as_ref()
            .map_or(0, |d| proxy::per_million(d.percent)),
        delay: f.delay.as_ref().map(|d| duration_to_pb(d.duration)),
        abort_per_million: f
            .abort
            .as_ref()
            .map_or(0, |a| proxy::per_million(a.percent)),
        abort_http_status: f.abort.as_ref().map_or(0, |a| u32::from(a.http_status)),
        abort_grpc_status: f.abort.as_ref().and_then(|a| a.grpc_status),
        source: f.source.clone().unwrap_or_default(),
    }
}

impl TryFrom<&pb::InboundPolicy> for proxy::InboundPolicy {
    type Error = Error;

    fn try_from(p: &pb::InboundPolicy) -> Result<Self, Error> {
        let mut ports = BTreeMap::new();
        for (i, entry) in p.ports.iter().enumerate() {
            let number = port(&format!("ports[{i}].port"), entry.port)?;
            let mode = mtls_mode(&format!("ports[{i}].mtls"), entry.mtls)?;
            if ports.insert(number, mode).is_some() {
                return Err(Error::new(
                    format!("ports[{i}].port"),
                    format!("port {number} is listed twice"),
                ));
            }
        }
        Ok(proxy::InboundPolicy {
            mtls: mtls_mode("mtls", p.mtls)?,
            ports,
            rate_limits: p
                .rate_limits
                .iter()
                .enumerate()
                .map(|(i, l)| rate_limit(&format!("rateLimits[{i}]"), l))
                .collect::<Result<_, Error>>()?,
            faults: p
                .faults
                .iter()
                .enumerate()
                .map(|(i, f)| fault(&format!("faults[{i}]"), f))
                .collect::<Result<_, Error>>()?,
            authorization: super::authorization::authorization(
                "authorization",
                p.authorization.as_ref(),
            )?,
            path_normalization: path_normalization("pathNormalization", p.path_normalization)?,
            telemetry: telemetry("telemetry", p.telemetry.as_ref())?,
        })
    }
}

/// The proxy model of a workload's telemetry (absent: the defaults).
fn telemetry(path: &str, t: Option<&pb::Telemetry>) -> Result<proxy::Telemetry, Error> {
    let Some(t) = t else {
        return Ok(proxy::Telemetry::default());
    };
    let tracing = match &t.tracing {
        None => None,
        Some(tr) => Some(proxy::Tracing {
            endpoint: tr.endpoint.clone(),
            sampling: tr.sampling_percent,
            timeout: match &tr.timeout {
                Some(d) => super::duration_from_pb(&format!("{path}.tracing.timeout"), d)?,
                None => std::time::Duration::from_secs(10),
            },
        }),
    };
    let access_log = match &t.access_log {
        None => None,
        Some(log) => Some(proxy::AccessLog {
            format: match pb::AccessLogFormat::try_from(log.format) {
                Ok(pb::AccessLogFormat::Json) => proxy::AccessLogFormat::Json,
                Ok(pb::AccessLogFormat::Text) => proxy::AccessLogFormat::Text,
                Err(_) => {
                    return Err(Error::new(
                        format!("{path}.accessLog.format"),
                        format!("unknown format {}", log.format),
                    ))
                }
            },
            template: log.template.clone(),
            path: log.path.as_ref().map(std::path::PathBuf::from),
            max_bytes: log.max_bytes,
            max_files: log.max_files,
        }),
    };
    Ok(proxy::Telemetry {
        tracing,
        access_log,
        metrics: proxy::MetricsOptions {
            enabled: !t.metrics_disabled,
        },
    })
}

/// The wire form of a workload's telemetry (`None` for the defaults).
pub fn telemetry_to_pb(t: &proxy::Telemetry) -> Option<pb::Telemetry> {
    if t.is_default() {
        return None;
    }
    Some(pb::Telemetry {
        tracing: t.tracing.as_ref().map(|tr| pb::Tracing {
            endpoint: tr.endpoint.clone(),
            sampling_percent: tr.sampling,
            timeout: Some(super::duration_to_pb(tr.timeout)),
        }),
        access_log: t.access_log.as_ref().map(|log| pb::AccessLog {
            format: match log.format {
                proxy::AccessLogFormat::Json => pb::AccessLogFormat::Json,
                proxy::AccessLogFormat::Text => pb::AccessLogFormat::Text,
            } as i32,
            template: log.template.clone(),
            path: log.path.as_ref().map(|p| p.display().to_string()),
            max_bytes: log.max_bytes,
            max_files: log.max_files,
        }),
        metrics_disabled: !t.metrics.enabled,
    })
}

impl From<&proxy::InboundPolicy> for pb::InboundPolicy {
    fn from(p: &proxy::InboundPolicy) -> Self {
        pb::InboundPolicy {
            workload: String::new(),
            mtls: mtls_mode_to_pb(p.mtls) as i32,
            ports: p
                .ports
                .iter()
                .map(|(&port, &mode)| pb::PortMtls {
                    port: u32::from(port),
                    mtls: mtls_mode_to_pb(mode) as i32,
                })
                .collect(),
            rate_limits: p.rate_limits.iter().map(rate_limit_to_pb).collect(),
            faults: p.faults.iter().map(fault_to_pb).collect(),
            authorization: super::authorization_to_pb(&p.authorization),
            path_normalization: path_normalization_to_pb(p.path_normalization) as i32,
            telemetry: telemetry_to_pb(&p.telemetry),
        }
    }
}

/// The wire form of an mTLS mode.
pub fn mtls_mode_to_pb(mode: proxy::MtlsMode) -> pb::MtlsMode {
    match mode {
        proxy::MtlsMode::Strict => pb::MtlsMode::Strict,
        proxy::MtlsMode::Permissive => pb::MtlsMode::Permissive,
    }
}

/// The wire form of a path normalisation.
pub fn path_normalization_to_pb(n: proxy::PathNormalization) -> pb::PathNormalization {
    match n {
        proxy::PathNormalization::None => pb::PathNormalization::None,
        proxy::PathNormalization::Base => pb::PathNormalization::Base,
        proxy::PathNormalization::MergeSlashes => pb::PathNormalization::MergeSlashes,
        proxy::PathNormalization::DecodeAndMergeSlashes => {
            pb::PathNormalization::DecodeAndMergeSlashes
        }
    }
}

fn path_normalization(path: &str, value: i32) -> Result<proxy::PathNormalization, Error> {
    match pb::PathNormalization::try_from(value) {
        Ok(pb::PathNormalization::None) => Ok(proxy::PathNormalization::None),
        Ok(pb::PathNormalization::Base) => Ok(proxy::PathNormalization::Base),
        Ok(pb::PathNormalization::MergeSlashes) => Ok(proxy::PathNormalization::MergeSlashes),
        Ok(pb::PathNormalization::DecodeAndMergeSlashes) => {
            Ok(proxy::PathNormalization::DecodeAndMergeSlashes)
        }
        Err(_) => Err(Error::new(
            path,
            format!(
                "unknown path normalisation {value} (a newer control plane? upgrade this proxy)"
            ),
        )),
    }
}

fn mtls_mode(path: &str, value: i32) -> Result<proxy::MtlsMode, Error> {
    match pb::MtlsMode::try_from(value) {
        Ok(pb::MtlsMode::Strict) => Ok(proxy::MtlsMode::Strict),
        Ok(pb::MtlsMode::Permissive) => Ok(proxy::MtlsMode::Permissive),
        Err(_) => Err(Error::new(
            path,
            format!("unknown mTLS mode {value} (a newer control plane?)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_faults_round_trip_through_the_wire_form() {
        let limit = proxy::RateLimit {
            ports: vec![8080],
            matches: vec![proxy::RouteMatch {
                path: Some(proxy::PathMatch::Prefix("/api".into())),
                ..proxy::RouteMatch::default()
            }],
            requests: 10,
            per: std::time::Duration::from_secs(1),
            burst: Some(20),
            per_identity: true,
            source: Some("RateLimit/default/api".into()),
        };
        assert_eq!(rate_limit("l", &rate_limit_to_pb(&limit)), Ok(limit));
        let fault = proxy::Fault {
            ports: Vec::new(),
            matches: Vec::new(),
            delay: Some(proxy::FaultDelay {
                percent: 12.5,
                duration: std::time::Duration::from_millis(200),
            }),
            abort: Some(proxy::FaultAbort {
                percent: 1.0,
                http_status: 503,
                grpc_status: Some(14),
            }),
            source: None,
        };
        assert_eq!(super::fault("f", &fault_to_pb(&fault)), Ok(fault));
    }

    #[test]
    fn bad_wire_limits_and_faults_name_their_field() {
        let err = rate_limit("rateLimits[0]", &pb::RateLimit::default()).expect_err("0 requests");
        assert_eq!(err.path, "rateLimits[0].requests");
        let bad = pb::Fault {
            abort_per_million: 2_000_000,
            ..pb::Fault::default()
        };
        assert_eq!(
            super::fault("faults[1]", &bad).expect_err("200%").path,
            "faults[1].abortPerMillion"
        );
    }
}
