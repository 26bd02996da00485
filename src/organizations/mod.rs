//! Tenants. Creating one also creates its first administrator client.

pub mod model;
pub mod routes;
pub mod store;

pub use store::create_organization;
