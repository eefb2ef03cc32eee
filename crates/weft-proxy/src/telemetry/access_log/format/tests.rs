#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;
use serde_json::{json, Value as Json};

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

fn allowed() -> Entry<'static> {
    Entry {
        start: start(),
        direction: Direction::Inbound,
        source_identity: "spiffe://cluster.local/ns/shop/sa/frontend",
        destination_service: "catalog.shop",
        destination_workload: "shop/catalog-7d9f8c6b5-x2k4p",
        destination_identity: "spiffe://cluster.local/ns/shop/sa/catalog",
        upstream: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        route: "",
        route_rule: None,
        method: "GET",
        authority: "catalog.shop:80",
        path: "/items/42",
        protocol: "HTTP/1.1",
        status: 200,
        grpc_status: None,
        duration: Duration::from_micros(12_345),
        request_bytes: 0,
        response_bytes: 512,
        retries: 0,
        trace_id: Some([
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36,
        ]),
        flags: ResponseFlags::EMPTY,
    }
}

fn retried() -> Entry<'static> {
    Entry {
        direction: Direction::Outbound,
        source_identity: "spiffe://cluster.local/ns/shop/sa/frontend",
        upstream: Some("[fd00::7]:15008".parse().unwrap()),
        route: "HTTPRoute/shop/catalog",
        route_rule: Some(2),
        protocol: "HTTP/2",
        status: 503,
        grpc_status: Some(14),
        duration: Duration::from_secs(2),
        request_bytes: 17,
        response_bytes: 0,
        retries: 3,
        flags: ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED
            | ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
        ..allowed()
    }
}

fn failed_without_upstream() -> Entry<'static> {
    Entry {
        direction: Direction::Outbound,
        source_identity: "",
        destination_workload: "",
        destination_identity: "",
        upstream: None,
        route: "HTTPRoute/shop/catalog",
        route_rule: Some(0),
        status: 503,
        duration: Duration::from_nanos(999),
        response_bytes: 19,
        trace_id: None,
        flags: ResponseFlags::NO_HEALTHY_UPSTREAM,
        ..allowed()
    }
}

fn line(format: &Format, entry: &Entry<'_>) -> String {
    let mut line = Vec::new();
    format.append(entry, &mut line);
    String::from_utf8(line).unwrap()
}

fn text(template: &str, entry: &Entry<'_>) -> String {
    line(&Format::Text(Template::parse(template).unwrap()), entry)
}

#[test]
fn json_lines_parse_back_with_every_field_and_its_value() {
    // `base` with the fields of `changes` replaced.
    let with = |base: &Json, changes: Json| {
        let mut want = base.clone();
        for (field, value) in changes.as_object().unwrap() {
            assert!(want.get(field).is_some(), "{field} is a field");
            want[field] = value.clone();
        }
        want
    };
    let allowed_json = json!({
        "start_time": "2023-11-14T22:13:20.123Z",
        "direction": "inbound",
        "source_identity": "spiffe://cluster.local/ns/shop/sa/frontend",
        "destination_service": "catalog.shop",
        "destination_workload": "shop/catalog-7d9f8c6b5-x2k4p",
        "destination_identity": "spiffe://cluster.local/ns/shop/sa/catalog",
        "upstream_host": "127.0.0.1:8080",
        "route": "",
        "route_rule": null,
        "method": "GET",
        "authority": "catalog.shop:80",
        "path": "/items/42",
        "protocol": "HTTP/1.1",
        "status": 200,
        "grpc_status": null,
        "duration_ms": 12.345,
        "bytes_received": 0,
        "bytes_sent": 512,
        "retry_count": 0,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "response_flags": "-",
    });
    let cases = [
        ("allowed", allowed(), allowed_json.clone()),
        (
            "retried",
            retried(),
            with(
                &allowed_json,
                json!({
                    "direction": "outbound",
                    "upstream_host": "[fd00::7]:15008",
                    "route": "HTTPRoute/shop/catalog",
                    "route_rule": 2,
                    "protocol": "HTTP/2",
                    "status": 503,
                    "grpc_status": 14,
                    "duration_ms": 2000.0,
                    "bytes_received": 17,
                    "bytes_sent": 0,
                    "retry_count": 3,
                    "response_flags": "UF,URX",
                }),
            ),
        ),
        (
            "failed without upstream",
            failed_without_upstream(),
            with(
                &allowed_json,
                json!({
                    "direction": "outbound",
                    "source_identity": "",
                    "destination_workload": "",
                    "destination_identity": "",
                    "upstream_host": null,
                    "route": "HTTPRoute/shop/catalog",
                    "route_rule": 0,
                    "status": 503,
                    "duration_ms": 0.0,
                    "bytes_sent": 19,
                    "trace_id": null,
                    "response_flags": "UH",
                }),
            ),
        ),
    ];
    for (name, entry, want) in cases {
        let line = line(&Format::Json, &entry);
        let got: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Map equality: every field, each with its value, and no other field.
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn json_writes_fields_in_the_documented_order() {
    let line = line(&Format::Json, &allowed());
    let positions: Vec<_> = FIELD_NAMES
        .iter()
        .map(|name| line.find(&format!("\"{name}\":")).unwrap())
        .collect();
    assert!(positions.is_sorted(), "{line}");
}

#[test]
fn duration_is_milliseconds_with_three_decimals() {
    let ms = |duration| {
        let entry = Entry {
            duration,
            ..allowed()
        };
        text("{duration_ms}", &entry)
    };
    assert_eq!(ms(Duration::from_micros(12_345)), "12.345");
    assert_eq!(ms(Duration::from_nanos(999)), "0.000");
    assert_eq!(ms(Duration::from_micros(1_001)), "1.001");
    assert_eq!(ms(Duration::from_secs(2)), "2000.000");
}

#[test]
fn json_escapes_quotes_backslashes_and_control_characters() {
    let nasty = "say \"hi\"\\ \n\r\t\u{8}\u{c}\u{0}\u{1b}[31m\u{7f}\u{85} é☃😀 </script> '";
    let entry = Entry {
        path: nasty,
        authority: "\"}\n{\"injected\":true",
        method: "",
        ..allowed()
    };
    let line = line(&Format::Json, &entry);
    assert!(
        !line.chars().any(char::is_control),
        "no raw control character: {line:?}"
    );
    let got: Json = serde_json::from_str(&line).unwrap();
    assert_eq!(got["path"], nasty);
    assert_eq!(got["authority"], "\"}\n{\"injected\":true");
    assert_eq!(got["method"], "");
    assert!(got.get("injected").is_none());
    assert!(line.contains(r"\u001b[31m\u007f\u0085 é☃😀"), "{line}");
    assert!(line.contains(r#"say \"hi\"\\ \n\r\t\b\f\u0000"#), "{line}");
}

#[test]
fn text_escapes_strings_so_a_line_stays_one_line() {
    let entry = Entry {
        path: "/a\nb \"c\"\u{1b}",
        ..allowed()
    };
    assert_eq!(text("\"{path}\"", &entry), r#""/a\nb \"c\"\u001b""#);
}

#[test]
fn text_renders_fields_and_literal_braces() {
    let entry = retried();
    assert_eq!(
        text("{{{status}}} {method} {{x}} {route}#{route_rule}", &entry),
        "{503} GET {x} HTTPRoute/shop/catalog#2"
    );
    assert_eq!(text("no fields", &entry), "no fields");
    assert_eq!(text("", &entry), "");
    assert_eq!(text("{{}}", &entry), "{}");
}

#[test]
fn text_writes_a_dash_for_absent_and_empty_values() {
    let entry = failed_without_upstream();
    assert_eq!(
        text(
            "{upstream_host} {grpc_status} {trace_id} {source_identity} {response_flags}",
            &entry
        ),
        "- - - - UH"
    );
    assert_eq!(text("{response_flags}", &allowed()), "-");
}

#[test]
fn every_field_name_is_a_placeholder_for_its_own_field() {
    let json: Json = serde_json::from_str(&line(&Format::Json, &retried())).unwrap();
    for (i, name) in FIELD_NAMES.iter().enumerate() {
        assert_eq!(Field::ALL[i] as usize, i);
        assert_eq!(
            Field::named(name).map(|f| FIELD_NAMES[f as usize]),
            Some(*name)
        );
        let want = match &json[name] {
            Json::String(s) if s.is_empty() => "-".to_owned(),
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let got = text(&format!("{{{name}}}"), &retried());
        if *name == "duration_ms" {
            assert_eq!(got, "2000.000");
        } else {
            assert_eq!(got, want, "{name}");
        }
    }
}

#[test]
fn default_template_renders_an_envoy_like_line() {
    assert_eq!(Template::default().as_str(), DEFAULT_TEXT_TEMPLATE);
    assert_eq!(
        Template::default(),
        Template::parse(DEFAULT_TEXT_TEMPLATE).unwrap()
    );
    assert_eq!(
        line(&Format::Text(Template::default()), &retried()),
        "[2023-11-14T22:13:20.123Z] \"GET /items/42 HTTP/2\" 503 UF,URX 17 0 2000.000 \
         \"catalog.shop:80\" \"[fd00::7]:15008\" outbound \
         spiffe://cluster.local/ns/shop/sa/frontend catalog.shop HTTPRoute/shop/catalog 3 \
         4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[test]
fn an_unknown_field_is_named_with_the_valid_ones() {
    let err = Template::parse("{status} {user_agent}").unwrap_err();
    assert_eq!(
        err,
        TemplateError::UnknownField {
            name: "user_agent".into(),
            offset: 9
        }
    );
    let message = err.to_string();
    assert!(message.contains("\"user_agent\""), "{message}");
    for name in FIELD_NAMES {
        assert!(message.contains(name), "{message} lists {name}");
    }
    assert_eq!(
        Template::parse("{}").unwrap_err(),
        TemplateError::UnknownField {
            name: String::new(),
            offset: 0
        }
    );
}

#[test]
fn an_unclosed_brace_gives_its_byte_offset() {
    let cases = [
        ("{status", 0),
        ("é {status", 3),
        ("{status} {method", 9),
        ("{method {status}", 0),
        ("{{{", 2),
    ];
    for (template, offset) in cases {
        assert_eq!(
            Template::parse(template),
            Err(TemplateError::Unclosed { offset }),
            "{template}"
        );
    }
    assert!(Template::parse("ab {status")
        .unwrap_err()
        .to_string()
        .contains("byte 3"));
    assert_eq!(
        Template::parse("{status} }"),
        Err(TemplateError::Unmatched { offset: 9 })
    );
}

#[test]
fn times_are_rfc_3339_as_humantime_writes_them_across_leap_years_and_centuries() {
    // Every day boundary from 1970 to 2500 in steps of 7 days + a prime, and the
    // days around the leap days of 2000 (leap) and 2100 (not).
    let step = 7 * 86_400 + 7919;
    let mut seconds: Vec<u64> = (0..16_725_225_600 / step).map(|i: u64| i * step).collect();
    for day in [
        10_957u64, 11_016, 11_017, 11_018, 47_541, 47_482, 47_483, 2_932_896,
    ] {
        seconds.extend([day * 86_400, day * 86_400 + 86_399]);
    }
    for secs in seconds {
        for millis in [0, 7, 999] {
            let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            let mut ours = Vec::new();
            write_time(time, &mut ours);
            let ours = String::from_utf8(ours).unwrap();
            let theirs = humantime::format_rfc3339_millis(time).to_string();
            assert_eq!(ours, theirs, "{secs} s {millis} ms");
        }
    }
}

#[test]
fn numbers_are_written_in_full_from_zero_to_the_largest() {
    for n in [0, 1, 9, 10, 99, 100, 65_535, 1_000_000_007, u64::MAX] {
        let mut out = Vec::new();
        push_uint(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
    let mut padded = Vec::new();
    for (n, width) in [
        (0, 3),
        (7, 3),
        (42, 3),
        (999, 3),
        (5, 2),
        (2026, 4),
        (12_345, 4),
    ] {
        padded.clear();
        push_padded(&mut padded, n, width);
        assert_eq!(padded, format!("{n:0w$}", w = width as usize).as_bytes());
    }
}

#[test]
fn addresses_are_written_as_socket_addr_displays_them() {
    for addr in [
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "10.0.0.7:15008",
        "[::1]:8080",
        "[fe80::1%2]:1",
    ] {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut out = Vec::new();
        Value::Addr(addr).write_plain(&mut out);
        assert_eq!(out, addr.to_string().as_bytes());
    }
}

#[test]
fn printable_ascii_is_copied_and_anything_else_takes_the_careful_path() {
    let escaped = |s: &str| {
        let mut out = Vec::new();
        escape(s, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(escaped("/items/42?x=ü"), "/items/42?x=ü");
    assert_eq!(escaped("a\u{85}b\u{7f}c\u{1b}"), "a\\u0085b\\u007fc\\u001b");
    // Every byte that needs care, at every position of a word and of the tail,
    // is seen; no printable ASCII byte is.
    for len in 1..=19 {
        for at in 0..len {
            for bad in [0u8, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xc2, 0xff] {
                let mut bytes = vec![b'a'; len];
                bytes[at] = bad;
                assert!(needs_care(&bytes), "{bad:#x} at {at} of {len}");
            }
        }
        let printable: Vec<u8> = (0x20u8..0x7f)
            .filter(|b| *b != b'"' && *b != b'\\')
            .cycle()
            .take(len * 5)
            .collect();
        assert!(!needs_care(&printable), "{len}");
    }
}
