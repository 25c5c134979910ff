//! `opshub inventory import`: a JSON array of inventory items becomes a
//! completed inventory sync of one scope, so drift runs on real data. A
//! malformed file is refused whole, naming the line or the item and field.

use crate::domain::{Tenant, Timestamp};
use crate::server::store::{InventorySync, NewInventoryItem, NewInventorySync, Store, StoreError};
use serde::Deserialize;
use std::io::Read;
use std::path::Path;

const MAX_FIELD: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error(
        "the file is larger than {max_bytes} bytes, the most an import takes \
         (setting `import_max_bytes`, OPSHUB_IMPORT_MAX_BYTES)"
    )]
    TooLarge { max_bytes: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One item as the file spells it; unknown fields are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileItem {
    subject_type: String,
    external_id: String,
    display_name: String,
    #[serde(default)]
    payload: serde_json::Value,
}

/// Reads an import file of at most `max_bytes`, refusing a larger one
/// before reading it whole: its size is checked first, and the read stops
/// one byte past the limit, so a file that grows meanwhile (or a pipe or
/// device, whose size is unknown) cannot slip past.
pub fn read_file(path: &Path, max_bytes: u64) -> Result<String, ImportError> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > max_bytes {
        return Err(ImportError::TooLarge { max_bytes });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ImportError::TooLarge { max_bytes });
    }
    String::from_utf8(bytes).map_err(|e| {
        ImportError::Invalid(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Parses and checks a whole file before anything is written.
pub fn parse_items(text: &str) -> Result<Vec<NewInventoryItem>, ImportError> {
    let items: Vec<FileItem> = serde_json::from_str(text).map_err(|e| {
        ImportError::Invalid(format!(
            "line {}, column {}: {} (expected a JSON array of items with subject_type, external_id, display_name and payload)",
            e.line(),
            e.column(),
            e
        ))
    })?;
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let at = |field: &str, problem: &str| {
                ImportError::Invalid(format!("item {index}, field `{field}`: {problem}"))
            };
            for (field, value) in [
                ("subject_type", &item.subject_type),
                ("external_id", &item.external_id),
            ] {
                if value.trim().is_empty() || value.len() > MAX_FIELD {
                    return Err(at(field, &format!("must have 1 to {MAX_FIELD} characters")));
                }
            }
            if item.display_name.len() > MAX_FIELD {
                return Err(at(
                    "display_name",
                    &format!("must have at most {MAX_FIELD} characters"),
                ));
            }
            if !(item.payload.is_object() || item.payload.is_null()) {
                return Err(at("payload", "must be a JSON object"));
            }
            if !seen.insert((item.subject_type.clone(), item.external_id.clone())) {
                return Err(at("external_id", "appears twice for the same subject_type"));
            }
            Ok(NewInventoryItem {
                subject_type: item.subject_type,
                external_id: item.external_id,
                display_name: item.display_name,
                payload: if item.payload.is_null() {
                    serde_json::json!({})
                } else {
                    item.payload
                },
            })
        })
        .collect()
}

/// Records a completed sync of `scope` in `tenant` with the file's items.
pub async fn import(
    store: &dyn Store,
    tenant: &Tenant,
    scope: &str,
    text: &str,
) -> Result<InventorySync, ImportError> {
    let scope = scope.trim();
    if scope.is_empty() || scope.len() > MAX_FIELD {
        return Err(ImportError::Invalid(format!(
            "the scope needs 1 to {MAX_FIELD} characters"
        )));
    }
    let items = parse_items(text)?;
    Ok(store
        .record_inventory_sync(NewInventorySync {
            tenant_id: tenant.id,
            selection_hash: scope.to_string(),
            finished_at: Timestamp::now(),
            items,
        })
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_over_the_limit_are_refused_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.json");
        let text = r#"[{"subject_type":"device","external_id":"d1","display_name":"D1"}]"#;
        std::fs::write(&path, text).unwrap();
        let limit = text.len() as u64;
        assert_eq!(read_file(&path, limit).unwrap(), text);
        let refused = read_file(&path, limit - 1).unwrap_err();
        assert!(matches!(refused, ImportError::TooLarge { max_bytes } if max_bytes == limit - 1));
        assert!(
            refused.to_string().contains("import_max_bytes"),
            "{refused}"
        );
        // A device says it has 0 bytes and never ends: the limited read
        // stops it.
        let endless = read_file(Path::new("/dev/zero"), 4_096).unwrap_err();
        assert!(matches!(endless, ImportError::TooLarge { .. }), "{endless}");
        // Not text, not there.
        std::fs::write(&path, b"[\xff]").unwrap();
        assert!(read_file(&path, limit)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        let missing = read_file(&dir.path().join("missing.json"), limit).unwrap_err();
        assert!(
            missing.to_string().starts_with("cannot read the file"),
            "{missing}"
        );
    }

    fn message(text: &str) -> String {
        parse_items(text).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_valid_file() {
        let items = parse_items(
            r#"[{"subject_type":"device","external_id":"d1","display_name":"D1","payload":{"os":"11"}},
                {"subject_type":"device","external_id":"d2","display_name":"D2"}]"#,
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].payload, serde_json::json!({}));
    }

    #[test]
    fn names_the_line_or_the_item_and_field_at_fault() {
        assert!(message("[\n{\"subject_type\": \"device\",\n oops}]").starts_with("line 3"));
        assert!(message(r#"{"not": "an array"}"#).starts_with("line 1"));
        let missing = message(r#"[{"subject_type":"device","display_name":"x"}]"#);
        assert!(missing.contains("external_id"), "{missing}");
        assert_eq!(
            message(r#"[{"subject_type":"device","external_id":" ","display_name":"x"}]"#),
            "item 0, field `external_id`: must have 1 to 200 characters"
        );
        assert!(message(
            r#"[{"subject_type":"d","external_id":"1","display_name":"x","payload":[1]}]"#
        )
        .contains("item 0, field `payload`"));
        let twice = r#"[{"subject_type":"d","external_id":"1","display_name":"x"},
                        {"subject_type":"d","external_id":"1","display_name":"y"}]"#;
        assert!(message(twice).starts_with("item 1, field `external_id`"));
        assert!(message(
            r#"[{"subject_type":"d","external_id":"1","display_name":"x","secret":1}]"#
        )
        .contains("unknown field"));
    }
}
