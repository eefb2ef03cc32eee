//! What both backends share: the row an object is stored as ([`Record`]), its raw
//! database form, and the pure decisions a write makes (preconditions, "did anything
//! change", the next generation). No I/O except reading randomness for uids.
//!
//! Backends read the current row inside their write transaction, ask a `plan_*`
//! function what to do, then take a revision and write.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use weft_api::resource::{Key, Kind, Object, ObjectMeta};

use super::{Change, ChangeOp, Precondition, StoreError};

/// An object as stored, bookkeeping included.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Record {
    pub(super) key: Key,
    pub(super) uid: String,
    pub(super) api_version: String,
    pub(super) generation: i64,
    pub(super) resource_version: u64,
    pub(super) created_at: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) spec: Value,
    pub(super) status: Option<Value>,
}

/// A row of `objects` as the database returns it (JSON columns as text).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RawRecord {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    api_version: String,
    generation: i64,
    resource_version: i64,
    created_at: String,
    labels: String,
    annotations: String,
    spec: String,
    status: Option<String>,
}

/// A row of `changes` as the database returns it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RawChange {
    revision: i64,
    op: String,
    object: String,
}

/// A [`Record`] in the form the database takes it (JSON columns as text).
pub(super) struct Encoded<'a> {
    pub(super) kind: &'static str,
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
    pub(super) uid: &'a str,
    pub(super) api_version: &'a str,
    pub(super) generation: i64,
    pub(super) resource_version: i64,
    pub(super) created_at: &'a str,
    pub(super) labels: String,
    pub(super) annotations: String,
    pub(super) spec: String,
    pub(super) status: Option<String>,
}

/// What a `put` does.
#[derive(Debug)]
pub(super) enum PutPlan {
    /// Nothing differs; return the stored object.
    Unchanged(Record),
    /// Insert this new record.
    Create(Record),
    /// Overwrite with this record.
    Update(Record),
}

// === impl Record ===

impl Record {
    /// The object as the API returns it.
    pub(super) fn to_object(&self) -> Object {
        Object {
            api_version: self.api_version.clone(),
            kind: self.key.kind.as_str().to_owned(),
            metadata: ObjectMeta {
                name: self.key.name.clone(),
                namespace: (!self.key.namespace.is_empty()).then(|| self.key.namespace.clone()),
                labels: self.labels.clone(),
                annotations: self.annotations.clone(),
                resource_version: Some(self.resource_version.to_string()),
                uid: Some(self.uid.clone()),
                generation: Some(self.generation),
                creation_timestamp: Some(self.created_at.clone()),
            },
            spec: self.spec.clone(),
            status: self.status.clone(),
        }
    }

    /// The columns to write.
    pub(super) fn encode(&self) -> Encoded<'_> {
        Encoded {
            kind: self.key.kind.as_str(),
            namespace: &self.key.namespace,
            name: &self.key.name,
            uid: &self.uid,
            api_version: &self.api_version,
            generation: self.generation,
            resource_version: to_i64(self.resource_version),
            created_at: &self.created_at,
            labels: map_json(&self.labels),
            annotations: map_json(&self.annotations),
            spec: self.spec.to_string(),
            status: self.status.as_ref().map(Value::to_string),
        }
    }

    /// The change-log document for a write of this record.
    pub(super) fn change_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(&self.to_object()).map_err(|e| StoreError::Corrupt {
            key: self.key.to_string(),
            message: format!("cannot encode the change: {e}"),
        })
    }
}

// === impl RawRecord ===

impl RawRecord {
    /// Parses the row; `Corrupt` names the object and the column that failed.
    pub(super) fn decode(self) -> Result<Record, StoreError> {
        let where_ = format!("{}/{}/{}", self.kind, self.namespace, self.name);
        let corrupt = |message: String| StoreError::Corrupt {
            key: where_.clone(),
            message,
        };
        let kind: Kind = self.kind.parse().map_err(|e| corrupt(format!("{e}")))?;
        let resource_version = u64::try_from(self.resource_version).map_err(|_| {
            corrupt(format!(
                "negative resource_version {}",
                self.resource_version
            ))
        })?;
        let json = |column: &str, text: &str| -> Result<Value, StoreError> {
            serde_json::from_str(text).map_err(|e| corrupt(format!("column {column}: {e}")))
        };
        let map = |column: &str, text: &str| -> Result<BTreeMap<String, String>, StoreError> {
            serde_json::from_str(text).map_err(|e| corrupt(format!("column {column}: {e}")))
        };
        Ok(Record {
            labels: map("labels", &self.labels)?,
            annotations: map("annotations", &self.annotations)?,
            spec: json("spec", &self.spec)?,
            status: match &self.status {
                Some(text) => Some(json("status", text)?),
                None => None,
            },
            key: Key {
                kind,
                namespace: self.namespace,
                name: self.name,
            },
            uid: self.uid,
            api_version: self.api_version,
            generation: self.generation,
            resource_version,
            created_at: self.created_at,
        })
    }
}

// === impl RawChange ===

impl RawChange {
    /// Parses the row.
    pub(super) fn decode(self) -> Result<Change, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            key: format!("change {}", self.revision),
            message,
        };
        let revision = u64::try_from(self.revision)
            .map_err(|_| corrupt(format!("negative revision {}", self.revision)))?;
        let op = match self.op.as_str() {
            "put" => ChangeOp::Put,
            "delete" => ChangeOp::Delete,
            other => return Err(corrupt(format!("unknown op {other:?}"))),
        };
        let object = serde_json::from_str(&self.object).map_err(|e| corrupt(format!("{e}")))?;
        Ok(Change {
            revision,
            op,
            object,
        })
    }
}

// === plans ===

/// The store key of an object being written. An unknown kind is a caller bug (the API
/// validates kinds first), reported as `Corrupt` so it surfaces as an internal error.
pub(super) fn key_of(object: &Object) -> Result<Key, StoreError> {
    object.key().map_err(|e| StoreError::Corrupt {
        key: format!("{}/{}", object.kind, object.metadata.name),
        message: format!("not storable: {e}"),
    })
}

/// Checks `precondition` against what is stored.
pub(super) fn check(
    key: &Key,
    current: Option<&Record>,
    precondition: Precondition,
) -> Result<(), StoreError> {
    match (precondition, current) {
        (Precondition::None, _) | (Precondition::Absent, None) => Ok(()),
        (Precondition::ResourceVersion(_), None) => Err(StoreError::NotFound(key.clone())),
        (Precondition::ResourceVersion(wanted), Some(current)) => {
            if current.resource_version == wanted {
                Ok(())
            } else {
                Err(StoreError::Conflict {
                    key: key.clone(),
                    message: format!(
                        "resourceVersion is {}, not {wanted}; get the object again and retry",
                        current.resource_version
                    ),
                })
            }
        }
        (Precondition::Absent, Some(current)) => Err(StoreError::Conflict {
            key: key.clone(),
            message: format!(
                "already exists (resourceVersion {})",
                current.resource_version
            ),
        }),
    }
}

/// Decides what `put(object, precondition)` does given the stored record. The
/// returned record's `resource_version` is the old one; the caller sets the new one.
pub(super) fn plan_put(
    key: Key,
    current: Option<Record>,
    object: Object,
    precondition: Precondition,
) -> Result<PutPlan, StoreError> {
    check(&key, current.as_ref(), precondition)?;
    let Object {
        api_version,
        metadata,
        spec,
        ..
    } = object;
    let Some(current) = current else {
        return Ok(PutPlan::Create(Record {
            key,
            uid: new_uid()?,
            api_version,
            generation: 1,
            resource_version: 0,
            created_at: now_rfc3339(),
            labels: metadata.labels,
            annotations: metadata.annotations,
            spec,
            // Status is the control plane's to write (`put_status`), never apply's.
            status: None,
        }));
    };
    let configured = current.labels != metadata.labels
        || current.annotations != metadata.annotations
        || current.spec != spec;
    if !configured && current.api_version == api_version {
        return Ok(PutPlan::Unchanged(current));
    }
    let generation = if configured {
        current.generation + 1
    } else {
        current.generation
    };
    Ok(PutPlan::Update(Record {
        api_version,
        generation,
        labels: metadata.labels,
        annotations: metadata.annotations,
        spec,
        ..current
    }))
}

/// Decides what `put_status` does: `None` when the status is already equal. A JSON
/// `null` status clears it.
pub(super) fn plan_status(
    key: &Key,
    current: Option<Record>,
    status: Value,
    precondition: Precondition,
) -> Result<Option<Record>, StoreError> {
    // A status needs an object, so "must be absent" can never go ahead.
    check(key, current.as_ref(), precondition)?;
    let Some(current) = current else {
        return Err(StoreError::NotFound(key.clone()));
    };
    let status = (!status.is_null()).then_some(status);
    if current.status == status {
        return Ok(None);
    }
    Ok(Some(Record { status, ..current }))
}

/// Decides whether `delete` goes ahead; returns the record to delete.
pub(super) fn plan_delete(
    key: &Key,
    current: Option<Record>,
    precondition: Precondition,
) -> Result<Record, StoreError> {
    check(key, current.as_ref(), precondition)?;
    current.ok_or_else(|| StoreError::NotFound(key.clone()))
}

// === values ===

/// The `op` column's value.
pub(super) fn op_name(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Put => "put",
        ChangeOp::Delete => "delete",
    }
}

/// A revision as the databases store it. Revisions start at 1 and grow by one per
/// write, so they never reach `i64::MAX`; saturate rather than wrap just in case.
pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A revision read back from the database.
pub(super) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        key: what.to_owned(),
        message: format!("negative value {value}"),
    })
}

fn map_json(map: &BTreeMap<String, String>) -> String {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
    .to_string()
}

/// A random (version 4) UUID, e.g. `1b4e28ba-2fa1-41d2-883f-0016d3cca427`.
fn new_uid() -> Result<String, StoreError> {
    let mut bytes = [0_u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| {
        StoreError::Database(sqlx::Error::Io(std::io::Error::other(
            "the system random generator failed",
        )))
    })?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}

/// Now, as RFC 3339 in UTC with whole seconds (`2024-05-01T12:00:00Z`).
fn now_rfc3339() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_rfc3339(seconds)
}

/// Formats seconds since the Unix epoch (civil-from-days, proleptic Gregorian).
fn format_rfc3339(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rem = seconds % 86_400;
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's algorithm, shifted so eras start on 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(rv: u64) -> Record {
        Record {
            key: Key {
                kind: Kind::Service,
                namespace: "default".into(),
                name: "web".into(),
            },
            uid: "u".into(),
            api_version: "weft.dev/v1alpha1".into(),
            generation: 3,
            resource_version: rv,
            created_at: "2024-01-01T00:00:00Z".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            spec: serde_json::json!({"ports": [80]}),
            status: Some(serde_json::json!({"ready": true})),
        }
    }

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn uids_are_version_4_uuids_and_differ() {
        let a = new_uid().expect("uid");
        let b = new_uid().expect("uid");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn stale_resource_version_conflict_names_the_current_one() {
        let current = record(12);
        let err = check(
            &current.key.clone(),
            Some(&current),
            Precondition::ResourceVersion(9),
        )
        .expect_err("conflict");
        assert!(
            err.to_string().contains("resourceVersion is 12, not 9"),
            "{err}"
        );
    }

    #[test]
    fn status_only_update_keeps_generation() {
        let current = record(5);
        let key = current.key.clone();
        let next = plan_status(
            &key,
            Some(current),
            serde_json::json!({"ready": false}),
            Precondition::None,
        )
        .expect("plan")
        .expect("changed");
        assert_eq!(next.generation, 3);
        assert_eq!(next.status, Some(serde_json::json!({"ready": false})));
    }

    #[test]
    fn api_version_only_change_is_configured_without_new_generation() {
        let current = record(5);
        let mut object = current.to_object();
        object.api_version = "weft.dev/v1beta1".into();
        let plan = plan_put(
            current.key.clone(),
            Some(current),
            object,
            Precondition::None,
        )
        .expect("plan");
        let PutPlan::Update(next) = plan else {
            panic!("expected an update, got {plan:?}")
        };
        assert_eq!(next.generation, 3);
    }

    #[test]
    fn raw_record_round_trips_through_encode_and_decode() {
        let original = record(7);
        let e = original.encode();
        let raw = RawRecord {
            kind: e.kind.into(),
            namespace: e.namespace.into(),
            name: e.name.into(),
            uid: e.uid.into(),
            api_version: e.api_version.into(),
            generation: e.generation,
            resource_version: e.resource_version,
            created_at: e.created_at.into(),
            labels: e.labels,
            annotations: e.annotations,
            spec: e.spec,
            status: e.status,
        };
        assert_eq!(raw.decode().expect("decode"), original);
    }
}
