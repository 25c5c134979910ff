//! The live stream as both ends know it: where it is and what its events
//! are called. One stream per signed-in user and tenant.

/// A run changed; the data is its `RunSummary` as JSON.
pub const RUN_EVENT: &str = "run";
/// The user's unread notification count in the tenant changed; the data is
/// the new count.
pub const UNREAD_EVENT: &str = "unread";
/// Changes may have been missed: reload what the page shows.
pub const RESYNC_EVENT: &str = "resync";

/// The stream of a tenant's live changes for the signed-in user.
pub fn live_path(tenant_slug: &str) -> String {
    format!("/api/live/{}", super::encode_component(tenant_slug))
}
