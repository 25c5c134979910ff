//! Insights: a tenant's runs over a window, read from the rollups, with
//! the charts drawn on the server (`server::charts`) so the browser bundle
//! carries no chart code.

use super::codec::JsonText;
use super::AppError;
use crate::domain::*;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

/// The Insights page's query as it appears in the URL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsightsQuery {
    /// `24h` (the default), `7d`, `30d` or `90d`.
    pub window: Option<String>,
    /// An operation code (`drift.generate`); empty for all.
    pub operation: Option<String>,
}

impl InsightsQuery {
    fn fields(&self) -> [(&'static str, &Option<String>); 2] {
        [("window", &self.window), ("operation", &self.operation)]
    }

    pub fn to_query_string(&self) -> String {
        query_string(&self.fields())
    }

    pub fn parse(&self) -> Result<(InsightsWindow, Option<OperationKind>), ParseError> {
        bounded_fields(&self.fields())?;
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let window = given(&self.window)
            .map(|w| InsightsWindow::parse(w.trim()))
            .transpose()?
            .unwrap_or_default();
        let operation = given(&self.operation)
            .map(|o| OperationKind::parse(o.trim()))
            .transpose()?;
        Ok((window, operation))
    }
}

/// One chart: drawn SVG markup (server-made, no user text in it) and the
/// words that stand for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    /// Stable, for tests and anchors: `outcomes`, `durations`, …
    pub id: String,
    pub title: String,
    /// What it shows, in a sentence (also the SVG's description).
    pub summary: String,
    pub svg: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InsightsData {
    pub tenant: Tenant,
    pub insights: Insights,
    pub charts: Vec<Chart>,
}

#[server(endpoint = "insights", input = Json, output = JsonText)]
pub async fn load_insights(tenant: String, query: InsightsQuery) -> Result<InsightsData, AppError> {
    super::ssr::respond(
        async {
            let access = super::ssr::authorize(&tenant, Role::Viewer).await?;
            let (window, operation) = query.parse()?;
            let now = Timestamp::now();
            let since = window.bucket_starts(now)[0];
            let rollups = super::ssr::store()?
                .rollups(access.tenant.id, since, operation)
                .await?;
            let insights = Insights::from_rollups(window, operation, now, &rollups);
            Ok(InsightsData {
                charts: crate::server::charts::draw(&insights),
                insights,
                tenant: access.tenant,
            })
        }
        .await,
    )
}
