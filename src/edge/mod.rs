//! The web edge: what turns HTTP into calls of the domains (authentication of the caller
//! today). Domains below it never import it, and it holds no domain logic.

pub mod authenticate;
