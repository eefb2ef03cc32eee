//! The proxy against a scripted control plane ([`FakeXds`]): what a test pushes
//! reaches the data path, and a resource the proxy refuses is NACKed by name while
//! the version it replaces keeps serving.

use std::time::Duration;

use weft_api::pb::v1 as pb;
use weft_api::proxy;
use weft_testkit::echo;

use crate::harness::fake_xds::{Answer, FakeXds};
use crate::harness::{eventually, get, Mesh, Proxy};

/// How long a push may take to be answered.
const ANSWER: Duration = Duration::from_secs(10);

/// The route table of `echo` from its rules (YAML flow list items).
fn routes(rules: &str) -> Vec<proxy::RouteTable> {
    let yaml = format!("- service: echo.default\n  rules: [{rules}]\n");
    serde_saphyr::from_str(&yaml).expect("a route table")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_route_reaches_the_proxy_and_a_nacked_one_leaves_the_old_one_serving() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let _a1 = echo::spawn_http(mesh.app(&v1), "v1").await.expect("v1");
    let _a2 = echo::spawn_http(mesh.app(&v2), "v2").await.expect("v2");

    let fake = FakeXds::start().await;
    let services: Vec<proxy::Service> = serde_saphyr::from_str(&format!(
        "{}{}{}",
        mesh.service("echo", 80, "http", &[Mesh::direct(&v1)]),
        mesh.service("echo-v1", 80, "http", &[Mesh::direct(&v1)]),
        mesh.service("echo-v2", 80, "http", &[Mesh::direct(&v2)]),
    ))
    .expect("services");
    for service in &services {
        fake.set_service(service);
    }
    fake.set_routes(
        "echo.default",
        &routes("{ backends: [{ service: echo-v1 }] }"),
    );

    // A control-plane-mode client with certificate files (the fake issues none).
    let bootstrap = format!(
        "{}outbound:\n{}",
        mesh.identity_yaml(&client, "client", &[]),
        Mesh::outbound(&client, mesh.ports.listen, "echo", 80),
    );
    let _proxy = Proxy::start(
        client.name(),
        mesh.write("client", &bootstrap),
        Some(weft_proxy::run::ControlPlane {
            endpoint: fake.endpoint(),
            state_dir: mesh.dir.path().join("state"),
            token_file: None,
            ca_file: None,
        }),
        mesh.admin(&client),
    )
    .await;
    let listen = mesh.listen(&client);
    assert_eq!(get(listen, "/").await, (200, Some("v1".into())));
    let registered = fake.registrations();
    assert_eq!(
        registered.first().map(|r| r.name.as_str()),
        Some("client"),
        "the proxy registers its workload from the bootstrap"
    );

    // A new route table is pushed, ACKed, and followed; the proxy subscribes to the
    // backend it names, which nothing named before.
    assert!(
        !fake
            .wait_subscribed(
                pb::SERVICE_TYPE_URL,
                "echo-v2.default",
                Duration::from_millis(100)
            )
            .await,
        "subscribed to a service no route named"
    );
    let pushed = fake.set_routes(
        "echo.default",
        &routes("{ backends: [{ service: echo-v2 }] }"),
    );
    assert_eq!(pushed.len(), 1, "one subscribed proxy");
    assert_eq!(fake.answer(&pushed[0], ANSWER).await, Some(Answer::Ack));
    assert!(
        fake.wait_subscribed(pb::SERVICE_TYPE_URL, "echo-v2.default", ANSWER)
            .await,
        "the proxy did not subscribe to the backend its new route names"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(listen, "/").await == (200, Some("v2".into()))
        })
        .await,
        "the pushed route never took effect"
    );

    // One the proxy cannot compile (a regex past its program size limit) is NACKed
    // by name, and the route table it would replace keeps serving.
    let huge = r"(\w{1,20}-){4}\w+";
    let pushed = fake.set_routes(
        "echo.default",
        &routes(&format!(
            "{{ matches: [{{ headers: [{{ name: x-user, value: {{ regex: '{huge}' }} }}] }}], backends: [{{ service: echo-v1 }}] }}, \
             {{ backends: [{{ service: echo-v1 }}] }}"
        )),
    );
    assert_eq!(pushed.len(), 1, "one subscribed proxy");
    match fake.answer(&pushed[0], ANSWER).await {
        Some(Answer::Nack(message)) => assert!(
            message.contains("echo.default") && message.contains("size limit"),
            "the NACK names the refused route table and why: {message}"
        ),
        other => panic!("the oversized route was not NACKed: {other:?}"),
    }
    for _ in 0..50 {
        assert_eq!(get(listen, "/").await, (200, Some("v2".into())));
    }
}
