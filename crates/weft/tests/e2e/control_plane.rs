//! The control plane across hosts: a write through one control plane reaches proxies
//! on another that shares its PostgreSQL store. (Registration, pushes, outages and
//! NACKs need no host of their own: they are in the in-process suite, `tests/mesh`.)

use std::time::Duration;

use crate::support::{eventually, get, meshed_echo, Mesh, ECHO_SERVICES};

#[test]
fn a_write_through_one_control_plane_reaches_proxies_on_another_sharing_postgresql() {
    let Some(mesh) = Mesh::new(
        "a_write_through_one_control_plane_reaches_proxies_on_another_sharing_postgresql",
    ) else {
        return;
    };
    let db = mesh.host("db");
    let cp1 = mesh.host("cp1");
    let cp2 = mesh.host("cp2");
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let bin = crate::support::postgres_bin()
        .expect("PostgreSQL server binaries (Debian package postgresql)");
    let _pg = crate::support::Postgres::start(&db, &bin, mesh.dir.path());
    let url = format!("postgres://postgres@{}:5432/postgres", db.ip());
    let _c1 = mesh.control_plane(&cp1, &["--store", &url]);
    let _c2 = mesh.control_plane(&cp2, &["--store", &url]);
    // The server registers through cp1, the client talks to cp2.
    let _v1 = meshed_echo(&mesh, &v1, &cp1, "v1");
    let boot = mesh.bootstrap(&client, "client", &[], &[], &[(18080, "echo", 80)]);
    let _client = mesh.meshed_proxy(&client, &boot, &cp2);
    // Written through cp1's API.
    mesh.apply(&cp1, "services", ECHO_SERVICES);
    assert!(
        eventually(Duration::from_secs(10), || client.run(|| get(18080, "/"))
            == (200, Some("v1".into()))),
        "the client (on cp2) never learned the service written through cp1"
    );
    let (ok, out) = mesh.cli(&cp2, &["get", "workloads", "-o", "wide"]);
    assert!(
        ok && out.contains("echo-v1") && out.contains("cp1"),
        "{out}"
    );
}
