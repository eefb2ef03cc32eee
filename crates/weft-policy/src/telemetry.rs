//! `Telemetry`: validation, and which object decides each group (`tracing`,
//! `accessLog`, `metrics`) for each workload, compiled into the `telemetry` of its
//! `InboundPolicy` (the whole proxy of that workload follows it, both sides).
//!
//! Per group, the most specific object that sets it wins: one targeting a service that
//! selects the workload, else one targeting the workload's namespace, else one
//! targeting the mesh (these live in [`MESH_NAMESPACE`]). A group set to `disabled`
//! wins like any other, so a narrower object can turn off what a broader one turned
//! on. Between objects of one level that cover the same workloads, the oldest wins
//! ([`crate::age_order`]) and the others say so in a `Conflicted` condition.
//!
//! Validation builds the proxy model ([`proxy::Telemetry`]) and runs its checks, the
//! ones a local config file's `telemetry:` gets, with `telemetry.` read as `spec.`: one
//! set of rules wherever the settings come from.

use serde_json::{json, Value};
use weft_api::pb::v1 as pb;
use weft_api::proxy;
use weft_api::resource::mesh::MESH_NAME;
use weft_api::resource::telemetry::{self as api, Spec, TargetKind, MESH_NAMESPACE};
use weft_api::resource::{service, Object};

use crate::field::{self, Errors};
use crate::service::Workload;
use crate::status;

/// A validated `Telemetry` as compile sees it.
pub(crate) struct Telemetry<'a> {
    pub(crate) object: &'a Object,
    level: TargetKind,
    services: Vec<String>,
    groups: Groups,
}

impl<'a> Telemetry<'a> {
    /// `spec` of `object`, validated.
    pub(crate) fn new(object: &'a Object, spec: &Spec) -> Self {
        Self {
            object,
            level: spec
                .target_refs
                .first()
                .map_or(TargetKind::Service, |t| t.kind),
            services: spec
                .target_refs
                .iter()
                .filter(|t| t.kind == TargetKind::Service)
                .filter_map(|t| t.name.clone())
                .collect(),
            groups: groups(spec, &mut Errors::default()),
        }
    }

    fn name(&self) -> String {
        format!(
            "Telemetry {}/{}",
            self.object.namespace(),
            self.object.metadata.name
        )
    }
}

/// What one object says about each group.
#[derive(Default)]
struct Groups {
    tracing: Setting<proxy::Tracing>,
    access_log: Setting<proxy::AccessLog>,
    /// Whether requests are counted; `None` leaves it to a broader object.
    metrics: Option<bool>,
}

/// What one object says about one group.
#[derive(Clone, Debug, Default)]
enum Setting<T> {
    /// Nothing: a broader object decides.
    #[default]
    Unset,
    /// `disabled: true`.
    Off,
    /// On, with these settings.
    On(T),
}

impl<T: Clone> Setting<T> {
    fn is_set(&self) -> bool {
        !matches!(self, Self::Unset)
    }

    /// The settings, when on.
    fn on(&self) -> Option<T> {
        match self {
            Self::On(t) => Some(t.clone()),
            Self::Unset | Self::Off => None,
        }
    }
}

/// The three groups, each decided on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Tracing,
    AccessLog,
    Metrics,
}

impl Group {
    const ALL: [Group; 3] = [Group::Tracing, Group::AccessLog, Group::Metrics];

    /// The field under `spec`.
    fn field(self) -> &'static str {
        match self {
            Group::Tracing => "tracing",
            Group::AccessLog => "accessLog",
            Group::Metrics => "metrics",
        }
    }
}

impl Groups {
    fn sets(&self, group: Group) -> bool {
        match group {
            Group::Tracing => self.tracing.is_set(),
            Group::AccessLog => self.access_log.is_set(),
            Group::Metrics => self.metrics.is_some(),
        }
    }
}

/// Checks a parsed `Telemetry` spec (its namespace, for where a mesh-wide one may live).
pub(crate) fn validate(object: &Object, spec: &Spec, errors: &mut Errors) {
    targets(object, spec, errors);
    if spec.tracing.is_none() && spec.access_log.is_none() && spec.metrics.is_none() {
        errors.push(
            "spec",
            "a Telemetry needs tracing, accessLog or metrics (each may be {disabled: true} to \
             turn off what a broader Telemetry turned on)",
        );
    }
    let groups = groups(spec, errors);
    // The proxy's own checks, on every group this object turns on.
    let model = proxy::Telemetry {
        tracing: groups.tracing.on(),
        access_log: groups.access_log.on(),
        metrics: proxy::MetricsOptions::default(),
    };
    if let Err(found) = model.validate() {
        for e in found.0 {
            let path = match e.path.strip_prefix("telemetry.") {
                Some(rest) => format!("spec.{rest}"),
                None => e.path,
            };
            errors.push(path, e.message);
        }
    }
}

/// `spec.targetRefs`: one Mesh (in [`MESH_NAMESPACE`]), one Namespace (its own), or
/// Services by name.
fn targets(object: &Object, spec: &Spec, errors: &mut Errors) {
    let refs = &spec.target_refs;
    if refs.is_empty() {
        errors.push(
            "spec.targetRefs",
            format!(
                "a Telemetry needs a target: [{{kind: Namespace}}] (this namespace), \
                 [{{kind: Service, name: catalog}}], or [{{kind: Mesh}}] (in namespace \
                 {MESH_NAMESPACE})"
            ),
        );
        return;
    }
    let ns = object.namespace();
    let mut seen = std::collections::HashSet::new();
    for (i, t) in refs.iter().enumerate() {
        let path = format!("spec.targetRefs[{i}]");
        if !matches!(t.group.as_deref(), None | Some("" | "weft.dev")) {
            errors.push(
                format!("{path}.group"),
                format!(
                    "{:?} is not supported; use \"\" or \"weft.dev\"",
                    t.group.as_deref().unwrap_or_default()
                ),
            );
        }
        if t.kind != TargetKind::Service && refs.len() > 1 {
            errors.push(
                format!("{path}.kind"),
                format!(
                    "a {} target stands alone: one Telemetry per scope (a Service target is \
                     more specific and wins anyway)",
                    t.kind.as_str()
                ),
            );
        }
        match (t.kind, t.name.as_deref()) {
            (TargetKind::Mesh, name) => {
                if ns != MESH_NAMESPACE {
                    errors.push(
                        format!("{path}.kind"),
                        format!(
                            "a Telemetry for the whole mesh lives in namespace \
                             {MESH_NAMESPACE}, where only the mesh's operators write, not in \
                             {ns:?}; move it there, or target {{kind: Namespace}} to cover \
                             {ns:?} only"
                        ),
                    );
                }
                if let Some(name) = name.filter(|n| *n != MESH_NAME) {
                    errors.push(
                        format!("{path}.name"),
                        format!("{name:?}: there is one Mesh, {MESH_NAME:?}; leave name out"),
                    );
                }
            }
            (TargetKind::Namespace, name) => {
                if let Some(name) = name.filter(|n| *n != ns) {
                    errors.push(
                        format!("{path}.name"),
                        format!(
                            "{name:?}: a Telemetry covers its own namespace, {ns:?}; leave name \
                             out, or create it in namespace {name:?}"
                        ),
                    );
                }
            }
            (TargetKind::Service, None) => errors.push(
                format!("{path}.name"),
                "required for a Service target: the service's name, in this namespace",
            ),
            (TargetKind::Service, Some(name)) => {
                field::label(errors, &format!("{path}.name"), name);
                if !seen.insert(name) {
                    errors.push(
                        format!("{path}.name"),
                        format!("Service {name:?} is listed twice"),
                    );
                }
            }
        }
    }
}

/// What `spec` says about each group, as the proxy model; problems the proxy's checks
/// cannot see (a disabled group with settings, no endpoint, a duration that does not
/// parse) go to `errors`.
fn groups(spec: &Spec, errors: &mut Errors) -> Groups {
    Groups {
        tracing: spec
            .tracing
            .as_ref()
            .map_or(Setting::Unset, |t| tracing(t, errors)),
        access_log: spec
            .access_log
            .as_ref()
            .map_or(Setting::Unset, |l| access_log(l, errors)),
        metrics: spec.metrics.as_ref().map(|m| m.enabled),
    }
}

/// `spec.tracing`; [`Setting::Unset`] where it has errors the proxy's checks would
/// repeat.
fn tracing(t: &api::Tracing, errors: &mut Errors) -> Setting<proxy::Tracing> {
    if t.disabled {
        let set = [
            ("endpoint", t.endpoint.is_some()),
            ("sampling", t.sampling.is_some()),
            ("timeout", t.timeout.is_some()),
        ];
        disabled_with_settings(errors, "spec.tracing", &set);
        return Setting::Off;
    }
    let timeout = match t
        .timeout
        .as_deref()
        .map(weft_api::resource::route::parse_duration)
    {
        None => std::time::Duration::from_secs(10),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            errors.push("spec.tracing.timeout", e);
            return Setting::Unset;
        }
    };
    let Some(endpoint) = &t.endpoint else {
        errors.push(
            "spec.tracing.endpoint",
            "required: the OTLP/gRPC collector, http://host:port (e.g. \
             http://otel-collector.observability:4317); or disabled: true to turn tracing off",
        );
        return Setting::Unset;
    };
    Setting::On(proxy::Tracing {
        endpoint: endpoint.clone(),
        sampling: t.sampling.unwrap_or(proxy::DEFAULT_SAMPLING_PERCENT),
        timeout,
    })
}

fn access_log(l: &api::AccessLog, errors: &mut Errors) -> Setting<proxy::AccessLog> {
    if l.disabled {
        let set = [
            ("format", l.format.is_some()),
            ("template", l.template.is_some()),
            ("path", l.path.is_some()),
            ("maxBytes", l.max_bytes.is_some()),
            ("maxFiles", l.max_files.is_some()),
        ];
        disabled_with_settings(errors, "spec.accessLog", &set);
        return Setting::Off;
    }
    Setting::On(proxy::AccessLog {
        format: match l.format.unwrap_or_default() {
            api::AccessLogFormat::Json => proxy::AccessLogFormat::Json,
            api::AccessLogFormat::Text => proxy::AccessLogFormat::Text,
        },
        template: l.template.clone(),
        path: l.path.as_ref().map(std::path::PathBuf::from),
        max_bytes: l.max_bytes.unwrap_or(proxy::DEFAULT_ACCESS_LOG_MAX_BYTES),
        max_files: l.max_files.unwrap_or(proxy::DEFAULT_ACCESS_LOG_MAX_FILES),
    })
}

/// A group with `disabled: true` takes no settings: they would never apply.
fn disabled_with_settings(errors: &mut Errors, path: &str, set: &[(&str, bool)]) {
    for (field, _) in set.iter().filter(|(_, set)| *set) {
        errors.push(
            format!("{path}.{field}"),
            format!("{path} is disabled, so {field} would never apply: remove one of them"),
        );
    }
}

/// Oldest first, then by namespace and name: the order objects of one level win in.
pub(crate) fn sort(telemetries: &mut [Telemetry<'_>]) {
    telemetries.sort_by(|a, b| crate::age_order(a.object).cmp(&crate::age_order(b.object)));
}

/// Whether `t` covers a workload of `namespace` with `labels`.
fn covers(
    t: &Telemetry<'_>,
    services: &[(&Object, service::Spec)],
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    match t.level {
        TargetKind::Mesh => true,
        TargetKind::Namespace => t.object.namespace() == namespace,
        TargetKind::Service => {
            t.object.namespace() == namespace
                && services.iter().any(|(o, spec)| {
                    o.namespace() == namespace
                        && t.services.contains(&o.metadata.name)
                        && crate::service::selects(spec, labels)
                })
        }
    }
}

/// The telemetry of a workload of `namespace` with `labels`: per group, the oldest of
/// the most specific objects that cover it and set the group. `telemetries` are sorted
/// ([`sort`]). `None` when every group keeps the proxy's default.
pub(crate) fn for_workload(
    telemetries: &[Telemetry<'_>],
    services: &[(&Object, service::Spec)],
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<pb::Telemetry> {
    let covering: Vec<&Telemetry<'_>> = telemetries
        .iter()
        .filter(|t| covers(t, services, namespace, labels))
        .collect();
    let winner = |group: Group| {
        [TargetKind::Service, TargetKind::Namespace, TargetKind::Mesh]
            .into_iter()
            .find_map(|level| {
                covering
                    .iter()
                    .find(|t| t.level == level && t.groups.sets(group))
            })
    };
    let model = proxy::Telemetry {
        tracing: winner(Group::Tracing).and_then(|t| t.groups.tracing.on()),
        access_log: winner(Group::AccessLog).and_then(|t| t.groups.access_log.on()),
        metrics: proxy::MetricsOptions {
            enabled: winner(Group::Metrics)
                .and_then(|t| t.groups.metrics)
                .unwrap_or(true),
        },
    };
    weft_api::pb_convert::telemetry_to_pb(&model)
}

/// Where two objects of one level both apply, named for a status message; `None` when
/// they cover different workloads.
fn overlap(
    older: &Telemetry<'_>,
    t: &Telemetry<'_>,
    services: &[(&Object, service::Spec)],
    workloads: &[Workload<'_>],
) -> Option<String> {
    let ns = t.object.namespace();
    match t.level {
        TargetKind::Mesh => Some("the whole mesh".to_owned()),
        TargetKind::Namespace => {
            (older.object.namespace() == ns).then(|| format!("namespace {ns}"))
        }
        TargetKind::Service => {
            if older.object.namespace() != ns {
                return None;
            }
            if let Some(name) = t.services.iter().find(|s| older.services.contains(s)) {
                return Some(format!("Service {ns}/{name}"));
            }
            // Two services that select one workload.
            workloads
                .iter()
                .find(|w| {
                    w.object.namespace() == ns
                        && covers(older, services, ns, &w.object.metadata.labels)
                        && covers(t, services, ns, &w.object.metadata.labels)
                })
                .map(|w| format!("Workload {ns}/{}", w.object.metadata.name))
        }
    }
}

/// The status of each object (sorted, [`sort`]): per target, whether it resolves; and
/// `Conflicted` naming, per group, an older object of the same level that covers the
/// same workloads and sets that group too, so it applies there instead.
pub(crate) fn statuses(
    telemetries: &[Telemetry<'_>],
    services: &[(&Object, service::Spec)],
    workloads: &[Workload<'_>],
) -> Vec<Value> {
    telemetries
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let o = t.object;
            let ns = o.namespace();
            let generation = o.metadata.generation;
            let ancestors: Vec<Value> = match t.level {
                TargetKind::Mesh => vec![status::ancestor(
                    &json!({"group": "weft.dev", "kind": "Mesh", "name": MESH_NAME}),
                    true,
                    "Accepted",
                    "applies to every workload of the mesh, where no Namespace or Service \
                     Telemetry sets the same group",
                    generation,
                )],
                TargetKind::Namespace => vec![status::ancestor(
                    &json!({"group": "", "kind": "Namespace", "name": ns}),
                    true,
                    "Accepted",
                    &format!(
                        "applies to every workload of namespace {ns}, where no Service \
                         Telemetry sets the same group"
                    ),
                    generation,
                )],
                TargetKind::Service => t
                    .services
                    .iter()
                    .map(|name| {
                        let exists = services
                            .iter()
                            .any(|(s, _)| s.namespace() == ns && s.metadata.name == *name);
                        let (reason, message) = if exists {
                            (
                                "Accepted",
                                format!("applies to the workloads of Service {ns}/{name}"),
                            )
                        } else {
                            (
                                "TargetNotFound",
                                format!("Service {ns}/{name} does not exist"),
                            )
                        };
                        status::policy_ancestor(ns, name, exists, reason, &message, generation)
                    })
                    .collect(),
            };
            let shadowed: Vec<String> = Group::ALL
                .into_iter()
                .filter(|&g| t.groups.sets(g))
                .filter_map(|g| {
                    telemetries[..i]
                        .iter()
                        .filter(|older| older.level == t.level && older.groups.sets(g))
                        .find_map(|older| {
                            overlap(older, t, services, workloads).map(|scope| {
                                format!(
                                    "spec.{} does not apply to {scope}: {}, older, sets it \
                                     there too and the oldest wins",
                                    g.field(),
                                    older.name()
                                )
                            })
                        })
                })
                .collect();
            let conflicted = if shadowed.is_empty() {
                status::condition(
                    "Conflicted",
                    false,
                    "NoConflict",
                    "no older Telemetry of the same scope sets the same groups",
                    generation,
                )
            } else {
                status::condition(
                    "Conflicted",
                    true,
                    "Shadowed",
                    &shadowed.join("; "),
                    generation,
                )
            };
            json!({ "ancestors": ancestors, "conditions": [conflicted] })
        })
        .collect()
}
