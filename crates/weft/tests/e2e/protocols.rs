//! PostgreSQL crosses two proxies and HBONE mTLS intact, queried with `psql`. (The
//! server runs as its own user inside its host; every other protocol is tested in the
//! in-process suite, `tests/mesh/protocols.rs`.)

use weft_testkit::Host;

use crate::support::{outbound, service, Mesh};

/// Client host with an outbound listener per `(listen, service, port)` and the given
/// services; server host with the app ports. Returns the proxies to keep them alive.
fn two_hosts(
    mesh: &Mesh,
    app_ports: &[(u16, &str)],
    outbounds: &[(u16, &str, u16)],
    services: &str,
) -> (Host, Host, Vec<weft_testkit::process::WeftProcess>) {
    let client = mesh.host("client");
    let server = mesh.host("server");
    let server_cfg = mesh.write("server", &mesh.identity_yaml(&server, "echo", app_ports));
    let outbound_yaml: String = outbounds
        .iter()
        .map(|(l, s, p)| outbound(*l, s, *p))
        .collect();
    let client_cfg = mesh.write(
        "client",
        &format!(
            "{}outbound:\n{outbound_yaml}services:\n{}",
            mesh.identity_yaml(&client, "client", &[]),
            services.replace("@SERVER@", &Mesh::endpoint(&server, "echo"))
        ),
    );
    let sp = mesh.proxy(&server, &server_cfg);
    let cp = mesh.proxy(&client, &client_cfg);
    (client, server, vec![cp, sp])
}

#[test]
fn postgres_is_queried_with_psql_through_the_mesh() {
    let Some(mesh) = Mesh::new("postgres_is_queried_with_psql_through_the_mesh") else {
        return;
    };
    let Some(bin) = crate::support::postgres_bin() else {
        weft_testkit::wait::skip(
            "postgres_is_queried_with_psql_through_the_mesh",
            "PostgreSQL server binaries not found (apt-get install postgresql)",
        );
        return;
    };
    let services = service("db", 5432, 5432, "auto", &["@SERVER@".into()]);
    let (client, server, _proxies) =
        two_hosts(&mesh, &[(5432, "auto")], &[(15432, "db", 5432)], &services);
    let _pg = crate::support::Postgres::start(&server, &bin, mesh.dir.path());
    let out = client
        .command("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "15432",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ])
        .arg("select 'meshed:' || (40 + 2)")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "meshed:42");
}
