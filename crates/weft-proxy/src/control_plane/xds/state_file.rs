//! The last known good configuration on disk: a `weft.proxy.v1.LastKnownGood`
//! protobuf in the proxy's state directory, written atomically, read at boot.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use prost::Message;
use tracing::{debug, warn};
use weft_api::pb::v1 as pb;

use super::resources::{Resource, ResourceSet};

/// File name of the last known good configuration inside the state directory.
pub const FILE_NAME: &str = "xds-last-known-good.pb";

/// Path of the state file in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Reads the state file; `None` if it is missing, unreadable or corrupt (the last two
/// are logged with the path).
pub fn load(state_dir: &Path) -> Option<(String, ResourceSet)> {
    let path = path(state_dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            debug!(path = %path.display(), "no last known good xDS config");
            return None;
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read the last known good xDS config; ignoring it");
            return None;
        }
    };
    match pb::LastKnownGood::decode(bytes.as_slice()) {
        Ok(stored) => {
            let mut set = ResourceSet::new();
            for r in stored.resources {
                let body = prost_types::Any {
                    type_url: r.type_url.clone(),
                    value: r.value,
                };
                set.insert(
                    r.type_url,
                    Resource {
                        name: r.name,
                        version: r.version,
                        body,
                    },
                );
            }
            Some((stored.control_plane, set))
        }
        Err(error) => {
            warn!(
                path = %path.display(),
                %error,
                "the last known good xDS config is corrupt (not a weft.proxy.v1.LastKnownGood); ignoring it"
            );
            None
        }
    }
}

/// Writes `resources` atomically: a temporary file (mode 0600) in the same directory,
/// fsynced, renamed over the state file, then the directory fsynced. A crash leaves
/// either the old file or the new one, never a torn one.
pub fn store(state_dir: &Path, control_plane: &str, resources: &ResourceSet) -> io::Result<()> {
    let stored = pb::LastKnownGood {
        control_plane: control_plane.to_owned(),
        resources: resources
            .iter()
            .map(|(type_url, r)| pb::StoredResource {
                type_url: type_url.to_owned(),
                name: r.name.clone(),
                version: r.version.clone(),
                value: r.body.value.clone(),
            })
            .collect(),
    };
    crate::control_plane::create_private_dir(state_dir)?;
    let path = path(state_dir);
    let tmp = state_dir.join(format!(".{FILE_NAME}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&stored.encode_to_vec())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, &path)?;
    fs::File::open(state_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn set() -> ResourceSet {
        let mut set = ResourceSet::new();
        set.insert(
            "t/a",
            Resource {
                name: "x".to_owned(),
                version: "7".to_owned(),
                body: prost_types::Any {
                    type_url: "t/a".to_owned(),
                    value: vec![1, 2],
                },
            },
        );
        set
    }

    #[test]
    fn stored_config_loads_back_identically_with_owner_only_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        store(dir.path(), "http://cp:5678", &set()).expect("store");
        let (control_plane, loaded) = load(dir.path()).expect("load");
        assert_eq!(control_plane, "http://cp:5678");
        assert_eq!(loaded, set());
        let mode = fs::metadata(path(dir.path()))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join(format!(".{FILE_NAME}.tmp")).exists());
    }

    #[test]
    fn a_missing_state_directory_is_created_owner_only_with_its_parents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("state");
        let state = base.join("web.default");
        store(&state, "http://cp:5678", &set()).expect("store");
        for d in [&base, &state] {
            let mode = fs::metadata(d).expect("created").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", d.display());
        }
    }

    #[test]
    fn missing_state_file_loads_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).is_none());
    }

    #[test]
    fn corrupt_state_file_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(path(dir.path()), b"\xff\xff\xff not protobuf").expect("write");
        assert!(load(dir.path()).is_none());
    }
}
