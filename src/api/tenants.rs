use super::AppError;
use crate::domain::Tenant;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// Every tenant, by name.
#[server(endpoint = "tenants/list", input = Json)]
pub async fn list_tenants() -> Result<Vec<Tenant>, AppError> {
    let tenants = async { Ok(super::ssr::store()?.list_tenants().await?) }.await;
    super::ssr::respond(tenants)
}
