//! Stage 1, authorize: whether this caller may make this request at all.
//!
//! Today one rule lives here: a plaintext caller on a port whose mode turned strict
//! (mTLS only) while its connection was open is refused (a new connection is refused
//! before any request, in [`Inbound::plaintext`](super::super::Inbound::plaintext)).
//! `AuthorizationPolicy` (issue 16) belongs in this file: a decision over the
//! verified caller ([`Caller`]), the port and the request, refusing with a policy
//! [`Error`] (a denial variant added to the classification). Nothing here yet
//! pretends to do it.

use weft_api::proxy::MtlsMode;

use crate::error::Error;
use crate::state::Snapshot;

use super::identity::Caller;

/// Whether `caller` may send a request to the app's `port`.
pub fn authorize(snap: &Snapshot, caller: &Caller, port: u16) -> Result<(), Error> {
    if caller.peer().is_none() && snap.config.port_mtls(port) != MtlsMode::Permissive {
        return Err(Error::PlaintextRefused);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::stage::test_config::snapshot;

    /// Caller (verified or plaintext) and port → allowed or refused.
    #[test]
    fn plaintext_is_refused_on_strict_ports_only() {
        let snap = snapshot("");
        let peer: weft_tls::SpiffeId = "spiffe://cluster.local/ns/default/sa/client"
            .parse()
            .expect("spiffe id");
        let verified = Caller::new(&snap, Some(peer));
        let plaintext = Caller::new(&snap, None);
        let cases: Vec<(&Caller, u16, bool)> = vec![
            (&verified, 8080, true),
            (&verified, 9090, true),
            (&plaintext, 8080, false),
            (&plaintext, 9090, true),
        ];
        for (caller, port, allowed) in cases {
            let got = authorize(&snap, caller, port);
            assert_eq!(got.is_ok(), allowed, "{:?} port {port}", caller.peer());
            if let Err(e) = got {
                assert_eq!(e.status().as_u16(), 403);
            }
        }
    }
}
