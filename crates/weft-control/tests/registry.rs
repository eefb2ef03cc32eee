//! Workload registration and health, against the real SQLite store: a registered
//! workload becomes an endpoint of the services that select it, stays one briefly
//! after its proxy disconnects, and is removed once the grace period passes.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use weft_api::pb::v1 as pb;
use weft_api::resource::{Key, Kind, Object};
use weft_control::controller::registry::{self, phase, RegisterError};
use weft_control::store::{self, Precondition, Store, StoreSpec};

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&StoreSpec::data_dir(dir.path())).await.unwrap();
    (dir, store)
}

fn registration(name: &str, address: &str) -> pb::Registration {
    pb::Registration {
        name: name.into(),
        namespace: "default".into(),
        service_account: name.into(),
        trust_domain: "cluster.local".into(),
        address: address.into(),
        labels: HashMap::from([("app".into(), "web".into())]),
        ports: vec![pb::WorkloadPort {
            port: 8080,
            protocol: pb::Protocol::Http as i32,
        }],
        ..pb::Registration::default()
    }
}

fn key(name: &str) -> Key {
    Key {
        kind: Kind::Workload,
        namespace: "default".into(),
        name: name.into(),
    }
}

async fn apply_web_service(store: &dyn Store) {
    let service: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    weft_policy::validate(&service).unwrap();
    store.put(service, Precondition::None).await.unwrap();
}

/// Endpoint addresses of `web.default` as compiled from the store right now.
async fn endpoints(store: &dyn Store) -> Vec<String> {
    let (objects, _) = store.list(None, None).await.unwrap();
    let compiled = weft_policy::compile(&objects);
    compiled.services["web.default"]
        .endpoints
        .iter()
        .map(|e| e.address.clone())
        .collect()
}

async fn phase_of(store: &dyn Store, name: &str) -> String {
    let w = store.get(&key(name)).await.unwrap().unwrap();
    w.status.unwrap()["phase"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_registered_workload_is_an_endpoint_until_the_grace_period_after_its_proxy_leaves() {
    let (_dir, store) = store().await;
    apply_web_service(store.as_ref()).await;
    registry::connected(
        store.as_ref(),
        "cp-a",
        7,
        &registration("web-1", "10.0.0.1"),
    )
    .await
    .unwrap();

    let w = store.get(&key("web-1")).await.unwrap().unwrap();
    assert_eq!(w.spec["address"], "10.0.0.1");
    assert_eq!(w.metadata.labels["app"], "web");
    assert_eq!(phase_of(store.as_ref(), "web-1").await, phase::HEALTHY);
    assert_eq!(endpoints(store.as_ref()).await, ["10.0.0.1"]);

    registry::disconnected(store.as_ref(), "cp-a", 7, &key("web-1"))
        .await
        .unwrap();
    assert_eq!(phase_of(store.as_ref(), "web-1").await, phase::DISCONNECTED);
    assert_eq!(
        endpoints(store.as_ref()).await,
        ["10.0.0.1"],
        "still an endpoint during the grace period"
    );

    let grace = Duration::from_secs(30);
    let reaped = registry::reap_once(store.as_ref(), grace, SystemTime::now() + grace / 2)
        .await
        .unwrap();
    assert_eq!(reaped, 0, "not yet past the grace period");
    let reaped = registry::reap_once(store.as_ref(), grace, SystemTime::now() + grace * 2)
        .await
        .unwrap();
    assert_eq!(reaped, 1);
    assert_eq!(phase_of(store.as_ref(), "web-1").await, phase::UNHEALTHY);
    assert!(endpoints(store.as_ref()).await.is_empty());

    // The proxy comes back: healthy and an endpoint again.
    registry::connected(
        store.as_ref(),
        "cp-b",
        1,
        &registration("web-1", "10.0.0.1"),
    )
    .await
    .unwrap();
    assert_eq!(phase_of(store.as_ref(), "web-1").await, phase::HEALTHY);
    assert_eq!(endpoints(store.as_ref()).await, ["10.0.0.1"]);
}

#[tokio::test]
async fn an_instance_does_not_mark_down_a_workload_that_reconnected_elsewhere() {
    let (_dir, store) = store().await;
    let reg = registration("web-1", "10.0.0.1");
    registry::connected(store.as_ref(), "cp-a", 1, &reg)
        .await
        .unwrap();
    // The proxy moves to cp-b before cp-a notices its old stream is gone.
    registry::connected(store.as_ref(), "cp-b", 5, &reg)
        .await
        .unwrap();
    registry::disconnected(store.as_ref(), "cp-a", 1, &key("web-1"))
        .await
        .unwrap();
    assert_eq!(phase_of(store.as_ref(), "web-1").await, phase::HEALTHY);
    let status = store
        .get(&key("web-1"))
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status["controlPlane"], "cp-b");
}

#[tokio::test]
async fn a_registration_that_is_not_a_valid_workload_is_refused_and_nothing_is_stored() {
    let (_dir, store) = store().await;
    let mut reg = registration("Web_1", "10.0.0.1");
    let err = registry::connected(store.as_ref(), "cp-a", 1, &reg)
        .await
        .unwrap_err();
    assert!(matches!(err, RegisterError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("metadata.name"), "{err}");

    reg.name = "web-1".into();
    reg.address = "not-an-ip".into();
    let err = registry::connected(store.as_ref(), "cp-a", 1, &reg)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.address"), "{err}");
    let (workloads, _) = store.list(Some(Kind::Workload), None).await.unwrap();
    assert!(workloads.is_empty());
}

#[tokio::test]
async fn a_token_for_another_identity_cannot_take_over_a_registered_workload() {
    let (_dir, store) = store().await;
    apply_web_service(store.as_ref()).await;
    let owner = registration("web-1", "10.0.0.1");
    registry::connected(store.as_ref(), "cp-a", 1, &owner)
        .await
        .unwrap();
    // Same name, another service account (the token's), the attacker's address.
    let mut attacker = registration("web-1", "10.0.0.66");
    attacker.service_account = "attacker".into();
    let err = registry::connected(store.as_ref(), "cp-a", 2, &attacker)
        .await
        .unwrap_err();
    assert!(matches!(err, RegisterError::Taken { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("default/web-1")
            && text.contains("\"web-1\"")
            && text.contains("\"attacker\""),
        "{text}"
    );
    assert!(
        text.contains("weft delete workload web-1 -n default"),
        "{text}"
    );
    // Nothing changed: the owner's address is still the endpoint, its connection owns it.
    assert_eq!(endpoints(store.as_ref()).await, vec!["10.0.0.1".to_owned()]);
    let status = store
        .get(&key("web-1"))
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status["connection"], 1);
}

#[tokio::test]
async fn a_workload_the_operator_declared_is_taken_only_by_its_own_identity() {
    let (_dir, store) = store().await;
    let declared: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": "vm-1", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"serviceAccount": "vm-1", "address": "10.0.0.9", "ports": [{"port": 8080}]}
    }))
    .unwrap();
    weft_policy::validate(&declared).unwrap();
    store.put(declared, Precondition::None).await.unwrap();
    let mut other = registration("vm-1", "10.0.0.66");
    other.service_account = "web-2".into();
    let err = registry::connected(store.as_ref(), "cp-a", 1, &other)
        .await
        .unwrap_err();
    assert!(matches!(err, RegisterError::Taken { .. }), "{err}");
    // Its own identity registers and becomes Healthy.
    registry::connected(store.as_ref(), "cp-a", 2, &registration("vm-1", "10.0.0.9"))
        .await
        .unwrap();
    assert_eq!(phase_of(store.as_ref(), "vm-1").await, phase::HEALTHY);
}

#[tokio::test]
async fn one_identity_registers_workloads_up_to_its_quota_and_reconnects_past_it() {
    let (_dir, store) = store().await;
    let quotas = registry::Quotas {
        workloads_per_identity: 3,
        ..registry::Quotas::default()
    };
    let as_bot = |name: &str| {
        let mut reg = registration(name, "10.0.0.5");
        reg.service_account = "bot".into();
        reg
    };
    for i in 0..3 {
        registry::connected_within(
            store.as_ref(),
            "cp-a",
            i,
            &as_bot(&format!("bot-{i}")),
            &quotas,
            None,
        )
        .await
        .unwrap();
    }
    let err =
        registry::connected_within(store.as_ref(), "cp-a", 9, &as_bot("bot-3"), &quotas, None)
            .await
            .unwrap_err();
    assert!(
        matches!(
            err,
            RegisterError::Quota {
                count: 3,
                limit: 3,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("default/bot already has 3 workloads")
            && text.contains("--max-workloads-per-identity 3"),
        "{text}"
    );
    let (workloads, _) = store.list(Some(Kind::Workload), None).await.unwrap();
    assert_eq!(workloads.len(), 3, "the refused workload was stored");
    // A workload it already has reconnects; another identity has its own quota.
    registry::connected_within(store.as_ref(), "cp-a", 10, &as_bot("bot-1"), &quotas, None)
        .await
        .unwrap();
    registry::connected_within(
        store.as_ref(),
        "cp-a",
        11,
        &registration("web-1", "10.0.0.1"),
        &quotas,
        None,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn one_token_registers_workloads_up_to_its_quota_and_another_token_has_its_own() {
    let (_dir, store) = store().await;
    let quotas = registry::Quotas {
        workloads_per_token: 2,
        ..registry::Quotas::default()
    };
    let register = |name: String, token: &'static str| {
        let store = store.clone();
        async move {
            let mut reg = registration(&name, "10.0.0.5");
            reg.service_account = "bot".into();
            let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
            let grant = registry::Grant {
                token,
                labels: &labels,
            };
            registry::connected_within(store.as_ref(), "cp-a", 1, &reg, &quotas, Some(grant)).await
        }
    };
    register("bot-0".into(), "token-a").await.unwrap();
    register("bot-1".into(), "token-a").await.unwrap();
    let err = register("bot-2".into(), "token-a").await.unwrap_err();
    assert!(
        matches!(
            err,
            RegisterError::TokenQuota {
                count: 2,
                limit: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("workload token token-a already registered 2 workloads"),
        "{err}"
    );
    // The workload records the token it registered with; another token has its own quota.
    let status = store
        .get(&key("bot-0"))
        .await
        .unwrap()
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status[registry::TOKEN_FIELD], "token-a");
    register("bot-2".into(), "token-b").await.unwrap();
}

#[tokio::test]
async fn a_workload_unhealthy_past_the_retention_is_deleted_and_a_healthy_one_is_kept() {
    let (_dir, store) = store().await;
    for (i, name) in ["gone-1", "back-1"].into_iter().enumerate() {
        registry::connected(
            store.as_ref(),
            "cp-a",
            i as u64,
            &registration(name, "10.0.0.1"),
        )
        .await
        .unwrap();
        registry::disconnected(store.as_ref(), "cp-a", i as u64, &key(name))
            .await
            .unwrap();
    }
    let grace = Duration::from_secs(30);
    let retention = Duration::from_secs(3600);
    let later = SystemTime::now() + grace * 2;
    assert_eq!(
        registry::reap_once(store.as_ref(), grace, later)
            .await
            .unwrap(),
        2
    );
    // back-1's proxy returns before the retention runs out.
    registry::connected(
        store.as_ref(),
        "cp-b",
        5,
        &registration("back-1", "10.0.0.1"),
    )
    .await
    .unwrap();
    let before = SystemTime::now() + grace + retention / 2;
    assert_eq!(
        registry::delete_retired(store.as_ref(), grace, retention, before)
            .await
            .unwrap(),
        0,
        "deleted before the retention ran out"
    );
    let after = SystemTime::now() + grace + retention + Duration::from_secs(1);
    assert_eq!(
        registry::delete_retired(store.as_ref(), grace, retention, after)
            .await
            .unwrap(),
        1
    );
    assert!(store.get(&key("gone-1")).await.unwrap().is_none());
    assert_eq!(phase_of(store.as_ref(), "back-1").await, phase::HEALTHY);
}

/// Registers `reg` as a proxy presenting a token that grants `labels` would.
async fn connect_granted(
    store: &dyn Store,
    reg: &pb::Registration,
    labels: &[(&str, &str)],
) -> Result<(), RegisterError> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let grant = registry::Grant {
        token: "token-1",
        labels: &labels,
    };
    registry::connected_within(
        store,
        "cp-a",
        1,
        reg,
        &registry::Quotas::default(),
        Some(grant),
    )
    .await
}

#[tokio::test]
async fn a_label_the_token_does_not_grant_is_refused_and_the_workload_joins_no_service() {
    let (_dir, store) = store().await;
    apply_web_service(store.as_ref()).await;
    // The attacker copies the selector labels of `web` into its registration.
    let mut reg = registration("intruder", "10.0.0.66");
    reg.labels = HashMap::from([("app".into(), "web".into())]);

    let err = connect_granted(store.as_ref(), &reg, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RegisterError::Labels { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("app=\"web\""), "{message}");
    assert!(message.contains("the token grants no labels"), "{message}");
    assert!(message.contains("--label app=web"), "{message}");

    // A token granting another value of the key is no better.
    let err = connect_granted(store.as_ref(), &reg, &[("app", "intruder")])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the token grants app=intruder"),
        "{err}"
    );

    assert!(store.get(&key("intruder")).await.unwrap().is_none());
    assert!(endpoints(store.as_ref()).await.is_empty());
}

#[tokio::test]
async fn a_workload_carries_the_labels_its_token_grants_whatever_it_declares() {
    let (_dir, store) = store().await;
    apply_web_service(store.as_ref()).await;
    // Declares nothing: gets the granted labels, and joins `web`.
    let mut reg = registration("web-1", "10.0.0.7");
    reg.labels.clear();
    connect_granted(store.as_ref(), &reg, &[("app", "web"), ("version", "v1")])
        .await
        .unwrap();
    let stored = store.get(&key("web-1")).await.unwrap().unwrap();
    assert_eq!(
        stored.metadata.labels,
        BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("version".to_owned(), "v1".to_owned())
        ])
    );
    assert_eq!(endpoints(store.as_ref()).await, ["10.0.0.7"]);

    // Declares a subset of what is granted: still every granted label.
    let mut reg = registration("web-2", "10.0.0.8");
    reg.labels = HashMap::from([("version".into(), "v1".into())]);
    connect_granted(store.as_ref(), &reg, &[("app", "web"), ("version", "v1")])
        .await
        .unwrap();
    let stored = store.get(&key("web-2")).await.unwrap().unwrap();
    assert_eq!(
        stored.metadata.labels.get("app").map(String::as_str),
        Some("web")
    );
}
