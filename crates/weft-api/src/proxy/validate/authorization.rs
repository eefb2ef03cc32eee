//! `inbound.authorization`: rules the proxy can enforce as written.

use super::{key_values, Errors};
use crate::proxy::{is_token, Authorization, PathPatternType};

pub(super) fn authorization(a: &Authorization, errors: &mut Errors) {
    let base = "inbound.authorization";
    for port in a.ports.keys() {
        if *port == 0 {
            errors.push(format!("{base}.ports"), "port 0 is not a port (1-65535)");
        }
    }
    for (i, p) in a.providers.iter().enumerate() {
        if !p.address.ip().is_loopback() {
            errors.push(
                format!("{base}.providers[{i}].address"),
                format!(
                    "{} is not a loopback address: the check travels in plaintext, so the \
                     server runs beside the proxy (127.0.0.1)",
                    p.address
                ),
            );
        }
        if p.timeout.is_zero() {
            errors.push(
                format!("{base}.providers[{i}].timeout"),
                "must be longer than 0s",
            );
        }
    }
    for (r, rule) in a.rules.iter().enumerate() {
        let path = format!("{base}.rules[{r}]");
        match (&rule.provider, rule.action) {
            (None, crate::proxy::Action::Custom) => errors.push(
                format!("{path}.provider"),
                "a custom rule names the provider to ask (one of inbound.authorization.providers)",
            ),
            (Some(name), crate::proxy::Action::Custom) => {
                if !a.providers.iter().any(|p| &p.name == name) {
                    errors.push(
                        format!("{path}.provider"),
                        format!("{name:?} is not one of inbound.authorization.providers"),
                    );
                }
            }
            (Some(_), _) => errors.push(
                format!("{path}.provider"),
                "only a custom rule asks a provider; remove it or set action: custom",
            ),
            (None, _) => {}
        }
        for (i, p) in rule.ports.iter().enumerate() {
            if *p == 0 {
                errors.push(format!("{path}.ports[{i}]"), "must be 1-65535");
            }
        }
        for (i, f) in rule.from.iter().enumerate() {
            let fpath = format!("{path}.from[{i}]");
            match (&f.identity, f.unauthenticated) {
                (Some(id), false) => {
                    let stem = id.strip_suffix('*').unwrap_or(id);
                    if id != "*" && (!stem.starts_with("spiffe://") || stem.contains('*')) {
                        errors.push(
                            format!("{fpath}.identity"),
                            format!(
                                "{id:?} is not a SPIFFE ID, a prefix of one ending in '*', or \"*\""
                            ),
                        );
                    }
                }
                (None, true) => {}
                _ => errors.push(
                    fpath,
                    "give exactly one of identity or unauthenticated: true",
                ),
            }
        }
        for (i, op) in rule.to.iter().enumerate() {
            let opath = format!("{path}.to[{i}]");
            for (j, p) in op.ports.iter().enumerate() {
                if *p == 0 {
                    errors.push(format!("{opath}.ports[{j}]"), "must be 1-65535");
                }
            }
            for (j, p) in op.paths.iter().enumerate() {
                let ppath = format!("{opath}.paths[{j}].value");
                if !p.value.starts_with('/') {
                    errors.push(ppath, format!("{:?} must start with '/'", p.value));
                } else if p.kind != PathPatternType::Glob && p.value.contains('*') {
                    errors.push(ppath, format!("{:?}: use type Glob for wildcards", p.value));
                }
            }
            for (j, m) in op.methods.iter().enumerate() {
                if !is_token(m) {
                    errors.push(
                        format!("{opath}.methods[{j}]"),
                        format!("{m:?} is not an HTTP method"),
                    );
                }
            }
            for (j, h) in op.hosts.iter().enumerate() {
                if h.is_empty()
                    || h.contains([':', '/'])
                    || h.bytes().any(|b| b.is_ascii_uppercase())
                {
                    errors.push(
                        format!("{opath}.hosts[{j}]"),
                        format!("{h:?} is not a lower-case host name without port"),
                    );
                }
            }
            key_values(&format!("{opath}.headers"), &op.headers, true, errors);
        }
    }
}
