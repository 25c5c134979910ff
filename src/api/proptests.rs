//! The URL queries of the hub and the findings page over arbitrary text:
//! a filter or a clear error, and links that read back the same.

use super::findings::FindingsQuery;
use super::runs::HubQuery;
use crate::domain::arbitrary::{self, hostile_text};
use proptest::prelude::*;

fn field() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        hostile_text().prop_map(Some),
        prop::sample::select(vec![
            "failed",
            "drift.generate",
            "2026-11-27",
            "50",
            "0",
            "201",
            "new",
            "1764000000123456_0190a6b2-7c1e-7d3a-9f00-000000000001",
            "0190a6b2-7c1e-7d3a-9f00-000000000001",
        ])
        .prop_map(|v| Some(v.to_string())),
    ]
}

fn short_error(message: &str) -> Result<(), TestCaseError> {
    prop_assert!(message.chars().count() <= 300, "{message}");
    prop_assert!(!message.chars().any(char::is_control), "{message:?}");
    Ok(())
}

proptest! {
    #![proptest_config(arbitrary::config())]

    #[test]
    fn hub_queries_parse_or_explain(
        bucket in field(), operation in field(), initiator in field(), from in field(),
        to in field(), q in field(), reason in field(), older in field(), newer in field(),
        limit in field(),
    ) {
        let query = HubQuery { bucket, operation, initiator, from, to, q, reason, older, newer, limit };
        match query.parse() {
            Ok((filter, page)) => {
                prop_assert!(page.limit >= 1 && page.limit <= crate::domain::MAX_PAGE_SIZE);
                prop_assert_eq!(query.parse().ok(), Some((filter, page)));
            }
            Err(error) => short_error(&error.0)?,
        }
        let link = query.to_query_string();
        prop_assert!(link.is_ascii());
    }

    #[test]
    fn findings_queries_parse_or_explain(
        status in field(), scope in field(), subject_type in field(), baseline in field(),
        current in field(), run in field(), older in field(), newer in field(),
    ) {
        let query = FindingsQuery { status, scope, subject_type, baseline, current, run, older, newer };
        if let Err(error) = query.parse() {
            short_error(&error.0)?;
        }
        prop_assert!(query.to_query_string().is_ascii());
    }
}
