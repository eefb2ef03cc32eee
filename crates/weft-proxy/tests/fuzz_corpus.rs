//! The fuzz corpora of the proxy's targets, replayed on stable: each file of
//! `fuzz/corpus/<target>/` goes through the same harness as `cargo fuzz run <target>`
//! (`fuzz/harness/<target>.rs`, included here), so every input the fuzzer kept, crash
//! reproducers included, stays a regression test. See fuzz/README.md.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

include!("../../../fuzz/harness/replay.rs");

mod detect {
    include!("../../../fuzz/harness/detect.rs");
}
mod proxy_config {
    include!("../../../fuzz/harness/proxy_config.rs");
}
mod xds_decode {
    include!("../../../fuzz/harness/xds_decode.rs");
}
mod dns_query {
    include!("../../../fuzz/harness/dns_query.rs");
}
mod path {
    include!("../../../fuzz/harness/path.rs");
}
mod http_head {
    include!("../../../fuzz/harness/http_head.rs");
}

#[test]
fn detect_corpus_replays_without_panic() {
    replay("detect", detect::run);
}

#[test]
fn proxy_config_corpus_replays_without_panic() {
    replay("proxy_config", proxy_config::run);
}

#[test]
fn xds_decode_corpus_replays_without_panic() {
    replay("xds_decode", xds_decode::run);
}

#[test]
fn dns_query_corpus_replays_without_panic() {
    replay("dns_query", dns_query::run);
}

#[test]
fn path_corpus_replays_without_panic() {
    replay("path", path::run);
}

#[test]
fn http_head_corpus_replays_without_panic() {
    replay("http_head", http_head::run);
}

/// Writes the starting points of `detect`, `dns_query`, `path`, `http_head` and the trust
/// bundle of `xds_decode` into `fuzz/corpus/`: real ClientHellos from rustls, HTTP/1
/// and HTTP/2 openings, DNS queries encoded by hickory, request targets with their
/// rules, request heads, and a CA's PEM. Run by hand:
/// `cargo test -p weft-proxy --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes seed files into fuzz/corpus; run by hand"]
fn write_seeds() {
    use std::sync::Arc;

    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use prost::Message as _;
    use weft_api::pb::v1 as pb;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let seed = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };

    // ClientHellos: TLS 1.3 only (HBONE's profile) and 1.2+1.3, with SNI and ALPN h2.
    let versions: [(&str, &[&rustls::SupportedProtocolVersion]); 2] = [
        ("tls13", &[&rustls::version::TLS13]),
        ("tls12", &[&rustls::version::TLS12, &rustls::version::TLS13]),
    ];
    for (label, versions) in versions {
        let mut config = rustls::ClientConfig::builder_with_provider(weft_tls::crypto_provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = "echo.default.svc.cluster.local".try_into().unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        seed("detect", &format!("client-hello-{label}"), &hello);
    }
    let openings: [(&str, &[u8]); 7] = [
        (
            "http11-get",
            b"GET /api/v1/items?id=7 HTTP/1.1\r\nHost: api\r\n\r\n",
        ),
        ("http10-options", b"OPTIONS * HTTP/1.0\r\n\r\n"),
        (
            "http11-connect",
            b"CONNECT api.default:80 HTTP/1.1\r\nHost: api.default:80\r\n\r\n",
        ),
        (
            "h2-preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
        ),
        ("postgres-startup", b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
        ("redis-ping", b"*1\r\n$4\r\nPING\r\n"),
        ("ssh-banner", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
    ];
    for (name, bytes) in openings {
        seed("detect", name, bytes);
    }

    // DNS: the table's names in each form, a name outside the mesh, an unknown one.
    let queries = [
        (
            "catalog-a",
            "catalog.shop.svc.cluster.local.",
            RecordType::A,
        ),
        ("catalog-short-aaaa", "catalog.", RecordType::AAAA),
        (
            "ledger-aaaa",
            "ledger.bank.svc.cluster.local.",
            RecordType::AAAA,
        ),
        ("ledger-any", "ledger.bank.", RecordType::ANY),
        (
            "unknown-a",
            "nothere.shop.svc.cluster.local.",
            RecordType::A,
        ),
        ("outside-a", "example.org.", RecordType::A),
        ("catalog-mx", "Catalog.Shop.Svc.", RecordType::MX),
    ];
    for (i, (name, host, kind)) in queries.into_iter().enumerate() {
        let mut message = Message::query();
        message.metadata.id = 0x1000 + i as u16;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(host).unwrap(), kind));
        seed("dns_query", name, &message.to_vec().unwrap());
    }

    // Paths: target, path match, filter path, authority (see the harness).
    let paths = [
        (
            "prefix-replace",
            "/api/v1/items?x=1\n^/api\nP/v2\napi.default",
        ),
        ("prefix-root", "/api\n^/api/\nP/\napi.default:8080"),
        ("exact-full", "/login\n=/login\nF/auth/login\nweb"),
        (
            "regex-full",
            "/users/42/posts\n~/users/[0-9]+/posts\nF/posts\nweb.shop.svc",
        ),
        ("segment-miss", "/apix/y\n^/api\nP/v2\napi"),
        ("asterisk", "*\n^/\nP/x\n"),
        (
            "absolute-form",
            "http://api.default:80/a/b?c=d\n^/a\nP/z\napi.default:80",
        ),
    ];
    for (name, text) in paths {
        seed("path", name, text.as_bytes());
    }

    // Request heads: well-formed ones, and the framing and target tricks the checks
    // exist for; one HTTP/2 request (preface, SETTINGS, a HEADERS frame in HPACK).
    let heads: [(&str, &[u8]); 10] = [
        ("get", b"GET /items?id=7 HTTP/1.1\r\nHost: api.default\r\nAccept: */*\r\n\r\n"),
        ("post-length", b"POST /items HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\n\r\nhello"),
        ("post-chunked", b"POST /items HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("http10-no-host", b"GET / HTTP/1.0\r\n\r\n"),
        ("absolute-form", b"GET http://api.default:80/a?b=c HTTP/1.1\r\nHost: other\r\n\r\n"),
        ("options-asterisk", b"OPTIONS * HTTP/1.1\r\nHost: api\r\n\r\n"),
        ("length-twice", b"POST / HTTP/1.1\r\nHost: api\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        ("length-and-chunked", b"POST / HTTP/1.1\r\nHost: api\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("connection-host", b"GET / HTTP/1.1\r\nHost: api\r\nConnection: keep-alive, Host\r\n\r\n"),
        ("pipelined", b"GET /a HTTP/1.1\r\nHost: api\r\n\r\nGET /b HTTP/1.1\r\nHost: api\r\n\r\n"),
    ];
    for (name, bytes) in heads {
        seed("http_head", name, bytes);
    }
    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS, empty
                                                        // :method GET, :scheme http, :path /, :authority api.default (literal, indexed name).
    let block = [&[0x82, 0x86, 0x84, 0x41, 11][..], b"api.default"].concat();
    h2.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1]); // HEADERS, END_STREAM|END_HEADERS, stream 1
    h2.extend_from_slice(&block);
    seed("http_head", "h2-get", &h2);

    // A trust bundle as the control plane sends it (mode byte 4).
    let ca =
        weft_tls::ca::Authority::generate("cluster.local", std::time::Duration::from_secs(86_400))
            .unwrap();
    let bundle = pb::TrustBundle {
        roots_pem: ca.cert_pem(),
        signer: ca.signer_id(),
    };
    seed(
        "xds_decode",
        "trust-bundle-4",
        &[&[4][..], &bundle.encode_to_vec()].concat(),
    );
}
