// Test code may unwrap, expect and index: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// The API modules shared with `tests/api` use only part of the helpers here.
#![allow(dead_code)]

//! The API tests on a real Citus cluster: a coordinator and two workers that this binary
//! makes with initdb/pg_ctl (`backend`), one database per test distributed by rapport
//! itself at start, the tests one at a time. The set covers tenancy, ingest (single, batch,
//! idempotency under concurrency), FHIR, alerts and webhooks, analytics, exports, erasure
//! and identity; `distribution` checks what rapport made of the schema and moves one
//! organisation's shards under load.
//!
//! Without Citus on the machine the binary says SKIPPED and passes;
//! `RAPPORT_REQUIRE_CITUS=1` (CI) makes that a failure.

#[path = "../api/alerts.rs"]
mod alerts;
#[path = "../api/analytics.rs"]
mod analytics;
mod backend;
#[path = "../api/builders.rs"]
mod builders;
#[path = "../api/cds.rs"]
mod cds;
mod distribution;
#[path = "../api/erasure.rs"]
mod erasure;
#[path = "../api/expected.rs"]
mod expected;
#[path = "../api/export.rs"]
mod export;
#[path = "../api/fhir.rs"]
mod fhir;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/identity.rs"]
mod identity;
#[path = "../api/instruments.rs"]
mod instruments;
#[path = "../api/launch.rs"]
mod launch;
#[path = "../api/responses.rs"]
mod responses;
#[path = "../api/tenancy.rs"]
mod tenancy;
#[path = "../api/tenancy_matrix.rs"]
mod tenancy_matrix;
#[path = "../api/unscored.rs"]
mod unscored;
#[path = "../api/webhooks.rs"]
mod webhooks;
