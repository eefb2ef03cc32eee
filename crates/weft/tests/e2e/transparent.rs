//! Transparent mode end to end: apps with no Weft configuration at all use plain
//! service names; `weft redirect install` sends their DNS to the proxy's mesh DNS and
//! their connections to its capture listener, and the mesh carries them over mTLS with
//! the control plane's routes applied.

use weft_testkit::echo::EchoReply;
use weft_testkit::Host;

use crate::support::{as_app, local, Mesh};

/// Where the app's resolver points. Nothing answers there (TEST-NET-1): every name the
/// app resolves is answered by the redirect to the mesh DNS, or not at all.
const RESOLVER: &str = "192.0.2.53";

/// Service names and a route: requests with `x-canary: 1` go to v2, the rest to v1.
const CATALOG: &str = "\
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: catalog }
spec:
  selector: { app: catalog }
  ports: [{ port: 8080, protocol: http }]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: catalog-v1 }
spec:
  selector: { app: catalog, version: v1 }
  ports: [{ port: 8080, protocol: http }]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: catalog-v2 }
spec:
  selector: { app: catalog, version: v2 }
  ports: [{ port: 8080, protocol: http }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: catalog-canary }
spec:
  parentRefs: [{ kind: Service, name: catalog, port: 8080 }]
  rules:
    - matches: [{ headers: [{ name: x-canary, value: '1' }] }]
      backendRefs: [{ name: catalog-v2, port: 8080 }]
    - backendRefs: [{ name: catalog-v1, port: 8080 }]
";

/// `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over the host's
/// `/etc/resolv.conf`; removed again on drop.
struct Resolver(std::path::PathBuf);

impl Resolver {
    fn point(host: &Host, nameserver: &str) -> Self {
        let dir = std::path::Path::new("/etc/netns").join(host.netns_name());
        std::fs::create_dir_all(&dir).expect("create /etc/netns/<ns>");
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\n"),
        )
        .expect("write resolv.conf");
        Self(dir)
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn exec_ok(host: &Host, args: &[&str]) {
    let out = host.exec(args).expect("exec");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `host` transparent: its resolver, routes a host with a default route would
/// have (the VIP range and the resolver), and `weft redirect install`.
fn transparent(host: &Host) -> Resolver {
    let resolver = Resolver::point(host, RESOLVER);
    exec_ok(
        host,
        &["ip", "route", "add", "240.240.0.0/16", "dev", "eth0"],
    );
    exec_ok(host, &["ip", "route", "add", "192.0.2.0/24", "dev", "eth0"]);
    let weft = crate::support::weft();
    exec_ok(
        host,
        &[
            weft.to_str().expect("utf-8"),
            "redirect",
            "install",
            "--proxy-uid",
            "0",
        ],
    );
    resolver
}

fn app_get(host: &Host, url: &str, headers: &[&str]) -> Result<EchoReply, String> {
    let mut args = vec!["curl", "-sS", "--fail", "--max-time", "5"];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(url);
    let body = as_app(host, &args)?;
    EchoReply::from_body(&body).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&body)))
}

/// A bootstrap in transparent mode: the mesh DNS on 127.0.0.1:15053.
fn with_mesh_dns(path: &std::path::Path) {
    let mut yaml = std::fs::read_to_string(path).expect("read bootstrap");
    yaml.push_str("listeners:\n  dns: 127.0.0.1:15053\n");
    std::fs::write(path, yaml).expect("write bootstrap");
}

#[test]
fn apps_on_transparent_hosts_reach_services_by_plain_name_over_mtls_with_routes_applied() {
    let Some(mesh) = Mesh::new(
        "apps_on_transparent_hosts_reach_services_by_plain_name_over_mtls_with_routes_applied",
    ) else {
        return;
    };
    let cp = mesh.host("cp");
    let web = mesh.host("web");
    let hosts = [mesh.host("catalog1"), mesh.host("catalog2")];
    let _cp = mesh.control_plane(&cp, &[]);
    mesh.apply(&cp, "catalog", CATALOG);

    let _resolvers: Vec<Resolver> = std::iter::once(&web)
        .chain(&hosts)
        .map(transparent)
        .collect();
    let mut running = Vec::new();
    for (host, version) in hosts.iter().zip(["v1", "v2"]) {
        let app = host
            .spawn_server(move || weft_testkit::echo::spawn_http(local(8080), version))
            .expect("catalog app");
        let (boot, token) = mesh.tokened_bootstrap(
            &cp,
            host,
            &format!("catalog-{version}"),
            &[("app", "catalog"), ("version", version)],
            &[(8080, "http")],
            &[],
        );
        with_mesh_dns(&boot);
        running.push((app, mesh.tokened_proxy(host, &boot, &token, &cp)));
    }
    let (boot, token) = mesh.tokened_bootstrap(&cp, &web, "web", &[("app", "web")], &[], &[]);
    with_mesh_dns(&boot);
    let web_proxy = mesh.tokened_proxy(&web, &boot, &token, &cp);

    // The name resolves, for the app, to the VIP the control plane allocated.
    let (ok, out) = mesh.cli(&cp, &["get", "service", "catalog", "-o", "json"]);
    assert!(ok, "{out}");
    let service: serde_json::Value = serde_json::from_str(&out).expect("json");
    let vip = service["status"]["vip"]
        .as_str()
        .expect("allocated VIP")
        .to_owned();
    assert!(vip.starts_with("240.240."), "{vip}");
    let resolved = as_app(
        &web,
        &["getent", "ahostsv4", "catalog.default.svc.cluster.local"],
    )
    .expect("the app resolves the name");
    let resolved = String::from_utf8_lossy(&resolved);
    assert!(resolved.starts_with(&format!("{vip} ")), "{resolved}");

    // The app connects to that address as if it were the service; the mesh carries
    // it over mTLS (the catalog's proxy vouches for the caller's identity) and the
    // route decides the version. Endpoints may take a moment to register.
    let url = "http://catalog.default.svc.cluster.local:8080/items";
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(15), || {
            app_get(&web, url, &[]).is_ok_and(|r| r.server == "v1")
                && app_get(&web, url, &["x-canary: 1"]).is_ok_and(|r| r.server == "v2")
        }),
        "the route never applied: {:?}",
        app_get(&web, url, &[])
    );
    for _ in 0..5 {
        let plain = app_get(&web, url, &[]).expect("through the mesh");
        assert_eq!(plain.server, "v1");
        let xfcc = plain
            .header("x-forwarded-client-cert")
            .expect("carried over mTLS");
        assert!(
            xfcc.contains("URI=spiffe://cluster.local/ns/default/sa/web"),
            "{xfcc}"
        );
        let canary = app_get(&web, url, &["x-canary: 1"]).expect("canary");
        assert_eq!(canary.server, "v2");
    }
    // The short forms an app would use resolve too.
    for short in [
        "http://catalog:8080/short",
        "http://catalog.default:8080/short",
    ] {
        let reply = app_get(&web, short, &[]).expect(short);
        assert_eq!(reply.server, "v1", "{short}");
    }

    // With the proxy gone, the name no longer resolves and nothing connects around
    // the mesh (the redirect test covers direct addresses).
    drop(web_proxy);
    let refused = app_get(&web, url, &[]);
    assert!(
        refused.is_err(),
        "the app went around the stopped proxy: {refused:?}"
    );
}
