//! Drift findings: listed with filters, acknowledged by operators.

use super::codec::JsonText;
use super::AppError;
use crate::domain::*;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FindingsData {
    pub tenant: Tenant,
    pub findings: Page<Finding>,
    pub can_acknowledge: bool,
}

/// The findings page's query as it appears in the URL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingsQuery {
    pub status: Option<String>,
    pub scope: Option<String>,
    pub subject_type: Option<String>,
    /// The inventory syncs compared (the spec's Phase 1 link, with `scope`).
    pub baseline: Option<String>,
    pub current: Option<String>,
    pub run: Option<String>,
    pub older: Option<String>,
    pub newer: Option<String>,
}

impl FindingsQuery {
    /// The fields by their names in the URL.
    fn fields(&self) -> [(&'static str, &Option<String>); 8] {
        [
            ("status", &self.status),
            ("scope", &self.scope),
            ("subject_type", &self.subject_type),
            ("baseline", &self.baseline),
            ("current", &self.current),
            ("run", &self.run),
            ("older", &self.older),
            ("newer", &self.newer),
        ]
    }

    pub fn to_query_string(&self) -> String {
        query_string(&self.fields())
    }

    /// Empty fields (a submitted filter form) mean "any". Every field has at
    /// most `MAX_SEARCH_CHARS` characters.
    pub fn parse(&self) -> Result<(FindingFilter, PageRequest), ParseError> {
        bounded_fields(&self.fields())?;
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let filter = FindingFilter {
            status: given(&self.status)
                .map(|s| FindingStatus::parse(&s))
                .transpose()?,
            scope_key: given(&self.scope),
            subject_type: given(&self.subject_type),
            baseline: given(&self.baseline)
                .map(|s| InventorySyncRunId::parse(&s))
                .transpose()?,
            current: given(&self.current)
                .map(|s| InventorySyncRunId::parse(&s))
                .transpose()?,
            produced_by: given(&self.run).map(|r| RunId::parse(&r)).transpose()?,
        };
        let page = match (given(&self.older), given(&self.newer)) {
            (Some(_), Some(_)) => {
                return Err(ParseError("use either `older` or `newer`, not both".into()))
            }
            (Some(c), None) => PageRequest::older_than(Cursor::parse(&c)?, DEFAULT_PAGE_SIZE),
            (None, Some(c)) => PageRequest::newer_than(Cursor::parse(&c)?, DEFAULT_PAGE_SIZE),
            (None, None) => PageRequest::first(DEFAULT_PAGE_SIZE),
        };
        Ok((filter, page))
    }
}

#[server(endpoint = "findings/list", input = Json, output = JsonText)]
pub async fn list_findings(tenant: String, query: FindingsQuery) -> Result<FindingsData, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            let (filter, page) = query.parse()?;
            let store = super::ssr::store()?;

            Ok(FindingsData {
                findings: store.list_findings(access.tenant.id, &filter, page).await?,
                can_acknowledge: access.role >= Role::Operator,
                tenant: access.tenant,
            })
        }
        .await,
    )
}

/// The most findings one acknowledgement takes.
pub const MAX_ACKNOWLEDGE: usize = 500;

/// Acknowledges findings; `ids` is a comma-separated list (one id from a
/// row's button, all shown ids from "acknowledge all on this page").
#[server(endpoint = "findings/acknowledge", output = JsonText)]
pub async fn acknowledge_findings(tenant: String, ids: String) -> Result<u64, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Operator).await?;
            let too_many = || {
                AppError::BadRequest(format!(
                    "acknowledge 1 to {MAX_ACKNOWLEDGE} findings at a time"
                ))
            };
            // Room for the ids, commas and some spaces; checked before splitting.
            if ids.chars().nth(MAX_ACKNOWLEDGE * 40).is_some() {
                return Err(too_many());
            }
            let ids = ids
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(|id| FindingId::parse(bounded_text("ids", id, MAX_SEARCH_CHARS)?))
                .collect::<Result<Vec<_>, _>>()?;
            if ids.is_empty() || ids.len() > MAX_ACKNOWLEDGE {
                return Err(too_many());
            }
            // Other tenants' ids simply match nothing.
            Ok(super::ssr::store()?
                .acknowledge_findings(access.tenant.id, &ids, access.user.id)
                .await?)
        }
        .await,
    )
}
