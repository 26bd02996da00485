//! CDS Hooks 2.0: rapport's alliance at the point of care (`patient-view`) and of
//! prescribing (`order-select`, `order-sign`), for the EHRs an organisation registers as
//! CDS clients. `cards` decides the cards from facts (pure); `trust` checks a client's JWT;
//! `store` keeps clients, used JWT ids, issued cards and feedback; `service` registers and
//! deletes clients; `routes` (the hooks) and `client_routes` (`/v1/cds-clients`) are the web
//! edge.

pub mod cards;
pub mod client_routes;
pub mod model;
pub mod routes;
pub mod service;
pub mod store;
pub mod trust;

pub use trust::CdsVerifier;
