//! A small X.509 certificate authority for mesh identities (ECDSA P-256 only).
//!
//! [`Authority`] holds a CA certificate and its key and issues workload certificates
//! (X.509-SVIDs) for [`SpiffeId`]s of its trust domain. Tests and operators use it today to
//! mint certificates (`weft-testkit`, `weft quickstart`); the control plane signs workload
//! CSRs with [`Authority::sign_csr`]. It is either generated (a self-signed root) or loaded
//! from an operator's PEM files: a single CA certificate ([`Authority::from_pem`]), or an
//! intermediate CA with the chain above it ([`Authority::from_pem_chain`]), whose links
//! are checked at load so a broken chain fails there, not at the first handshake.
//!
//! What it is not: a PKI. There is no revocation, no name or path-length constraint
//! processing of its own (rustls/webpki applies those when peers verify), and no key
//! storage beyond handing PEM strings to the caller.
//!
//! Certificates follow the SPIFFE X.509-SVID profile: the CA has `cA=true`,
//! `keyCertSign` and the URI SAN `spiffe://<trust-domain>`; leaves have `cA=false`,
//! `digitalSignature`, EKU serverAuth + clientAuth (HBONE peers are both), an empty
//! subject and exactly one URI SAN, the workload's SPIFFE ID.

use std::fmt;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::csr::Csr;
use crate::spiffe::{self, SpiffeId};

/// How far in the past issued certificates start, to absorb clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(60);

/// How far in the past certificates signed from CSRs start. Longer than [`BACKDATE`]:
/// these go to proxies on other hosts, whose clocks the control plane does not share.
const CSR_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Identity used for the self-test signature when loading a provided CA.
const PROBE_NAMESPACE: &str = "weft-system";
const PROBE_ACCOUNT: &str = "ca-self-test";

mod error;
mod issued;
mod load;
#[cfg(test)]
mod tests;

pub use error::Error;
pub use issued::{Issued, IssuedPaths};

/// A certificate authority for one trust domain.
pub struct Authority {
    trust_domain: String,
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
    not_after: SystemTime,
    /// This CA's certificate, DER.
    cert_der: Vec<u8>,
    /// Whether this CA's certificate is a self-signed root.
    is_root: bool,
    /// The CAs between this one and the root (not the root), nearest first, DER.
    intermediates: Vec<Vec<u8>>,
    /// The root this CA chains to, if known.
    root: Option<Vec<u8>>,
}

/// A certificate issued from a CSR, with the chain a peer needs to verify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedLeaf {
    /// Leaf first, then `chain_der()` of the CA. DER.
    pub chain: Vec<Vec<u8>>,
    /// When the leaf expires (whole seconds, as written in the certificate).
    pub not_after: SystemTime,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
}

/// A serving certificate the CA issued with a key it generated ([`Authority::issue_server`]).
#[derive(Clone)]
pub struct ServerLeaf {
    /// Leaf first, then `chain_der()` of the CA. DER.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

// === impl Authority ===

impl Authority {
    /// Generates a self-signed root CA for `trust_domain`, valid from one minute ago
    /// for `validity`.
    pub fn generate(trust_domain: &str, validity: Duration) -> Result<Self, Error> {
        spiffe::validate_trust_domain(trust_domain)
            .map_err(|source| Error::TrustDomain { source })?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| Error::KeyGeneration { source })?;
        let (not_before, not_after) = window_from_now(validity)?;

        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = ca_name(trust_domain, &serial);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.subject_alt_names = vec![uri_san(&format!("spiffe://{trust_domain}"))?];
        params.serial_number = Some(serial);
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;

        let cert = params.self_signed(&key).map_err(|source| Error::Sign {
            subject: "the CA".to_owned(),
            source,
        })?;
        let cert_der = cert.der().to_vec();
        Ok(Authority {
            trust_domain: trust_domain.to_owned(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            // As written in the certificate, so callers compare against what peers see.
            not_after: whole_seconds(not_after),
            root: Some(cert_der.clone()),
            cert_der,
            is_root: true,
            intermediates: Vec::new(),
        })
    }

    /// Signs a verified CSR's public key as `id` (which must be in this CA's trust domain; the CSR's
    /// own subject/SANs are ignored). Leaf: URI SAN = id ONLY, no CN SANs, keyUsage digitalSignature,
    /// EKU serverAuth+clientAuth, CA:FALSE, random serial; not_before = now − 5 min (clock skew);
    /// not_after = min(now + ttl, this CA's not_after). Errors if ttl is 0 or the CA has expired.
    pub fn sign_csr(
        &self,
        csr: &Csr,
        id: &SpiffeId,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<SignedLeaf, Error> {
        self.check_trust_domain(id)?;
        if ttl.is_zero() {
            return Err(Error::Validity {
                reason: "the requested certificate lifetime is zero".to_owned(),
            });
        }
        let (not_before, not_after) = self.window(now, ttl)?;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(csr.public_key_der())
            .map_err(|source| Error::CsrKey { source })?;
        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.as_ref());
        let params = leaf_params(id, serial, not_before, not_after)?;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|source| Error::Sign {
                subject: id.to_string(),
                source,
            })?;
        let mut chain = vec![cert.der().to_vec()];
        chain.extend(self.chain_der());
        Ok(SignedLeaf {
            chain,
            not_after: whole_seconds(not_after),
            serial: serial_hex,
        })
    }

    /// The certificates a peer needs between a leaf and a root: this CA's cert then its intermediates,
    /// excluding a self-signed root. DER.
    ///
    /// Empty for a self-signed root CA (such as one from [`Authority::generate`]): peers
    /// hold the root in their trust bundle, so there is nothing to send.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        let own = (!self.is_root).then(|| self.cert_der.clone());
        own.into_iter()
            .chain(self.intermediates.iter().cloned())
            .collect()
    }

    /// The root this CA chains to (itself for a self-signed root; the last chain cert if it is a
    /// self-signed root; else None when the operator supplied no root). DER.
    pub fn root_der(&self) -> Option<Vec<u8>> {
        self.root.clone()
    }

    /// This CA's own certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM: the trust bundle for this CA's workloads.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PEM. Keep it secret.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Issues a leaf for `id`, valid from one minute ago (clock skew) for `validity`.
    ///
    /// The end is capped at the CA's own expiry, since a leaf cannot outlive its issuer
    /// in verification anyway.
    pub fn issue(&self, id: &SpiffeId, validity: Duration) -> Result<Issued, Error> {
        let (not_before, not_after) = window_from_now(validity)?;
        self.issue_with_validity(id, not_before, not_after.min(self.not_after))
    }

    /// Issues a leaf for `id` with an explicit validity window (tests use it to mint
    /// expired certificates).
    pub fn issue_with_validity(
        &self,
        id: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued, Error> {
        self.check_trust_domain(id)?;
        if not_after <= not_before {
            return Err(Error::Validity {
                reason: format!(
                    "not_after {not_after:?} is not later than not_before {not_before:?}"
                ),
            });
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| Error::KeyGeneration { source })?;
        let params = leaf_params(id, random_serial()?, not_before, not_after)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Sign {
                subject: id.to_string(),
                source,
            })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A short id of an X.509 name (hex of the first 8 bytes of the SHA-256 of its DER):
/// a CA's subject id equals the issuer id of every certificate it signs, so a proxy can
/// tell which CA issued its certificate without keeping anything else.
fn name_id(name_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name_der);
    hex::encode(&digest.as_ref()[..8])
}

/// The id ([`Authority::signer_id`]) of the CA that issued the certificate `cert_der`.
pub fn issuer_id(cert_der: &[u8]) -> Result<String, Error> {
    let (_, x509) =
        X509Certificate::from_der(cert_der).map_err(|source| Error::CertParse { source })?;
    Ok(name_id(x509.issuer().as_raw()))
}

impl Authority {
    /// This CA's id: of its subject name, which is the issuer name of what it signs.
    pub fn signer_id(&self) -> String {
        X509Certificate::from_der(&self.cert_der)
            .map(|(_, x509)| name_id(x509.subject().as_raw()))
            .unwrap_or_default()
    }

    /// Issues a serving certificate for one of Weft's own servers (the control plane):
    /// `id` as the URI SAN Weft clients verify, plus `hosts` (DNS names or IP
    /// addresses) as DNS/IP SANs so generic TLS clients can verify it by host name.
    /// Valid from five minutes before `now` (clock skew) for `validity`, capped at the
    /// CA's expiry. The key is generated here and returned with the chain.
    pub fn issue_server(
        &self,
        id: &SpiffeId,
        hosts: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> Result<ServerLeaf, Error> {
        self.check_trust_domain(id)?;
        let (not_before, not_after) = self.window(now, validity)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| Error::KeyGeneration { source })?;
        let mut params = leaf_params(id, random_serial()?, not_before, not_after)?;
        for host in hosts {
            let san =
                match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(host.as_str().try_into().map_err(
                        |source: rcgen::Error| Error::Sign {
                            subject: format!("{id} (host name {host:?})"),
                            source,
                        },
                    )?),
                };
            params.subject_alt_names.push(san);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Sign {
                subject: id.to_string(),
                source,
            })?;
        let mut chain = vec![cert.der().to_vec()];
        chain.extend(self.chain_der());
        Ok(ServerLeaf {
            chain,
            key_der: key.serialize_der(),
            not_after: whole_seconds(not_after),
        })
    }

    /// The validity of a leaf signed at `now` for `ttl`: from [`CSR_BACKDATE`] before
    /// `now` (clock skew) to `now + ttl`, cut at this CA's own expiry; an expired CA
    /// signs nothing.
    fn window(&self, now: SystemTime, ttl: Duration) -> Result<(SystemTime, SystemTime), Error> {
        if now >= self.not_after {
            return Err(Error::CaExpired {
                not_after: self.not_after,
            });
        }
        let not_before = now.checked_sub(CSR_BACKDATE).unwrap_or(now);
        let not_after = now
            .checked_add(ttl)
            .map_or(self.not_after, |end| end.min(self.not_after));
        Ok((not_before, not_after))
    }

    fn check_trust_domain(&self, id: &SpiffeId) -> Result<(), Error> {
        if id.trust_domain() == self.trust_domain {
            Ok(())
        } else {
            Err(Error::ForeignTrustDomain {
                id: id.clone(),
                trust_domain: self.trust_domain.clone(),
            })
        }
    }
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("trust_domain", &self.trust_domain)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A CA subject unique to this CA. Verifiers look issuers up by name, so two meshes'
/// CAs with the same name would make a foreign certificate fail as "bad signature"
/// instead of the clearer "unknown issuer".
fn ca_name(trust_domain: &str, serial: &SerialNumber) -> DistinguishedName {
    // The first byte is fixed by `random_serial`; the next four are random.
    let id = serial
        .as_ref()
        .get(1..5)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map_or(0, u32::from_be_bytes);
    let mut name = DistinguishedName::new();
    // X.520 caps organizationName at 64 characters; the URI SAN carries it in full.
    if trust_domain.len() <= 64 {
        name.push(DnType::OrganizationName, trust_domain);
    }
    name.push(DnType::CommonName, format!("Weft CA {id:08x}"));
    name
}

/// The X.509-SVID leaf profile: empty subject, one URI SAN, cA=false, digitalSignature,
/// EKU serverAuth + clientAuth.
fn leaf_params(
    id: &SpiffeId,
    serial: SerialNumber,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    // SPIFFE identifies by the URI SAN alone; an empty subject makes rcgen mark the
    // SAN critical, as RFC 5280 requires.
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = vec![uri_san(&id.to_string())?];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial);
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    Ok(params)
}

fn uri_san(uri: &str) -> Result<SanType, Error> {
    // SPIFFE IDs are ASCII by construction, so this cannot fail for validated input.
    uri.try_into()
        .map(SanType::URI)
        .map_err(|e: rcgen::Error| Error::Sign {
            subject: uri.to_owned(),
            source: e,
        })
}

fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    crate::crypto_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    // Positive and exactly 16 bytes long once DER-encoded.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// `time` without its sub-second part, as X.509 stores it.
fn whole_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => SystemTime::UNIX_EPOCH + Duration::from_secs(after.as_secs()),
        // Towards the epoch, as `to_offset` writes it.
        Err(before) => SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(before.duration().as_secs()))
            .unwrap_or(time),
    }
}

fn window_from_now(validity: Duration) -> Result<(SystemTime, SystemTime), Error> {
    if validity.is_zero() {
        return Err(Error::Validity {
            reason: "validity is zero".to_owned(),
        });
    }
    let now = SystemTime::now();
    let not_after = now.checked_add(validity).ok_or_else(|| Error::Validity {
        reason: format!("validity {validity:?} reaches past the representable time range"),
    })?;
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    Ok((not_before, not_after))
}

fn to_offset(time: SystemTime) -> Result<OffsetDateTime, Error> {
    let seconds = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => i64::try_from(before.duration().as_secs()).ok().map(|s| -s),
    };
    seconds
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| Error::Validity {
            reason: format!("{time:?} cannot be written into a certificate"),
        })
}
