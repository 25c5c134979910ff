mod hub;
mod run;
mod tenants;

pub use hub::HubPage;
pub use run::RunPage;
pub use tenants::TenantsPage;
