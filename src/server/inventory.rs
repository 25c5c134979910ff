//! `opshub inventory import`: a JSON array of inventory items becomes a
//! completed inventory sync of one scope, so drift runs on real data. A
//! malformed file is refused whole, naming the line or the item and field.

use crate::domain::{is_clean_identifier, sanitize_reason, Tenant, Timestamp};
use crate::server::operations::SCOPE_KEY_NOT_CLEAN;
use crate::server::store::{InventorySync, NewInventoryItem, NewInventorySync, Store, StoreError};
use serde::Deserialize;
use std::io::Read;
use std::path::Path;

const MAX_FIELD: usize = 200;
const IDENTIFIER_NOT_CLEAN: &str = "is an identifier every viewer reads: it may not hold a credential, token, e-mail address, control character or stray whitespace";

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
/// device, whose size is unknown) cannot slip past. What the bytes say is
/// [`decode`]'s to judge.
pub fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ImportError> {
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
    Ok(bytes)
}

/// The file's text: UTF-8 (a leading byte order mark is allowed and
/// dropped). Anything else is refused with the offset of the first bad
/// byte; lone surrogates (as CESU-8 writes them) are bad bytes.
pub fn decode(bytes: &[u8]) -> Result<&str, ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(ImportError::Invalid(
            "the file is UTF-16; save it as UTF-8".into(),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        ImportError::Invalid(format!(
            "the file is not UTF-8: invalid byte at offset {}",
            e.valid_up_to()
        ))
    })
}

/// Parses and checks a whole file before anything is written.
pub fn parse_items(text: &str) -> Result<Vec<NewInventoryItem>, ImportError> {
    let items: Vec<FileItem> = serde_json::from_str(text).map_err(|e| {
        // serde quotes the input it stumbled on: echo it sanitised.
        ImportError::Invalid(format!(
            "line {}, column {}: {} (expected a JSON array of items with subject_type, external_id, display_name and payload)",
            e.line(),
            e.column(),
            sanitize_reason(&e.to_string())
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
                if value.trim().is_empty() || value.chars().count() > MAX_FIELD {
                    return Err(at(field, &format!("must have 1 to {MAX_FIELD} characters")));
                }
                // Identifiers are shown to every viewer as they are.
                if !is_clean_identifier(value) {
                    return Err(at(field, IDENTIFIER_NOT_CLEAN));
                }
            }
            if item.display_name.chars().count() > MAX_FIELD {
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

/// Records a completed sync of `scope` in `tenant` with the file's items
/// (its bytes, see [`decode`]).
pub async fn import(
    store: &dyn Store,
    tenant: &Tenant,
    scope: &str,
    file: impl AsRef<[u8]>,
) -> Result<InventorySync, ImportError> {
    let scope = scope.trim();
    if scope.is_empty() || scope.chars().count() > MAX_FIELD {
        return Err(ImportError::Invalid(format!(
            "the scope needs 1 to {MAX_FIELD} characters"
        )));
    }
    if !is_clean_identifier(scope) {
        return Err(ImportError::Invalid(SCOPE_KEY_NOT_CLEAN.into()));
    }
    let items = parse_items(decode(file.as_ref())?)?;
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
    use crate::domain::arbitrary::{self, file_bytes, hostile_text};
    use proptest::prelude::*;

    #[test]
    fn reads_utf8_with_or_without_a_byte_order_mark_and_refuses_the_rest() {
        let file = br#"[{"subject_type":"device","external_id":"d1","display_name":"Ger\u00e4t"}]"#;
        assert_eq!(parse_items(decode(file).unwrap()).unwrap().len(), 1);
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), file].concat();
        assert_eq!(parse_items(decode(&with_bom).unwrap()).unwrap().len(), 1);
        for (bytes, expected) in [
            (
                b"[\xED\xA0\x80]".as_slice(),
                "not UTF-8: invalid byte at offset 1",
            ),
            (b"\xFF\xFE[\x00]\x00", "UTF-16"),
            (b"[\xC0\x80]", "not UTF-8"),
        ] {
            let message = decode(bytes).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn refuses_identifiers_that_carry_secrets() {
        let refused = message(
            r#"[{"subject_type":"device","external_id":"token=abc123","display_name":"x"}]"#,
        );
        assert!(
            refused.starts_with("item 0, field `external_id`: is an identifier"),
            "{refused}"
        );
        assert!(!refused.contains("abc123"));
        let unknown = message(
            r#"[{"subject_type":"d","external_id":"1","display_name":"x","password=hunter2":1}]"#,
        );
        assert!(!unknown.contains("hunter2"), "{unknown}");
    }

    proptest! {
        #![proptest_config(arbitrary::config())]

        #[test]
        fn any_bytes_parse_or_explain(bytes in file_bytes()) {
            match decode(&bytes).and_then(parse_items) {
                Ok(items) => {
                    for item in items {
                        prop_assert!(is_clean_identifier(&item.subject_type));
                        prop_assert!(is_clean_identifier(&item.external_id));
                        prop_assert!(item.payload.is_object());
                    }
                }
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
        }

        #[test]
        fn written_items_read_back_or_are_refused_by_name(
            items in prop::collection::vec((hostile_text(), hostile_text(), hostile_text()), 0..6),
        ) {
            let file: Vec<serde_json::Value> = items
                .iter()
                .enumerate()
                .map(|(i, (kind, id, name))| serde_json::json!({
                    "subject_type": kind, "external_id": format!("{id}{i}"), "display_name": name,
                }))
                .collect();
            let bytes = serde_json::to_vec(&file).unwrap();
            match parse_items(decode(&bytes).unwrap()) {
                Ok(parsed) => {
                    prop_assert_eq!(parsed.len(), items.len());
                    for (read, (_, _, name)) in parsed.iter().zip(&items) {
                        prop_assert_eq!(&read.display_name, name);
                    }
                }
                Err(error) => prop_assert!(error.to_string().starts_with("item "), "{}", error),
            }
        }
    }

    #[test]
    fn files_over_the_limit_are_refused_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.json");
        let text = r#"[{"subject_type":"device","external_id":"d1","display_name":"D1"}]"#;
        std::fs::write(&path, text).unwrap();
        let limit = text.len() as u64;
        assert_eq!(read_file(&path, limit).unwrap(), text.as_bytes());
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
        // Not there.
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
