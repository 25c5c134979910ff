mod hub;
mod run;
mod sign_in;
mod tenants;

pub use hub::HubPage;
pub use run::RunPage;
pub use sign_in::SignInPage;
pub use tenants::TenantsPage;
