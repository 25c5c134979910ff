//! Server functions by area. Thin: resolve the tenant, call the store, return
//! domain types. Compiled for both targets; the bodies run on the server only.

mod error;
pub mod runs;
pub mod tenants;

pub use error::AppError;

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use super::AppError;
    use crate::domain::Tenant;
    use crate::server::store::Store;
    use crate::server::AppState;
    use leptos::prelude::*;
    use std::sync::Arc;

    pub fn store() -> Result<Arc<dyn Store>, AppError> {
        use_context::<AppState>()
            .map(|state| state.store.clone())
            .ok_or_else(|| {
                tracing::error!("AppState missing from the server function context");
                AppError::Internal
            })
    }

    /// Gives a server function's response the HTTP status of its error.
    pub fn respond<T>(result: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(err) = &result {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(
                    axum::http::StatusCode::from_u16(err.status())
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                );
            }
        }
        result
    }

    /// The tenant named in the URL. Unknown tenants answer exactly like any
    /// other missing resource.
    pub async fn tenant(slug: &str) -> Result<Tenant, AppError> {
        store()?
            .tenant_by_slug(slug)
            .await?
            .ok_or(AppError::NotFound)
    }
}
