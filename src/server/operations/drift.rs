//! `drift.generate`: compares two inventory snapshots of a scope subject by
//! subject. Every added, removed or changed subject becomes a finding whose
//! fingerprint is derived from the comparison and the change itself, so
//! generating again over the same syncs adds no duplicate and lists the
//! findings already there (the spec's Phase 1 link: scope key + baseline +
//! current).

use crate::domain::*;
use crate::server::store::*;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Payload fields that may appear in a finding's evidence, by name and
/// value. Any other changed field is only counted (`other_changed_fields`),
/// never named or copied: payloads can hold secrets and whole documents.
const EVIDENCE_FIELDS: [&str; 12] = [
    "os",
    "os_version",
    "version",
    "platform",
    "model",
    "manufacturer",
    "compliant",
    "state",
    "status",
    "enabled",
    "owner",
    "assignment",
];
const MAX_EVIDENCE_TEXT: usize = 120;

/// A run's item id for an inventory subject.
pub fn subject_key(item: &InventoryItem) -> String {
    key_of_subject(&item.subject_type, &item.external_id)
}

/// A run's item id for the subject `subject_type` / `external_id`.
pub fn key_of_subject(subject_type: &str, external_id: &str) -> String {
    format!("{subject_type}:{external_id}")
}

pub struct DriftExecution {
    tenant_id: TenantId,
    run_id: RunId,
    params: DriftScope,
    baseline: HashMap<String, InventoryItem>,
    current: HashMap<String, InventoryItem>,
}

impl DriftExecution {
    /// Loads both snapshots; `Err(reason)` when they are no longer there.
    pub async fn prepare(
        store: &dyn Store,
        run: &ClaimedRun,
        params: DriftScope,
    ) -> StoreResult<Result<Self, String>> {
        let tenant = run.lease.tenant_id;
        let load = |sync| async move {
            let items = store.inventory_items(tenant, sync).await?;
            Ok::<_, StoreError>(
                items
                    .into_iter()
                    .map(|item| (subject_key(&item), item))
                    .collect::<HashMap<_, _>>(),
            )
        };
        let baseline = load(params.baseline_run_id).await?;
        let current = load(params.current_run_id).await?;
        if baseline.is_empty() && current.is_empty() && !run.work_items.is_empty() {
            return Ok(Err(
                "the inventory snapshots this run compares no longer exist".into(),
            ));
        }
        Ok(Ok(Self {
            tenant_id: tenant,
            run_id: run.lease.run_id,
            params,
            baseline,
            current,
        }))
    }

    pub fn process(&self, item_id: &str) -> ItemOutcome {
        let before = self.baseline.get(item_id);
        let after = self.current.get(item_id);
        let (change_kind, subject) = match (before, after) {
            (None, None) => {
                return ItemOutcome::Failed {
                    reason_code: ReasonCode::InternalError,
                    reason: "the subject is in neither inventory snapshot".into(),
                }
            }
            (None, Some(item)) => (ChangeKind::Added, item),
            (Some(item), None) => (ChangeKind::Removed, item),
            (Some(b), Some(a)) if same_state(b, a) => return ItemOutcome::Succeeded(None),
            (Some(_), Some(item)) => (ChangeKind::Changed, item),
        };
        ItemOutcome::Succeeded(Some(Artifact::Finding(NewFinding {
            tenant_id: self.tenant_id,
            finding_type: FindingType::Drift,
            change_kind,
            scope_key: self.params.scope_key.clone(),
            baseline_run_id: self.params.baseline_run_id,
            current_run_id: self.params.current_run_id,
            produced_by_run_id: Some(self.run_id),
            fingerprint: fingerprint(
                self.tenant_id,
                &self.params,
                change_kind,
                subject,
                before,
                after,
            ),
            subject_type: subject.subject_type.clone(),
            subject_external_id: subject.external_id.clone(),
            evidence: evidence(before, after),
        })))
    }
}

/// The same change of the same subject in the same comparison (scope key,
/// baseline and current sync): the same fingerprint. A run repeating a
/// comparison finds the rows it would write, and the spec's Phase 1 link
/// (scope key + baseline + current) lists every finding of a comparison.
fn fingerprint(
    tenant: TenantId,
    comparison: &DriftScope,
    change_kind: ChangeKind,
    subject: &InventoryItem,
    before: Option<&InventoryItem>,
    after: Option<&InventoryItem>,
) -> String {
    let digest = |item: Option<&InventoryItem>| item.map(state_digest).unwrap_or_default();
    let mut hasher = Sha256::new();
    for part in [
        tenant.to_string(),
        comparison.scope_key.clone(),
        comparison.baseline_run_id.to_string(),
        comparison.current_run_id.to_string(),
        change_kind.as_str().to_string(),
        subject.subject_type.clone(),
        subject.external_id.clone(),
        digest(before),
        digest(after),
    ] {
        // Length-prefixed, so no two part lists hash alike.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    format!("drift:{:x}", hasher.finalize())
}

/// What "the same state" means for a subject: the same name and payload
/// (objects compare by their keys' values, in any order; 0.0 and -0.0 are
/// one number). Most subjects of a comparison are unchanged, so this is a
/// comparison, not two digests.
fn same_state(before: &InventoryItem, after: &InventoryItem) -> bool {
    before.display_name == after.display_name && before.payload == after.payload
}

/// A subject's state as the fingerprint of a change holds it: name and
/// payload, with object keys in a canonical order.
fn state_digest(item: &InventoryItem) -> String {
    let mut text = String::new();
    canonical_json(&item.payload, &mut text);
    let mut hasher = Sha256::new();
    hasher.update(item.display_name.as_bytes());
    hasher.update([0]);
    hasher.update(text.as_bytes());
    format!("{:x}", hasher.finalize())
}

fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Allowlisted, sanitised evidence: the display name, the allowlisted
/// fields' scalar values before/after, the names of the allowlisted fields
/// that changed and how many other fields did.
fn evidence(before: Option<&InventoryItem>, after: Option<&InventoryItem>) -> Value {
    let side = |item: Option<&InventoryItem>, pick: &dyn Fn(&InventoryItem) -> Value| {
        item.map_or(Value::Null, pick)
    };
    let mut evidence = Map::new();
    evidence.insert(
        "display_name".into(),
        serde_json::json!({
            "before": side(before, &|i| Value::String(safe_text(&i.display_name))),
            "after": side(after, &|i| Value::String(safe_text(&i.display_name))),
        }),
    );
    let mut fields = Map::new();
    for field in EVIDENCE_FIELDS {
        let value_of = |i: &InventoryItem| safe_scalar(i.payload.get(field));
        let (b, a) = (side(before, &value_of), side(after, &value_of));
        if !(b.is_null() && a.is_null()) {
            fields.insert(field.into(), serde_json::json!({ "before": b, "after": a }));
        }
    }
    evidence.insert("fields".into(), Value::Object(fields));
    if let (Some(b), Some(a)) = (before, after) {
        let (allowed, others) = changed_fields(&b.payload, &a.payload);
        evidence.insert("changed_fields".into(), allowed);
        evidence.insert("other_changed_fields".into(), others.into());
    }
    Value::Object(evidence)
}

/// Top-level payload keys whose values differ: the allowlisted ones by
/// name, the others only counted (a key's name can itself carry a secret).
fn changed_fields(before: &Value, after: &Value) -> (Value, usize) {
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut names: Vec<&String> = b
        .keys()
        .chain(a.keys())
        .filter(|key| b.get(*key) != a.get(*key))
        .collect();
    names.sort();
    names.dedup();
    let (allowed, others): (Vec<&String>, Vec<&String>) = names
        .into_iter()
        .partition(|name| EVIDENCE_FIELDS.contains(&name.as_str()));
    let allowed = allowed
        .into_iter()
        .map(|name| Value::String(name.clone()))
        .collect();
    (Value::Array(allowed), others.len())
}

fn safe_scalar(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(text)) => Value::String(safe_text(text)),
        Some(value @ (Value::Bool(_) | Value::Number(_))) => value.clone(),
        _ => Value::Null,
    }
}

fn safe_text(text: &str) -> String {
    sanitize_text(text, MAX_EVIDENCE_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::arbitrary::{self, hostile_text, planted_secret};
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            hostile_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(hostile_text(), inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    fn any_item() -> impl Strategy<Value = InventoryItem> {
        (hostile_text(), hostile_text(), hostile_text(), json_value()).prop_map(
            |(subject_type, external_id, display_name, payload)| InventoryItem {
                id: InventoryItemId(uuid::Uuid::nil()),
                sync_run_id: InventorySyncRunId(uuid::Uuid::nil()),
                subject_type,
                external_id,
                display_name,
                payload,
            },
        )
    }

    proptest! {
        #![proptest_config(arbitrary::config())]

        #[test]
        fn any_items_compare_and_no_planted_secret_reaches_evidence(
            before in any_item(),
            after in any_item(),
            scope in hostile_text(),
            (planted, secrets) in planted_secret(),
        ) {
            let key = subject_key(&before);
            prop_assert!(key.starts_with(&before.subject_type) && key.ends_with(&before.external_id));
            let tenant = TenantId(uuid::Uuid::nil());
            let sync = InventorySyncRunId(uuid::Uuid::nil());
            let comparison = DriftScope { scope_key: scope, baseline_run_id: sync, current_run_id: sync, subjects: None };
            let print = |a: &InventoryItem, b: &InventoryItem| {
                fingerprint(tenant, &comparison, ChangeKind::Changed, b, Some(a), Some(b))
            };
            let printed = print(&before, &after);
            prop_assert!(printed.starts_with("drift:") && printed.len() == 70, "{printed}");
            prop_assert_eq!(&printed, &print(&before.clone(), &after.clone()));
            prop_assert_eq!(state_digest(&before), state_digest(&before.clone()));
            // What the digests call the same, the quick comparison does.
            prop_assert!(same_state(&before, &before.clone()));
            if state_digest(&before) == state_digest(&after) {
                prop_assert!(same_state(&before, &after));
            }
            let mut renamed = before.clone();
            renamed.display_name.push('!');
            prop_assert!(!same_state(&before, &renamed));

            let mut leaky = after.clone();
            leaky.display_name = format!("{} {planted}", after.display_name);
            leaky.payload = serde_json::json!({
                "owner": planted, "state": format!("ok {planted}"), "notes": planted, planted.clone(): 1,
            });
            for (b, a) in [(Some(&before), Some(&leaky)), (None, Some(&leaky)), (Some(&leaky), None)] {
                let text = evidence(b, a).to_string();
                for secret in &secrets {
                    prop_assert!(!text.contains(secret.as_str()), "{secret} in {text}");
                }
            }
        }
    }

    fn item(name: &str, payload: Value) -> InventoryItem {
        InventoryItem {
            id: InventoryItemId(uuid::Uuid::nil()),
            sync_run_id: InventorySyncRunId(uuid::Uuid::nil()),
            subject_type: "device".into(),
            external_id: "d-1".into(),
            display_name: name.into(),
            payload,
        }
    }

    #[test]
    fn key_order_does_not_change_the_state() {
        let a = item("A", serde_json::json!({"x": 1, "y": {"b": 2, "a": 1}}));
        let b = item(
            "A",
            serde_json::from_str(r#"{"y": {"a": 1, "b": 2}, "x": 1}"#).unwrap(),
        );
        assert_eq!(state_digest(&a), state_digest(&b));
        assert!(same_state(&a, &b));
        let renamed = item("B", a.payload.clone());
        assert_ne!(state_digest(&a), state_digest(&renamed));
        assert!(!same_state(&a, &renamed));
        // 1 and 1.0 are different values in either view.
        let float = item("A", serde_json::json!({"x": 1.0, "y": {"b": 2, "a": 1}}));
        assert_ne!(state_digest(&a), state_digest(&float));
        assert!(!same_state(&a, &float));
    }

    #[test]
    fn evidence_copies_only_allowlisted_scalars_and_redacts_them() {
        let before = item(
            "laptop",
            serde_json::json!({"os_version": "10.0.1", "client_secret": "s3cr3t-canary",
                "owner": "mail bob@example.com", "blob": {"os": "x"}}),
        );
        let after = item(
            "laptop token=abc-canary",
            serde_json::json!({"os_version": "10.0.2", "client_secret": "n3w-canary",
                "owner": "it-ops"}),
        );
        let shown = evidence(Some(&before), Some(&after));
        let text = shown.to_string();
        for secret in [
            "s3cr3t-canary",
            "n3w-canary",
            "abc-canary",
            "bob@example.com",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(shown["fields"]["os_version"]["after"], "10.0.2");
        assert_eq!(
            shown["changed_fields"],
            serde_json::json!(["os_version", "owner"])
        );
        assert_eq!(shown["other_changed_fields"], 2);
        let secret_name = item("x", serde_json::json!({"password=hunter2": 1}));
        let renamed = item("x", serde_json::json!({"password=hunter2": 2}));
        let text = evidence(Some(&secret_name), Some(&renamed)).to_string();
        assert!(!text.contains("hunter2"), "{text}");
    }
}
