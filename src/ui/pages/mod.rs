mod findings;
mod hub;
mod members;
mod notifications;
mod run;
mod sign_in;
mod tenants;

pub use findings::FindingsPage;
pub use hub::HubPage;
pub use members::MembersPage;
pub use notifications::NotificationsPage;
pub use run::RunPage;
pub use sign_in::SignInPage;
pub use tenants::TenantsPage;
