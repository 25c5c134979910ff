mod hub;
mod members;
mod run;
mod sign_in;
mod tenants;

pub use hub::HubPage;
pub use members::MembersPage;
pub use run::RunPage;
pub use sign_in::SignInPage;
pub use tenants::TenantsPage;
