//! The members page: admins see who has which role in their tenant and
//! change it. Users themselves are created on the command line.

use super::codec::JsonText;
use super::AppError;
use crate::domain::Member;
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[server(endpoint = "members/list", input = Json, output = JsonText)]
pub async fn list_members(tenant: String) -> Result<Vec<Member>, AppError> {
    super::ssr::respond(
        async {
            let tenant = super::ssr::authorize(&tenant, crate::domain::Role::Admin)
                .await?
                .tenant;
            Ok(super::ssr::store()?.members(tenant.id).await?)
        }
        .await,
    )
}

/// Grants a role to an existing user, by email.
#[server(endpoint = "members/add", output = JsonText)]
pub async fn add_member(tenant: String, email: String, role: String) -> Result<(), AppError> {
    super::ssr::respond(ssr::add(tenant, email, role).await)
}

#[server(endpoint = "members/set-role", output = JsonText)]
pub async fn set_member_role(
    tenant: String,
    user_id: String,
    role: String,
) -> Result<(), AppError> {
    super::ssr::respond(ssr::set_role(tenant, user_id, role).await)
}

#[server(endpoint = "members/remove", output = JsonText)]
pub async fn remove_member(tenant: String, user_id: String) -> Result<(), AppError> {
    super::ssr::respond(ssr::remove(tenant, user_id).await)
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::super::ssr::{authorize, store};
    use super::AppError;
    use crate::domain::{bounded_text, Role, UserId, MAX_EMAIL_CHARS, MAX_SEARCH_CHARS};
    use crate::server::admin::{self, AdminError};

    impl From<AdminError> for AppError {
        fn from(err: AdminError) -> Self {
            match err {
                AdminError::Invalid(message) => AppError::BadRequest(message),
                AdminError::NotFound => AppError::NotFound,
                AdminError::Store(e) => e.into(),
            }
        }
    }

    /// The tenant, if the signed-in user is its admin, and that admin.
    async fn admin_of(tenant: &str) -> Result<(crate::domain::Tenant, UserId), AppError> {
        let access = authorize(tenant, Role::Admin).await?;
        Ok((access.tenant, access.user.id))
    }

    pub async fn add(tenant: String, email: String, role: String) -> Result<(), AppError> {
        let (tenant, actor) = admin_of(&tenant).await?;
        let email = bounded_text("email", &email, MAX_EMAIL_CHARS)?;
        let role = Role::parse(bounded_text("role", &role, MAX_SEARCH_CHARS)?)?;
        admin::grant(store()?.as_ref(), Some(actor), &tenant, email, role).await?;
        Ok(())
    }

    pub async fn set_role(tenant: String, user_id: String, role: String) -> Result<(), AppError> {
        let (tenant, actor) = admin_of(&tenant).await?;
        let user = UserId::parse(&user_id).map_err(|_| AppError::NotFound)?;
        let role = Role::parse(bounded_text("role", &role, MAX_SEARCH_CHARS)?)?;
        admin::change_role(store()?.as_ref(), Some(actor), &tenant, user, role).await?;
        Ok(())
    }

    pub async fn remove(tenant: String, user_id: String) -> Result<(), AppError> {
        let (tenant, actor) = admin_of(&tenant).await?;
        let user = UserId::parse(&user_id).map_err(|_| AppError::NotFound)?;
        admin::remove(store()?.as_ref(), Some(actor), &tenant, user).await?;
        Ok(())
    }
}
