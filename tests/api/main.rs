// Test code may unwrap, expect and index: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

//! One integration-test binary (linking once matters on 2 cores); one module per domain.

mod alerts;
mod alliance_outcome;
mod analytics;
mod auth;
mod backend;
mod builders;
mod cds;
mod citus;
mod console;
mod corrections;
mod corrections_v3;
mod erasure;
mod expected;
mod export;
mod faults;
mod fhir;
mod hardening;
mod helpers;
mod identity;
mod instruments;
mod launch;
mod launch_browser;
mod ops;
mod outcomes;
mod replica;
mod responses;
mod tenancy;
mod tenancy_matrix;
mod unscored;
mod webhooks;
