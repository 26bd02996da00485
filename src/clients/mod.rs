//! An organisation's API clients: create (secret shown once), list, read, revoke.
//! Secrets are stored only as argon2 hashes.

pub mod model;
pub mod routes;
pub mod service;
pub mod store;

pub use store::create_client;
