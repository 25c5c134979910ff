use super::AppError;
use crate::domain::*;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

/// What the hub page shows: one page of runs and the count per bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HubData {
    pub tenant: Tenant,
    pub runs: Page<RunSummary>,
    pub counts: BucketCounts,
}

/// Hub query as it appears in the URL; every field is optional text so a
/// shared link round-trips exactly. Invalid values are a 400, never ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubQuery {
    pub bucket: Option<String>,
    pub operation: Option<String>,
    pub older: Option<String>,
    pub newer: Option<String>,
    pub limit: Option<String>,
}

impl HubQuery {
    /// The query string of this query, for links (`?bucket=failed&limit=20`).
    pub fn to_query_string(&self) -> String {
        let pairs: Vec<String> = [
            ("bucket", &self.bucket),
            ("operation", &self.operation),
            ("older", &self.older),
            ("newer", &self.newer),
            ("limit", &self.limit),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={v}")))
        .collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }

    pub fn parse(&self) -> Result<(RunFilter, PageRequest), ParseError> {
        let filter = RunFilter {
            bucket: self
                .bucket
                .as_deref()
                .map(StatusBucket::parse)
                .transpose()?,
            operation: self
                .operation
                .as_deref()
                .map(OperationKind::parse)
                .transpose()?,
            ..RunFilter::default()
        };
        let limit = match self.limit.as_deref() {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    ParseError(format!("page size must be 1-{MAX_PAGE_SIZE}, not {text:?}"))
                })?,
        };
        let page = match (&self.older, &self.newer) {
            (Some(_), Some(_)) => {
                return Err(ParseError("use either `older` or `newer`, not both".into()))
            }
            (Some(cursor), None) => PageRequest::older_than(Cursor::parse(cursor)?, limit),
            (None, Some(cursor)) => PageRequest::newer_than(Cursor::parse(cursor)?, limit),
            (None, None) => PageRequest::first(limit),
        };
        Ok((filter, page))
    }
}

#[server(endpoint = "runs/hub", input = Json)]
pub async fn hub_runs(tenant: String, query: HubQuery) -> Result<HubData, AppError> {
    super::ssr::respond(hub_data(&tenant, &query).await)
}

#[cfg(feature = "ssr")]
async fn hub_data(tenant: &str, query: &HubQuery) -> Result<HubData, AppError> {
    let tenant = super::ssr::authorize(tenant, Role::Viewer).await?.tenant;
    let (filter, page) = query.parse()?;
    let store = super::ssr::store()?;
    let runs = store.list_runs(tenant.id, &filter, page).await?;
    let counts = store
        .count_runs_by_bucket(
            tenant.id,
            &RunFilter {
                bucket: None,
                ..filter
            },
        )
        .await?;
    Ok(HubData {
        tenant,
        runs,
        counts,
    })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPageData {
    pub tenant: Tenant,
    pub run: RunDetail,
}

#[server(endpoint = "runs/detail", input = Json)]
pub async fn run_page(tenant: String, run_id: String) -> Result<RunPageData, AppError> {
    super::ssr::respond(run_page_data(&tenant, &run_id).await)
}

#[cfg(feature = "ssr")]
async fn run_page_data(tenant: &str, run_id: &str) -> Result<RunPageData, AppError> {
    let tenant = super::ssr::authorize(tenant, Role::Viewer).await?.tenant;
    // A malformed id is just another run that does not exist.
    let id = RunId::parse(run_id).map_err(|_| AppError::NotFound)?;
    let run = super::ssr::store()?
        .run(tenant.id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(RunPageData { tenant, run })
}
