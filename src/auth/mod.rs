//! Authentication and authorisation: OAuth2 client-credentials tokens, the `Principal`
//! extractor every protected handler takes, and scope checks. Never logs a secret or token.

pub mod assertion;
pub mod issuer_cache;
pub mod jwks;
mod principal;
pub mod routes;
mod scope;
pub mod secrets;
pub mod smart;
pub mod token;

pub use principal::{ClientStatusCache, PatientFilter, Principal};
pub use scope::Scope;
pub use token::JwtKeys;
