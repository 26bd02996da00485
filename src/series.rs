//! A series: one patient's responses to one instrument by one rater, in time order. Its key,
//! the arrays that bind a batch of keys to one statement, and its evaluation lock. Shared by
//! the outbox worker, alerts, analytics and erasure; knows none of them.

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::ids::OrgId;
use crate::norms::NormsUsed;
use crate::scoring::outcome::{Change, assess_change};
use crate::scoring::ruptures::{RuptureFound, detect_ruptures};
use crate::scoring::{InstrumentDefinition, RuptureRuleKind};

/// The series an event names: (organisation, patient, instrument, rater).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub org: OrgId,
    pub patient: String,
    pub instrument: String,
    pub rater: String,
}

/// A batch of series as four parallel arrays (organisations, patients, instruments, raters),
/// bound as `$1`..`$4` of a query that unnests them: one statement serves the batch.
pub struct SeriesArrays<'a> {
    orgs: Vec<Uuid>,
    patients: Vec<&'a str>,
    instruments: Vec<&'a str>,
    raters: Vec<&'a str>,
}

impl<'a> SeriesArrays<'a> {
    pub fn of(keys: impl IntoIterator<Item = &'a SeriesKey>) -> Self {
        let mut arrays = SeriesArrays {
            orgs: Vec::new(),
            patients: Vec::new(),
            instruments: Vec::new(),
            raters: Vec::new(),
        };
        for k in keys {
            arrays.orgs.push(k.org.0);
            arrays.patients.push(&k.patient);
            arrays.instruments.push(&k.instrument);
            arrays.raters.push(&k.rater);
        }
        arrays
    }

    /// `sql` (a fixed text) with the four arrays bound as `$1`..`$4` and the organisation of
    /// the keys as `$5`: every query names it besides the arrays, so that on Citus it goes to
    /// that organisation's shards alone (the keys are one organisation's: the outbox worker
    /// takes its events one organisation at a time).
    pub fn query(&self, sql: &str) -> crate::db::Prepared<'_> {
        use diesel::sql_types::Array;
        debug_assert!(
            self.orgs.windows(2).all(|w| w.first() == w.last()),
            "series of one organisation"
        );
        let org = <[Uuid]>::first(&self.orgs).copied().unwrap_or_default();
        crate::db::Prepared::new(sql)
            .bind::<Array<SqlUuid>, _>(&self.orgs)
            .bind::<Array<Text>, _>(&self.patients)
            .bind::<Array<Text>, _>(&self.instruments)
            .bind::<Array<Text>, _>(&self.raters)
            .bind::<SqlUuid, _>(org)
    }
}

/// Takes the evaluation lock of every series in `keys` (one at a time across instances),
/// in one statement and in a fixed order, so two workers never wait on each other in a cycle.
pub async fn lock(conn: &mut AsyncPgConnection, keys: &[SeriesKey]) -> diesel::QueryResult<()> {
    let names: Vec<String> = keys
        .iter()
        .map(|k| format!("{}|{}|{}|{}", k.org, k.patient, k.instrument, k.rater))
        .collect();
    crate::db::Prepared::new(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 42)))
         FROM (SELECT unnest($1::text[]) AS k ORDER BY 1) AS keys",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(&names)
    .execute(conn)
    .await
    .map(|_| ())
}

pub fn rule_name(kind: RuptureRuleKind) -> &'static str {
    match kind {
        RuptureRuleKind::ReliableDrop => "reliable_drop",
        RuptureRuleKind::SdDrop => "sd_drop",
    }
}

/// Ruptures and reliable change of one series of totals, under one definition and norms.
/// Ruptures (only where the definition has a rupture rule) and reliable change, in the
/// instrument's direction, of one series of totals under one definition and norms.
pub fn series_statistics(
    totals: &[f64],
    definition: &InstrumentDefinition,
    norms: &NormsUsed,
) -> (Vec<RuptureFound>, Option<Change>) {
    let s_diff = norms.s_diff();
    let ruptures = definition
        .rupture
        .map(|rule| detect_ruptures(totals, &rule, s_diff))
        .unwrap_or_default();
    let change = totals
        .first()
        .zip(totals.last())
        .map(|(b, l)| assess_change(definition, *b, *l, s_diff));
    (ruptures, change)
}
