//! The Python gRPC echo server and client: all four RPC kinds, with trailers.

use std::net::SocketAddr;

use weft_testkit::grpc::{self, GrpcServer};
use weft_testkit::{e2e_guard, Topology};

#[test]
fn grpc_echo_runs_all_four_kinds_on_loopback() {
    if !grpc::available("grpc_echo_runs_all_four_kinds_on_loopback") {
        return;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], weft_testkit::ports::free_loopback_port()));
    let _server = GrpcServer::spawn(None, addr, "local").expect("server");
    let report = grpc::run_client(None, addr, Some("echo.test")).expect("client");
    assert_eq!(report.server, "local");
    assert_eq!(report.unary, "local|hello");
    assert_eq!(report.server_streaming, 3);
    assert_eq!(report.client_streaming, "local|a,b,c");
    assert_eq!(report.bidi, 2);
}

#[test]
fn grpc_client_fails_without_a_server() {
    if !grpc::available("grpc_client_fails_without_a_server") {
        return;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], weft_testkit::ports::free_loopback_port()));
    let err = grpc::run_client(None, addr, None).expect_err("nothing listens");
    assert!(matches!(err, grpc::Error::ClientFailed { .. }), "{err}");
}

#[test]
fn grpc_echo_across_hosts() {
    if !e2e_guard("grpc_echo_across_hosts") || !grpc::available("grpc_echo_across_hosts") {
        return;
    }
    let topology = Topology::new().expect("topology");
    let a = topology.add_host("a").expect("host a");
    let b = topology.add_host("b").expect("host b");
    let listen = SocketAddr::from((b.ip(), 50051));
    let _server = GrpcServer::spawn(Some(&b), listen, "b").expect("server in b");
    let report = grpc::run_client(Some(&a), listen, None).expect("client in a");
    assert_eq!(report.server, "b");
}
