//! The session's protocol rules, one request or snapshot at a time.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::Node;

use super::*;

const T: &str = "type.googleapis.com/weft.proxy.v1.Service";

fn snapshot(revision: u64, resources: &[(&str, &str)]) -> Snapshot {
    let mut snapshot = Snapshot::new(revision);
    for (name, version) in resources {
        snapshot.insert(XdsResource::new(
            *name,
            *version,
            prost_types::Any {
                type_url: T.to_owned(),
                value: name.as_bytes().to_vec(),
            },
        ));
    }
    snapshot
}

fn subscribe(names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(Node {
            id: "ns/a".to_owned(),
            ..Node::default()
        }),
        type_url: T.to_owned(),
        resource_names_subscribe: names.iter().map(|n| (*n).to_owned()).collect(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn ack(nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: T.to_owned(),
        response_nonce: nonce.to_owned(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn sent(response: &DeltaDiscoveryResponse) -> BTreeSet<(String, String)> {
    response
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn request(
    session: &mut Session,
    req: DeltaDiscoveryRequest,
    snap: &Snapshot,
) -> Option<DeltaDiscoveryResponse> {
    match session.on_request(req, snap) {
        Ok(response) => response,
        Err(status) => panic!("unexpected error: {status}"),
    }
}

#[test]
fn subscribe_sends_only_the_named_resources_and_reports_missing_ones_removed() {
    let snap = snapshot(1, &[("a", "1"), ("b", "1"), ("c", "1")]);
    let mut session = Session::new(1, Viewer::Unrestricted);
    let response = request(&mut session, subscribe(&["a", "b", "zz"]), &snap).expect("response");
    assert_eq!(sent(&response), pairs(&[("a", "1"), ("b", "1")]));
    assert_eq!(response.removed_resources, vec!["zz".to_owned()]);
    assert_eq!(response.system_version_info, "1");
    assert_eq!(response.nonce, "1-1");
}

#[test]
fn first_request_without_names_is_a_legacy_wildcard() {
    let snap = snapshot(1, &[("a", "1"), ("b", "1")]);
    let mut session = Session::new(1, Viewer::Unrestricted);
    let response = request(&mut session, subscribe(&[]), &snap).expect("response");
    assert_eq!(sent(&response), pairs(&[("a", "1"), ("b", "1")]));
    assert_eq!(session.status()[0].subscribed, vec!["*".to_owned()]);
}

#[test]
fn explicit_wildcard_receives_new_resources_and_unsubscribing_it_stops_them() {
    let mut session = Session::new(1, Viewer::Unrestricted);
    let response = request(
        &mut session,
        subscribe(&["*", "a"]),
        &snapshot(1, &[("a", "1")]),
    )
    .expect("response");
    assert!(request(
        &mut session,
        ack(&response.nonce),
        &snapshot(1, &[("a", "1")])
    )
    .is_none());

    let responses = session.on_snapshot(&snapshot(2, &[("a", "1"), ("new", "1")]));
    assert_eq!(sent(&responses[0]), pairs(&[("new", "1")]));
    request(
        &mut session,
        ack(&responses[0].nonce),
        &snapshot(2, &[("a", "1"), ("new", "1")]),
    );

    let mut unsubscribe = ack("");
    unsubscribe.resource_names_unsubscribe = vec!["*".to_owned()];
    assert!(request(
        &mut session,
        unsubscribe,
        &snapshot(2, &[("a", "1"), ("new", "1")])
    )
    .is_none());
    assert!(session
        .on_snapshot(&snapshot(3, &[("a", "1"), ("new", "2"), ("other", "1")]))
        .is_empty());
    assert_eq!(
        session.status()[0].resources.keys().collect::<Vec<_>>(),
        vec!["a"]
    );
}

#[test]
fn initial_versions_skip_unchanged_and_report_deleted_resources() {
    let snap = snapshot(5, &[("a", "1"), ("b", "2")]);
    let mut session = Session::new(1, Viewer::Unrestricted);
    let mut req = subscribe(&["a", "b", "gone"]);
    req.initial_resource_versions = [("a", "1"), ("b", "1"), ("gone", "1")]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let response = request(&mut session, req, &snap).expect("response");
    assert_eq!(sent(&response), pairs(&[("b", "2")]));
    assert_eq!(response.removed_resources, vec!["gone".to_owned()]);
}

#[test]
fn client_already_up_to_date_gets_no_response() {
    let snap = snapshot(5, &[("a", "1")]);
    let mut session = Session::new(1, Viewer::Unrestricted);
    let mut req = subscribe(&["a"]);
    req.initial_resource_versions = [("a".to_owned(), "1".to_owned())].into();
    assert!(request(&mut session, req, &snap).is_none());
}

#[test]
fn snapshot_change_pushes_only_changed_and_removed_subscribed_resources() {
    let mut session = Session::new(1, Viewer::Unrestricted);
    let first = request(
        &mut session,
        subscribe(&["a", "b"]),
        &snapshot(1, &[("a", "1"), ("b", "1"), ("c", "1")]),
    )
    .expect("response");
    let unchanged = snapshot(1, &[("a", "1"), ("b", "1"), ("c", "1")]);
    assert!(request(&mut session, ack(&first.nonce), &unchanged).is_none());

    let responses = session.on_snapshot(&snapshot(2, &[("a", "2"), ("c", "2")]));
    assert_eq!(responses.len(), 1);
    assert_eq!(sent(&responses[0]), pairs(&[("a", "2")]));
    assert_eq!(responses[0].removed_resources, vec!["b".to_owned()]);
}

#[test]
fn changes_wait_for_the_ack_and_are_coalesced() {
    let mut session = Session::new(1, Viewer::Unrestricted);
    let first =
        request(&mut session, subscribe(&["a"]), &snapshot(1, &[("a", "1")])).expect("response");
    assert!(session.on_snapshot(&snapshot(2, &[("a", "2")])).is_empty());
    assert!(session.on_snapshot(&snapshot(3, &[("a", "3")])).is_empty());

    let next = request(&mut session, ack(&first.nonce), &snapshot(3, &[("a", "3")]))
        .expect("response after ACK");
    assert_eq!(sent(&next), pairs(&[("a", "3")]));
    let status = &session.status()[0];
    assert_eq!(
        status.acked.as_ref().map(|a| a.nonce.as_str()),
        Some(first.nonce.as_str())
    );
    assert_eq!(status.pending_nonce.as_deref(), Some(next.nonce.as_str()));
}

#[test]
fn missing_resource_is_sent_once_it_appears() {
    let mut session = Session::new(1, Viewer::Unrestricted);
    let first =
        request(&mut session, subscribe(&["later"]), &snapshot(1, &[])).expect("absent report");
    assert_eq!(first.removed_resources, vec!["later".to_owned()]);
    request(&mut session, ack(&first.nonce), &snapshot(1, &[]));
    assert!(session
        .on_snapshot(&snapshot(2, &[("other", "1")]))
        .is_empty());
    let responses = session.on_snapshot(&snapshot(3, &[("later", "1")]));
    assert_eq!(sent(&responses[0]), pairs(&[("later", "1")]));
}

#[test]
fn nack_records_message_and_resource_errors_and_does_not_resend() {
    let snap = snapshot(1, &[("a", "1"), ("bad", "1")]);
    let mut session = Session::new(1, Viewer::Unrestricted);
    let first = request(&mut session, subscribe(&["a", "bad"]), &snap).expect("response");
    let errors = pb::ResourceErrors {
        errors: vec![pb::ResourceError {
            type_url: T.to_owned(),
            name: "bad".to_owned(),
            message: "port 0".to_owned(),
        }],
    };
    let mut nack = ack(&first.nonce);
    nack.error_detail = Some(rpc::Status {
        code: 3,
        message: "bad: port 0".to_owned(),
        details: vec![Any {
            type_url: pb::RESOURCE_ERRORS_TYPE_URL.to_owned(),
            value: errors.encode_to_vec(),
        }],
    });
    assert!(
        request(&mut session, nack, &snap).is_none(),
        "the same version is not resent"
    );

    let status = &session.status()[0];
    let last_nack = status.last_nack.as_ref().expect("nack recorded");
    assert_eq!(last_nack.message, "bad: port 0");
    assert_eq!(last_nack.errors[0].name, "bad");
    assert_eq!(last_nack.errors[0].message, "port 0");
    assert!(status.acked.is_none());
    assert!(status.pending_nonce.is_none());
}

#[test]
fn stale_nonce_is_not_an_ack() {
    let mut session = Session::new(1, Viewer::Unrestricted);
    request(&mut session, subscribe(&["a"]), &snapshot(1, &[("a", "1")])).expect("response");
    assert!(request(&mut session, ack("1-999"), &snapshot(1, &[])).is_none());
    assert!(session.status()[0].acked.is_none());
    assert!(session.status()[0].pending_nonce.is_some());
}

#[test]
fn unsubscribed_resource_is_neither_pushed_nor_reported() {
    let mut session = Session::new(1, Viewer::Unrestricted);
    let first = request(
        &mut session,
        subscribe(&["a", "b"]),
        &snapshot(1, &[("a", "1"), ("b", "1")]),
    )
    .expect("r");
    let mut req = ack(&first.nonce);
    req.resource_names_unsubscribe = vec!["b".to_owned()];
    assert!(request(&mut session, req, &snapshot(1, &[("a", "1"), ("b", "1")])).is_none());
    assert!(session
        .on_snapshot(&snapshot(2, &[("a", "1"), ("b", "2")]))
        .is_empty());
    assert!(session.on_snapshot(&snapshot(3, &[("a", "1")])).is_empty());
}

// === visibility ===

use crate::xds::snapshot::Visibility;

fn namespaces(names: &[&str]) -> Visibility {
    Visibility::Namespaces(names.iter().map(|n| (*n).to_owned()).collect())
}

fn workload(namespace: &str, name: &str) -> Viewer {
    Viewer::Workload {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn visible_snapshot(revision: u64, resources: &[(&str, &str, Visibility)]) -> Snapshot {
    let mut snapshot = Snapshot::new(revision);
    for (name, version, visible) in resources {
        snapshot.insert(
            XdsResource::new(
                *name,
                *version,
                prost_types::Any {
                    type_url: T.to_owned(),
                    value: name.as_bytes().to_vec(),
                },
            )
            .with_visibility(visible.clone()),
        );
    }
    snapshot
}

/// A snapshot of team-a resources with every kind of audience.
fn team_a(revision: u64) -> Snapshot {
    visible_snapshot(
        revision,
        &[
            ("everyone.team-a", "1", Visibility::All),
            ("own.team-a", "1", namespaces(&["team-a"])),
            ("to-b.team-a", "1", namespaces(&["team-a", "team-b"])),
            (
                "web.team-a",
                "1",
                Visibility::Workload {
                    namespace: "team-a".into(),
                    name: "web".into(),
                },
            ),
        ],
    )
}

#[test]
fn wildcard_receives_only_what_the_viewer_may_see() {
    let cases: &[(&str, Viewer, &[&str])] = &[
        (
            "another namespace",
            workload("team-b", "web"),
            &["everyone.team-a", "to-b.team-a"],
        ),
        (
            "a namespace nothing is exported to",
            workload("team-c", "web"),
            &["everyone.team-a"],
        ),
        (
            "another workload of the namespace",
            workload("team-a", "api"),
            &["everyone.team-a", "own.team-a", "to-b.team-a"],
        ),
        (
            "the workload itself",
            workload("team-a", "web"),
            &["everyone.team-a", "own.team-a", "to-b.team-a", "web.team-a"],
        ),
        (
            "unrestricted",
            Viewer::Unrestricted,
            &["everyone.team-a", "own.team-a", "to-b.team-a", "web.team-a"],
        ),
    ];
    for (case, viewer, want) in cases {
        let mut session = Session::new(1, viewer.clone());
        let response = request(&mut session, subscribe(&["*"]), &team_a(1)).expect(case);
        let names: Vec<&str> = response.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, *want, "{case}");
        assert!(response.removed_resources.is_empty(), "{case}");
    }
}

#[test]
fn a_named_subscription_to_a_hidden_resource_is_answered_like_a_missing_one() {
    let cases: &[(&str, &str)] = &[
        ("a service not exported to the namespace", "own.team-a"),
        ("another workload's inbound policy", "web.team-a"),
    ];
    for (case, hidden) in cases {
        let snap = team_a(1);
        let mut hidden_session = Session::new(7, workload("team-b", "web"));
        let mut missing_session = Session::new(7, workload("team-b", "web"));
        let to_hidden = request(
            &mut hidden_session,
            subscribe(&[hidden, "to-b.team-a"]),
            &snap,
        )
        .expect(case);
        let to_missing = request(
            &mut missing_session,
            subscribe(&["nothing.team-a", "to-b.team-a"]),
            &snap,
        )
        .expect(case);
        assert_eq!(
            to_hidden.removed_resources,
            vec![(*hidden).to_owned()],
            "{case}"
        );
        assert_eq!(sent(&to_hidden), pairs(&[("to-b.team-a", "1")]), "{case}");
        // Nothing but the name tells the two answers apart.
        let mut normalised = to_missing.clone();
        normalised.removed_resources = vec![(*hidden).to_owned()];
        assert_eq!(to_hidden, normalised, "{case}");
        assert_eq!(
            hidden_session.status()[0].resources.len(),
            missing_session.status()[0].resources.len(),
            "{case}"
        );
    }
}

#[test]
fn initial_versions_of_a_hidden_resource_are_reported_removed() {
    let mut session = Session::new(1, workload("team-b", "web"));
    let mut req = subscribe(&["own.team-a", "to-b.team-a"]);
    req.initial_resource_versions = [("own.team-a", "1"), ("to-b.team-a", "1")]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let response = request(&mut session, req, &team_a(1)).expect("removal");
    assert!(response.resources.is_empty());
    assert_eq!(response.removed_resources, vec!["own.team-a".to_owned()]);
}

#[test]
fn a_resource_that_stops_being_visible_is_removed_and_sent_again_when_it_returns() {
    let shown = |rev| {
        visible_snapshot(
            rev,
            &[("svc.team-a", "1", namespaces(&["team-a", "team-b"]))],
        )
    };
    let hidden = |rev| visible_snapshot(rev, &[("svc.team-a", "1", namespaces(&["team-a"]))]);
    for subscription in [&["*"][..], &["svc.team-a"]] {
        let mut session = Session::new(1, workload("team-b", "web"));
        let first = request(&mut session, subscribe(subscription), &shown(1)).expect("first");
        assert_eq!(
            sent(&first),
            pairs(&[("svc.team-a", "1")]),
            "{subscription:?}"
        );
        request(&mut session, ack(&first.nonce), &shown(1));

        let narrowed = session.on_snapshot(&hidden(2));
        assert_eq!(narrowed.len(), 1, "{subscription:?}");
        assert!(narrowed[0].resources.is_empty(), "{subscription:?}");
        assert_eq!(
            narrowed[0].removed_resources,
            vec!["svc.team-a".to_owned()],
            "{subscription:?}"
        );
        request(&mut session, ack(&narrowed[0].nonce), &hidden(2));
        assert!(
            session.on_snapshot(&hidden(3)).is_empty(),
            "{subscription:?}"
        );

        let widened = session.on_snapshot(&shown(4));
        assert_eq!(widened.len(), 1, "{subscription:?}");
        assert_eq!(
            sent(&widened[0]),
            pairs(&[("svc.team-a", "1")]),
            "{subscription:?}: same version, sent again because the proxy dropped it"
        );
        assert!(widened[0].removed_resources.is_empty(), "{subscription:?}");
    }
}

#[test]
fn request_without_type_url_is_invalid() {
    let mut session = Session::new(1, Viewer::Unrestricted);
    let mut req = subscribe(&["a"]);
    req.type_url.clear();
    let error = session
        .on_request(req, &snapshot(1, &[]))
        .expect_err("invalid");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
}
