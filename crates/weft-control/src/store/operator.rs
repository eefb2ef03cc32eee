//! Operator tokens as the store keeps them (ADR 0025): a name, a role, the token's
//! SHA-256 and its times, never the token itself. What a role allows, and the tokens
//! themselves, are [`api::auth`](crate::api::auth)'s business; the store only keeps the
//! rows, and one rule: the last usable admin token cannot be revoked
//! ([`Revocation::LastAdmin`]).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::StoreError;

/// What an operator token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// Reads only: `GET` and `HEAD`, watches included.
    ReadOnly,
}

/// One operator token. Times have whole seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorToken {
    /// 32 lower-case hex digits, unique.
    pub id: String,
    /// An RFC 1123 label; unique among unrevoked tokens.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token, 64 lower-case hex digits; unique.
    pub hash: String,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
}

/// What [`Store::revoke_operator_token`](super::Store::revoke_operator_token) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The unrevoked token of that name is now revoked; as stored.
    Revoked(OperatorToken),
    /// Every token of that name was revoked already; the latest one.
    AlreadyRevoked(OperatorToken),
    /// No token has that name.
    Unknown,
    /// Refused: the token is the last unrevoked, unexpired admin token, and revoking
    /// it would leave nobody able to issue tokens through the API.
    LastAdmin(OperatorToken),
}

/// A row as both backends select it: times in seconds since the epoch.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RawOperatorToken {
    id: String,
    name: String,
    role: String,
    hash: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

// === impl Role ===

impl Role {
    /// Every role.
    pub const ALL: [Role; 2] = [Role::Admin, Role::ReadOnly];

    /// The name on the wire and in the store: `admin`, `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

impl FromStr for Role {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or(())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl OperatorToken ===

impl OperatorToken {
    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether it authenticates at `now`: neither revoked nor expired.
    pub fn is_usable(&self, now: SystemTime) -> bool {
        self.revoked_at.is_none() && !self.is_expired(now)
    }
}

// === impl RawOperatorToken ===

impl RawOperatorToken {
    pub(super) fn decode(self) -> Result<OperatorToken, StoreError> {
        let role = self.role.parse().map_err(|()| StoreError::Corrupt {
            key: format!("operator token {:?}", self.name),
            message: format!("unknown role {:?}", self.role),
        })?;
        Ok(OperatorToken {
            id: self.id,
            name: self.name,
            role,
            hash: self.hash,
            created_at: from_seconds(self.created_at),
            expires_at: self.expires_at.map(from_seconds),
            revoked_at: self.revoked_at.map(from_seconds),
        })
    }
}

/// Seconds since the epoch, rounded down; times before the epoch are 0.
pub(super) fn to_seconds(time: SystemTime) -> i64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

fn from_seconds(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!("Admin".parse::<Role>(), Err(()));
        assert_eq!("readonly".parse::<Role>(), Err(()));
    }
}
