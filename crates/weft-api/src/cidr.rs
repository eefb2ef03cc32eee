//! An IP prefix (`240.240.0.0/16`, `fd00:10::/112`), written as users write it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 prefix in canonical form (host bits zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a prefix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/`.
    #[error("{0:?} is not a prefix: write ADDRESS/LENGTH, e.g. 240.240.0.0/16")]
    Shape(String),
    /// The address part does not parse.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The length is not a number within the family's width.
    #[error("prefix length {length:?} is not within 0-{max}")]
    Length {
        /// The length as written.
        length: String,
        /// The family's width.
        max: u8,
    },
    /// Host bits are set (`10.0.0.1/8`).
    #[error("{given} has host bits set; did you mean {canonical}?")]
    HostBits {
        /// The prefix as written.
        given: String,
        /// The same prefix with its host bits cleared.
        canonical: Cidr,
    },
}

impl Cidr {
    /// `240.240.0.0/16`, where the control plane allocates service VIPs by default.
    pub fn default_vip_range() -> Self {
        Self {
            network: IpAddr::from([240, 240, 0, 0]),
            prefix: 16,
        }
    }

    /// The prefix's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Bits after the prefix (32 or 128 minus the length).
    pub fn host_bits(&self) -> u32 {
        u32::from(width(self.network)) - u32::from(self.prefix)
    }

    /// Whether `ip` is inside the prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                mask(u128::from(u32::from(a)), self.host_bits()) == u128::from(u32::from(n))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                mask(u128::from(a), self.host_bits()) == u128::from(n)
            }
            _ => false,
        }
    }

    /// The address `offset` places after the network address, if still inside.
    pub fn nth(&self, offset: u128) -> Option<IpAddr> {
        let bits = self.host_bits();
        if bits < 128 && offset >> bits != 0 {
            return None;
        }
        match self.network {
            IpAddr::V4(n) => {
                let v = u128::from(u32::from(n)) + offset;
                u32::try_from(v).ok().map(|v| IpAddr::from(v.to_be_bytes()))
            }
            IpAddr::V6(n) => u128::from(n)
                .checked_add(offset)
                .map(|v| IpAddr::from(v.to_be_bytes())),
        }
    }

    /// The offset of `ip` from the network address (`ip` must be inside).
    pub fn offset(&self, ip: IpAddr) -> Option<u128> {
        if !self.contains(ip) {
            return None;
        }
        Some(value(ip) - value(self.network))
    }
}

fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `v` with its low `host_bits` cleared.
fn mask(v: u128, host_bits: u32) -> u128 {
    if host_bits >= 128 {
        0
    } else {
        v >> host_bits << host_bits
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, length) = s
            .split_once('/')
            .ok_or_else(|| CidrError::Shape(s.into()))?;
        let network: IpAddr = addr.parse().map_err(|_| CidrError::Address(addr.into()))?;
        let max = width(network);
        let prefix = length
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| CidrError::Length {
                length: length.into(),
                max,
            })?;
        let host_bits = u32::from(max - prefix);
        let masked = mask(value(network), host_bits);
        let canonical = Self {
            network: match network {
                IpAddr::V4(_) => IpAddr::from(
                    u32::try_from(masked)
                        .map_err(|_| CidrError::Address(addr.into()))?
                        .to_be_bytes(),
                ),
                IpAddr::V6(_) => IpAddr::from(masked.to_be_bytes()),
            },
            prefix,
        };
        if masked != value(network) {
            return Err(CidrError::HostBits {
                given: s.into(),
                canonical,
            });
        }
        Ok(canonical)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Cidr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cidr".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An IPv4 or IPv6 prefix, ADDRESS/LENGTH (e.g. 240.240.0.0/16)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_families_and_walks_the_range() {
        let v4: Cidr = "240.240.0.0/16".parse().expect("v4");
        assert_eq!(v4.host_bits(), 16);
        assert_eq!(v4.nth(1), Some("240.240.0.1".parse().expect("ip")));
        assert_eq!(v4.nth(65535), Some("240.240.255.255".parse().expect("ip")));
        assert_eq!(v4.nth(65536), None, "past the end");
        assert!(v4.contains("240.240.3.4".parse().expect("ip")));
        assert!(!v4.contains("240.241.0.0".parse().expect("ip")));
        assert!(!v4.contains("::1".parse().expect("ip")), "other family");
        assert_eq!(v4.offset("240.240.1.2".parse().expect("ip")), Some(258));

        let v6: Cidr = "fd00:10::/112".parse().expect("v6");
        assert_eq!(v6.nth(0x1234), Some("fd00:10::1234".parse().expect("ip")));
        assert_eq!(v6.nth(0x1_0000), None);
        assert_eq!(v6.to_string(), "fd00:10::/112");
        let all: Cidr = "::/0".parse().expect("all");
        assert!(all.contains("2001:db8::1".parse().expect("ip")));
    }

    #[test]
    fn refuses_malformed_prefixes_naming_the_problem() {
        assert!(matches!(
            "10.0.0.0".parse::<Cidr>(),
            Err(CidrError::Shape(_))
        ));
        assert!(matches!(
            "10.0.0/8".parse::<Cidr>(),
            Err(CidrError::Address(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Length { max: 32, .. })
        ));
        let err = "10.1.0.0/8".parse::<Cidr>().expect_err("host bits");
        assert_eq!(
            err.to_string(),
            "10.1.0.0/8 has host bits set; did you mean 10.0.0.0/8?"
        );
    }
}
