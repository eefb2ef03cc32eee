//! The workload token: the file the operator (or `weft run`) provides, presented to
//! the control plane as `authorization: Bearer <token>` on the xDS stream and on
//! certificate requests. Read afresh on every use, so a rotated file is picked up.

use std::path::Path;

use weft_api::pb::v1 as pb;

/// The `authorization` metadata value for the workload token in `path`
/// (`Bearer <token>`), read afresh so a rotated token file is picked up.
pub fn authorization(
    path: &Path,
) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>, String> {
    let token = read_token(path)?;
    format!("{}{token}", pb::BEARER_PREFIX)
        .parse()
        .map_err(|_| "contains characters not allowed in a header".to_owned())
}

/// The workload token in `path`, trimmed; the error says what was wrong with the file.
pub fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.is_empty() {
        return Err("is empty".into());
    }
    Ok(token.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_becomes_a_bearer_header_and_bad_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc.def.ghi \n").unwrap();
        assert_eq!(authorization(&path).unwrap(), "Bearer abc.def.ghi");
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(authorization(&path).unwrap_err(), "is empty");
        std::fs::write(&path, "a\u{7f}b").unwrap();
        assert!(authorization(&path).unwrap_err().contains("not allowed"));
        let missing = authorization(&dir.path().join("nope")).unwrap_err();
        assert!(missing.contains("No such file"), "{missing}");
    }
}
