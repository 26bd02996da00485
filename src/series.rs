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

/// One point of a series: an active response in time order that is scored or carries a
/// flag (an unscored response's item flags raise their alerts all the same).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    pub id: Uuid,
    pub instrument_version: i32,
    pub clinician: Option<String>,
    pub episode: Option<String>,
    pub session: Option<i32>,
    /// None for an unscored response: it takes part in item flags only.
    pub total: Option<f64>,
    pub flags: Vec<String>,
    /// The answers of a point that carries a flag (an item flag's alert quotes its answer);
    /// `Null` for the others, which are most points and need no JSON read or parsed.
    pub answers: serde_json::Value,
}

/// The points of every series in `keys` (one organisation's), in the order of `keys`: its
/// active responses that are scored or carry a flag, in time order (ties by insertion).
/// One statement for the whole batch, whatever its size. The outbox worker reads them once
/// per batch and every consumer works from them.
pub async fn points_many(
    conn: &mut AsyncPgConnection,
    keys: &[SeriesKey],
) -> diesel::QueryResult<Vec<Vec<SeriesPoint>>> {
    use diesel::sql_types::{Array, BigInt, Double, Int4, Jsonb, Nullable};
    #[derive(diesel::QueryableByName)]
    struct Point {
        #[diesel(sql_type = BigInt)]
        ord: i64,
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = Int4)]
        instrument_version: i32,
        #[diesel(sql_type = Nullable<Text>)]
        clinician: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        episode: Option<String>,
        #[diesel(sql_type = Nullable<Int4>)]
        session: Option<i32>,
        #[diesel(sql_type = Nullable<Double>)]
        total: Option<f64>,
        #[diesel(sql_type = Nullable<Array<Text>>)]
        flags: Option<Vec<String>>,
        #[diesel(sql_type = Jsonb)]
        answers: serde_json::Value,
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let points: Vec<Point> = SeriesArrays::of(keys)
        .query(
            "SELECT s.ord, r.id, r.instrument_version, r.clinician, r.episode, r.session, r.total, r.flags,
                    CASE WHEN cardinality(r.flags) > 0 THEN r.answers ELSE 'null'::jsonb END AS answers
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                  AS s(org_id, patient, instrument_key, rater, ord)
             JOIN responses r ON r.org_id = s.org_id AND r.patient = s.patient
                AND r.instrument_key = s.instrument_key AND r.rater = s.rater
             WHERE r.org_id = $5 AND r.status = 'active' AND (r.total IS NOT NULL OR cardinality(r.flags) > 0)
             ORDER BY s.ord, r.administered_at, r.seq",
        )
        .load(conn)
        .await?;
    Ok(by_series(
        keys.len(),
        points.into_iter().map(|p| {
            let point = SeriesPoint {
                id: p.id,
                instrument_version: p.instrument_version,
                clinician: p.clinician,
                episode: p.episode,
                session: p.session,
                total: p.total,
                flags: p.flags.unwrap_or_default(),
                answers: p.answers,
            };
            (p.ord, point)
        }),
    ))
}

/// The rows of a batch statement, each tagged with its series' `ord` (1-based over the
/// `n` keys, as `WITH ORDINALITY` numbers them), as one list per series in key order.
pub fn by_series<T>(n: usize, rows: impl IntoIterator<Item = (i64, T)>) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (ord, row) in rows {
        if let Some(series) = usize::try_from(ord - 1).ok().and_then(|i| out.get_mut(i)) {
            series.push(row);
        }
    }
    out
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
