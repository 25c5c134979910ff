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
            // The same text is the same state: no need to parse it.
            (Some(b), Some(a))
                if b.display_name == a.display_name && b.payload.get() == a.payload.get() =>
            {
                return ItemOutcome::Succeeded(None)
            }
            (Some(_), Some(item)) => (ChangeKind::Changed, item),
        };
        let (before, after) = match (State::parse(before), State::parse(after)) {
            (Ok(before), Ok(after)) => (before, after),
            _ => {
                return ItemOutcome::Failed {
                    reason_code: ReasonCode::InvalidPayload,
                    reason: "the subject's payload could not be read".into(),
                }
            }
        };
        if let (Some(b), Some(a)) = (&before, &after) {
            if same_state(b, a) {
                return ItemOutcome::Succeeded(None);
            }
        }
        let (before, after) = (before.as_ref(), after.as_ref());
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

/// A subject's state with its payload parsed: what a change is told by.
struct State<'a> {
    display_name: &'a str,
    payload: Value,
}

impl<'a> State<'a> {
    /// `Err` when the payload is JSON too deeply nested to parse.
    fn parse(item: Option<&'a InventoryItem>) -> serde_json::Result<Option<Self>> {
        item.map(|item| {
            Ok(State {
                display_name: &item.display_name,
                payload: serde_json::from_str(item.payload.get())?,
            })
        })
        .transpose()
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
    before: Option<&State>,
    after: Option<&State>,
) -> String {
    let digest = |state: Option<&State>| state.map(state_digest).unwrap_or_default();
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

/// What "the same state" means for a subject whose text changed: the same
/// name and payload (objects compare by their keys' values, in any order;
/// 0.0 and -0.0 are one number).
fn same_state(before: &State, after: &State) -> bool {
    before.display_name == after.display_name && before.payload == after.payload
}

/// A subject's state as the fingerprint of a change holds it: name and
/// payload, with object keys in a canonical order.
fn state_digest(state: &State) -> String {
    let mut text = String::new();
    canonical_json(&state.payload, &mut text);
    let mut hasher = Sha256::new();
    hasher.update(state.display_name.as_bytes());
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
fn evidence(before: Option<&State>, after: Option<&State>) -> Value {
    let side =
        |state: Option<&State>, pick: &dyn Fn(&State) -> Value| state.map_or(Value::Null, pick);
    let mut evidence = Map::new();
    evidence.insert(
        "display_name".into(),
        serde_json::json!({
            "before": side(before, &|i| Value::String(safe_text(i.display_name))),
            "after": side(after, &|i| Value::String(safe_text(i.display_name))),
        }),
    );
    let mut fields = Map::new();
    for field in EVIDENCE_FIELDS {
        let value_of = |i: &State| safe_scalar(i.payload.get(field));
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

    fn raw(payload: &Value) -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::from_string(payload.to_string()).unwrap()
    }

    fn any_item() -> impl Strategy<Value = InventoryItem> {
        (hostile_text(), hostile_text(), hostile_text(), json_value()).prop_map(
            |(subject_type, external_id, display_name, payload)| InventoryItem {
                subject_type,
                external_id,
                display_name,
                payload: raw(&payload),
            },
        )
    }

    fn state(item: &InventoryItem) -> State<'_> {
        State::parse(Some(item)).unwrap().unwrap()
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
                fingerprint(tenant, &comparison, ChangeKind::Changed, b, Some(&state(a)), Some(&state(b)))
            };
            let printed = print(&before, &after);
            prop_assert!(printed.starts_with("drift:") && printed.len() == 70, "{printed}");
            prop_assert_eq!(&printed, &print(&before.clone(), &after.clone()));
            let (b, a) = (state(&before), state(&after));
            prop_assert_eq!(state_digest(&b), state_digest(&state(&before.clone())));
            // What the digests call the same, the comparison does.
            prop_assert!(same_state(&b, &state(&before.clone())));
            if state_digest(&b) == state_digest(&a) {
                prop_assert!(same_state(&b, &a));
            }
            let mut renamed = before.clone();
            renamed.display_name.push('!');
            prop_assert!(!same_state(&b, &state(&renamed)));

            let mut leaky = after.clone();
            leaky.display_name = format!("{} {planted}", after.display_name);
            leaky.payload = raw(&serde_json::json!({
                "owner": planted, "state": format!("ok {planted}"), "notes": planted, planted.clone(): 1,
            }));
            let leaky = state(&leaky);
            for (b, a) in [(Some(&b), Some(&leaky)), (None, Some(&leaky)), (Some(&leaky), None)] {
                let text = evidence(b, a).to_string();
                for secret in &secrets {
                    prop_assert!(!text.contains(secret.as_str()), "{secret} in {text}");
                }
            }
        }
    }

    fn item(name: &str, payload: &str) -> InventoryItem {
        InventoryItem {
            subject_type: "device".into(),
            external_id: "d-1".into(),
            display_name: name.into(),
            payload: serde_json::value::RawValue::from_string(payload.into()).unwrap(),
        }
    }

    #[test]
    fn key_order_does_not_change_the_state() {
        let a = item("A", r#"{"x": 1, "y": {"b": 2, "a": 1}}"#);
        let b = item("A", r#"{"y": {"a": 1, "b": 2}, "x": 1}"#);
        assert_eq!(state_digest(&state(&a)), state_digest(&state(&b)));
        assert!(same_state(&state(&a), &state(&b)));
        let renamed = item("B", a.payload.get());
        assert_ne!(state_digest(&state(&a)), state_digest(&state(&renamed)));
        assert!(!same_state(&state(&a), &state(&renamed)));
        // 1 and 1.0 are different values in either view.
        let float = item("A", r#"{"x": 1.0, "y": {"b": 2, "a": 1}}"#);
        assert_ne!(state_digest(&state(&a)), state_digest(&state(&float)));
        assert!(!same_state(&state(&a), &state(&float)));
    }

    /// A comparison of `(baseline, current)` payload texts, one subject.
    fn compare(before: Option<&str>, after: Option<&str>) -> ItemOutcome {
        let snapshot = |payload: Option<&str>| {
            payload
                .map(|payload| {
                    let subject = item("A", payload);
                    (subject_key(&subject), subject)
                })
                .into_iter()
                .collect()
        };
        let sync = InventorySyncRunId(uuid::Uuid::nil());
        let drift = DriftExecution {
            tenant_id: TenantId(uuid::Uuid::nil()),
            run_id: RunId(uuid::Uuid::nil()),
            params: DriftScope {
                scope_key: "s".into(),
                baseline_run_id: sync,
                current_run_id: sync,
                subjects: None,
            },
            baseline: snapshot(before),
            current: snapshot(after),
        };
        drift.process("device:d-1")
    }

    fn change_kind(outcome: &ItemOutcome) -> Option<ChangeKind> {
        match outcome {
            ItemOutcome::Succeeded(Some(Artifact::Finding(finding))) => Some(finding.change_kind),
            _ => None,
        }
    }

    #[test]
    fn a_change_is_told_by_the_payloads_value_not_its_text() {
        let unchanged = |b, a| matches!(compare(Some(b), Some(a)), ItemOutcome::Succeeded(None));
        assert!(unchanged(r#"{"x":1}"#, r#"{"x":1}"#));
        // Other texts of the same value: parsed, and still the same.
        assert!(unchanged(r#"{"x":1,"y":2}"#, r#"{"y": 2, "x": 1}"#));
        assert!(unchanged(r#"{"x":1.0}"#, r#"{"x":1.00}"#));
        for (b, a, kind) in [
            (Some(r#"{"x":1}"#), Some(r#"{"x":2}"#), ChangeKind::Changed),
            (
                Some(r#"{"x":1}"#),
                Some(r#"{"x":1.0}"#),
                ChangeKind::Changed,
            ),
            (None, Some(r#"{"x":1}"#), ChangeKind::Added),
            (Some(r#"{"x":1}"#), None, ChangeKind::Removed),
        ] {
            assert_eq!(change_kind(&compare(b, a)), Some(kind), "{b:?} -> {a:?}");
        }
        assert!(matches!(
            compare(None, None),
            ItemOutcome::Failed {
                reason_code: ReasonCode::InternalError,
                ..
            }
        ));
    }

    #[test]
    fn a_payload_too_deep_to_parse_fails_its_item_only() {
        // The database holds JSON nested deeper than the parser follows.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for (b, a) in [
            (Some("{}"), Some(deep.as_str())),
            (None, Some(deep.as_str())),
        ] {
            assert!(matches!(
                compare(b, a),
                ItemOutcome::Failed {
                    reason_code: ReasonCode::InvalidPayload,
                    ..
                }
            ));
        }
        // The same deep text on both sides is unchanged without parsing.
        assert!(matches!(
            compare(Some(&deep), Some(&deep)),
            ItemOutcome::Succeeded(None)
        ));
    }

    #[test]
    fn evidence_copies_only_allowlisted_scalars_and_redacts_them() {
        let before = item(
            "laptop",
            r#"{"os_version": "10.0.1", "client_secret": "s3cr3t-canary",
                "owner": "mail bob@example.com", "blob": {"os": "x"}}"#,
        );
        let after = item(
            "laptop token=abc-canary",
            r#"{"os_version": "10.0.2", "client_secret": "n3w-canary", "owner": "it-ops"}"#,
        );
        let shown = evidence(Some(&state(&before)), Some(&state(&after)));
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
        let secret_name = item("x", r#"{"password=hunter2": 1}"#);
        let renamed = item("x", r#"{"password=hunter2": 2}"#);
        let text = evidence(Some(&state(&secret_name)), Some(&state(&renamed))).to_string();
        assert!(!text.contains("hunter2"), "{text}");
    }
}
