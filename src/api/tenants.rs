use super::codec::JsonText;
use super::AppError;
use crate::domain::Tenant;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// The tenants the signed-in user is a member of, by name.
#[server(endpoint = "tenants/list", input = Json, output = JsonText)]
pub async fn list_tenants() -> Result<Vec<Tenant>, AppError> {
    let tenants = async {
        let user = super::ssr::signed_in_user().await?;
        let memberships = super::ssr::store()?.memberships(user.id).await?;
        Ok(memberships.into_iter().map(|m| m.tenant).collect())
    }
    .await;
    super::ssr::respond(tenants)
}
