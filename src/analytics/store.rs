//! Analytics queries: the series in time order, grouped aggregates, the norms sample.
//! Every query filters by organisation and leaves out voided responses; only the patient's
//! series reads unscored ones (to show them apart from the points).

use crate::ids::OrgId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Int4, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::TrendQuery;
use crate::responses::model::ResponseStatus;
use crate::schema::responses;

#[derive(Debug, Queryable)]
pub struct SeriesRow {
    pub id: Uuid,
    pub administered_at: DateTime<Utc>,
    pub session: Option<i32>,
    pub clinician: Option<String>,
    pub instrument_version: i32,
    pub total: Option<f64>,
    pub mean: Option<f64>,
    pub pomp: Option<f64>,
    /// As its JSON text: read straight into the point's subscale scores.
    pub subscales: Option<crate::db::JsonText>,
    pub flags: Option<Vec<String>>,
    pub band: Option<String>,
    /// Why an unscored row has no score (then `total` is None).
    pub score_error: Option<String>,
    /// The course (episode) the response belongs to.
    pub episode: Option<String>,
}

/// One scored response of a patient's courses (what a point's position is counted on).
#[derive(Debug, Queryable)]
pub struct CoursePoint {
    pub id: Uuid,
    pub episode: Option<String>,
    pub instrument_version: i32,
    pub total: f64,
}

/// The patient's active scored responses of an instrument and rater in time order (ties by
/// creation), whatever a trend's filters.
pub async fn course_points(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    patient: &str,
    key: &str,
    rater: &str,
) -> QueryResult<Vec<CoursePoint>> {
    let rows: Vec<(Uuid, Option<String>, i32, Option<f64>)> = responses::table
        .filter(responses::org_id.eq(org))
        .filter(responses::patient.eq(patient))
        .filter(responses::instrument_key.eq(key))
        .filter(responses::rater.eq(rater))
        .filter(responses::status.eq(ResponseStatus::Active))
        .filter(responses::total.is_not_null())
        .order((responses::administered_at.asc(), responses::seq.asc()))
        .select((
            responses::id,
            responses::episode,
            responses::instrument_version,
            responses::total,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, episode, instrument_version, total)| {
            Some(CoursePoint {
                id,
                episode,
                instrument_version,
                total: total?,
            })
        })
        .collect())
}

pub async fn patient_has_data(conn: &mut AsyncPgConnection, org: OrgId, patient: &str) -> QueryResult<bool> {
    let found: Option<Uuid> = responses::table
        .filter(responses::org_id.eq(org).and(responses::patient.eq(patient)))
        .select(responses::id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// One patient's active series for one instrument and rater, scored and unscored, in time
/// order (ties in administered_at broken by insert order).
pub async fn series(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    patient: &str,
    rater: &str,
    q: &TrendQuery,
) -> QueryResult<Vec<SeriesRow>> {
    let mut query = responses::table
        .filter(responses::org_id.eq(org))
        .filter(responses::patient.eq(patient.to_string()))
        .filter(responses::instrument_key.eq(q.instrument.clone()))
        .filter(responses::rater.eq(rater.to_string()))
        .filter(responses::status.eq(ResponseStatus::Active))
        .select((
            responses::id,
            responses::administered_at,
            responses::session,
            responses::clinician,
            responses::instrument_version,
            responses::total,
            responses::mean,
            responses::pomp,
            responses::subscales,
            responses::flags,
            responses::band,
            responses::score_error,
            responses::episode,
        ))
        .order((responses::administered_at.asc(), responses::seq.asc()))
        .into_boxed();
    if let Some(c) = &q.clinician {
        query = query.filter(responses::clinician.eq(c.clone()));
    }
    if let Some(e) = &q.episode {
        query = query.filter(responses::episode.eq(e.clone()));
    }
    if let Some(v) = q.instrument_version {
        query = query.filter(responses::instrument_version.eq(v));
    }
    if let Some(from) = q.from {
        query = query.filter(responses::administered_at.ge(from));
    }
    if let Some(to) = q.to {
        query = query.filter(responses::administered_at.lt(to));
    }
    query.load(conn).await
}

/// One (clinician, patient) series of one instrument and rater: its totals in series order,
/// the latest instrument version, responses below the cut-off, and the sum and count of
/// session-3 totals.
#[derive(Debug, QueryableByName)]
pub struct ClinicianSeries {
    #[diesel(sql_type = Text)]
    pub clinician: String,
    #[diesel(sql_type = Text)]
    pub patient: String,
    #[diesel(sql_type = Array<Double>)]
    pub totals: Vec<f64>,
    #[diesel(sql_type = Int4)]
    pub instrument_version: i32,
    /// The instrument versions of its responses.
    #[diesel(sql_type = Array<Int4>)]
    pub versions: Vec<i32>,
    #[diesel(sql_type = BigInt)]
    pub below_cutoff: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub session3_sum: Option<f64>,
    #[diesel(sql_type = BigInt)]
    pub session3_count: i64,
}

/// The facts of one (clinician, patient) series as `clinician_series` keeps them, from
/// `responses` (one definition for the migration's backfill, the refresh and the read).
const SERIES_FACTS: &str = "array_agg(total ORDER BY administered_at, seq) AS totals,
       max(instrument_version) AS instrument_version,
       array_agg(DISTINCT instrument_version ORDER BY instrument_version) AS versions,
       count(*) FILTER (WHERE 'below_cutoff' = ANY(flags)) AS below_cutoff,
       sum(total) FILTER (WHERE session = 3) AS session3_sum,
       count(*) FILTER (WHERE session = 3) AS session3_count";

/// Every (clinician, patient) series, in no particular order. Series whose
/// events the outbox has processed come from `clinician_series`, the others (pending
/// events) from `responses`; one statement, so one snapshot sees each series exactly once.
/// With `only`, just those instrument versions count: a kept series holding another version
/// is recomputed from `responses` with the allowed ones (one scale per series).
pub async fn clinician_series(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    key: &str,
    rater: &str,
    clinician: Option<&str>,
    only: Option<&[i32]>,
) -> QueryResult<Vec<ClinicianSeries>> {
    crate::db::Prepared::new(format!(
        "WITH pending AS (
             SELECT DISTINCT patient FROM outbox_events
             WHERE org_id = $1 AND instrument_key = $2 AND rater = $3 AND processed_at IS NULL),
         mixed AS (
             SELECT clinician, patient FROM clinician_series
             WHERE org_id = $1 AND instrument_key = $2 AND rater = $3 AND ($4::text IS NULL OR clinician = $4)
               AND $5::int4[] IS NOT NULL AND NOT versions <@ $5::int4[])
         SELECT clinician, patient, totals, instrument_version, versions, below_cutoff, session3_sum, session3_count
         FROM clinician_series
         WHERE org_id = $1 AND instrument_key = $2 AND rater = $3 AND ($4::text IS NULL OR clinician = $4)
           AND patient NOT IN (SELECT patient FROM pending)
           AND ($5::int4[] IS NULL OR versions <@ $5::int4[])
         UNION ALL
         SELECT clinician, patient, {SERIES_FACTS}
         FROM responses
         WHERE org_id = $1 AND instrument_key = $2 AND rater = $3 AND status = 'active'
           AND total IS NOT NULL AND clinician IS NOT NULL AND ($4::text IS NULL OR clinician = $4)
           AND ($5::int4[] IS NULL OR instrument_version = ANY($5::int4[]))
           AND (patient IN (SELECT patient FROM pending)
                OR (clinician, patient) IN (SELECT clinician, patient FROM mixed))
         GROUP BY clinician, patient"
    ))
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(key)
    .bind::<Text, _>(rater)
    .bind::<Nullable<Text>, _>(clinician)
    .bind::<Nullable<Array<Int4>>, _>(only)
    .load(conn)
    .await
}

/// Replaces the `clinician_series` rows of these series (one organisation's) with `kept`,
/// their facts as the outbox worker computed them from the points it read
/// (`kept_series::facts_of`): two statements for the whole batch, and no aggregate over
/// `responses`. The caller holds the series' evaluation locks.
pub async fn replace_clinician_series(
    conn: &mut AsyncPgConnection,
    keys: &[crate::series::SeriesKey],
    kept: &[(&crate::series::SeriesKey, super::kept_series::KeptFacts)],
) -> QueryResult<()> {
    let arrays = crate::series::SeriesArrays::of(keys);
    arrays
        .query(
            "DELETE FROM clinician_series c
             USING unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS k(org_id, patient, instrument_key, rater)
             WHERE c.org_id = $5 AND c.org_id = k.org_id AND c.patient = k.patient AND c.instrument_key = k.instrument_key
               AND c.rater = k.rater",
        )
        .execute(conn)
        .await?;
    let Some((first, _)) = kept.first() else {
        return Ok(());
    };
    // Jagged arrays (totals, versions) travel flat, each row naming its 1-based slice.
    let mut rows = KeptArrays::default();
    for (key, facts) in kept {
        rows.push(key, facts);
    }
    crate::db::Prepared::new(
        "INSERT INTO clinician_series (org_id, instrument_key, rater, clinician, patient, totals,
             instrument_version, versions, below_cutoff, session3_sum, session3_count)
         SELECT $1, k.instrument_key, k.rater, k.clinician, k.patient, ($10::float8[])[k.t_from:k.t_to],
             k.instrument_version, ($11::int4[])[k.v_from:k.v_to], k.below_cutoff, k.session3_sum, k.session3_count
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::int8[], $8::float8[],
                     $9::int8[], $12::int4[], $13::int4[], $14::int4[], $15::int4[])
              AS k(patient, instrument_key, rater, clinician, instrument_version, below_cutoff, session3_sum,
                   session3_count, t_from, t_to, v_from, v_to)",
    )
    .bind::<SqlUuid, _>(first.org)
    .bind::<Array<Text>, _>(&rows.patients)
    .bind::<Array<Text>, _>(&rows.instruments)
    .bind::<Array<Text>, _>(&rows.raters)
    .bind::<Array<Text>, _>(&rows.clinicians)
    .bind::<Array<Int4>, _>(&rows.instrument_versions)
    .bind::<Array<BigInt>, _>(&rows.below_cutoff)
    .bind::<Array<Nullable<Double>>, _>(&rows.session3_sum)
    .bind::<Array<BigInt>, _>(&rows.session3_count)
    .bind::<Array<Double>, _>(&rows.totals)
    .bind::<Array<Int4>, _>(&rows.versions)
    .bind::<Array<Int4>, _>(&rows.t_from)
    .bind::<Array<Int4>, _>(&rows.t_to)
    .bind::<Array<Int4>, _>(&rows.v_from)
    .bind::<Array<Int4>, _>(&rows.v_to)
    .execute(conn)
    .await?;
    Ok(())
}

/// `clinician_series` rows as parallel arrays, for one INSERT.
#[derive(Default)]
struct KeptArrays<'a> {
    patients: Vec<&'a str>,
    instruments: Vec<&'a str>,
    raters: Vec<&'a str>,
    clinicians: Vec<&'a str>,
    instrument_versions: Vec<i32>,
    below_cutoff: Vec<i64>,
    session3_sum: Vec<Option<f64>>,
    session3_count: Vec<i64>,
    totals: Vec<f64>,
    versions: Vec<i32>,
    t_from: Vec<i32>,
    t_to: Vec<i32>,
    v_from: Vec<i32>,
    v_to: Vec<i32>,
}

impl<'a> KeptArrays<'a> {
    fn push(&mut self, key: &'a crate::series::SeriesKey, f: &'a super::kept_series::KeptFacts) {
        // The 1-based, inclusive bounds of the slice `values` adds to `flat`.
        fn slice<T: Copy>(flat: &mut Vec<T>, values: &[T]) -> (i32, i32) {
            let from = flat.len() + 1;
            flat.extend_from_slice(values);
            (
                i32::try_from(from).unwrap_or(i32::MAX),
                i32::try_from(flat.len()).unwrap_or(i32::MAX),
            )
        }
        self.patients.push(&key.patient);
        self.instruments.push(&key.instrument);
        self.raters.push(&key.rater);
        self.clinicians.push(&f.clinician);
        self.instrument_versions.push(f.instrument_version);
        self.below_cutoff.push(f.below_cutoff);
        self.session3_sum.push(f.session3_sum);
        self.session3_count.push(f.session3_count);
        let (from, to) = slice(&mut self.totals, &f.totals);
        self.t_from.push(from);
        self.t_to.push(to);
        let (from, to) = slice(&mut self.versions, &f.versions);
        self.v_from.push(from);
        self.v_to.push(to);
    }
}

#[derive(Debug, QueryableByName)]
pub struct SessionAggregate {
    #[diesel(sql_type = Int4)]
    pub session: i32,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    #[diesel(sql_type = Double)]
    pub mean: f64,
    #[diesel(sql_type = Nullable<Double>)]
    pub sd: Option<f64>,
}

pub async fn session_aggregates(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    key: &str,
    rater: &str,
    clinician: Option<&str>,
) -> QueryResult<Vec<SessionAggregate>> {
    crate::db::Prepared::new(
        "SELECT session, count(*) AS n, avg(total) AS mean, stddev_samp(total) AS sd
         FROM responses
         WHERE org_id = $1 AND instrument_key = $2 AND rater = $3 AND status = 'active'
           AND total IS NOT NULL AND session IS NOT NULL AND ($4::text IS NULL OR clinician = $4)
         GROUP BY session
         ORDER BY session",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(key)
    .bind::<Text, _>(rater)
    .bind::<Nullable<Text>, _>(clinician)
    .load(conn)
    .await
}

/// A series of the patient with a scored, active response administered at or after
/// `since`: its instrument, rater, and the version and time of its latest such response.
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct RecentSeries {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub instrument_key: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub rater: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub instrument_version: i32,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub administered_at: chrono::DateTime<chrono::Utc>,
}

/// The patient's series scored since `since`, latest first.
pub async fn recent_series(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    patient: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> QueryResult<Vec<RecentSeries>> {
    use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
    crate::db::Prepared::new(
        "SELECT * FROM (
             SELECT DISTINCT ON (instrument_key, rater) instrument_key, rater, instrument_version, administered_at
             FROM responses
             WHERE org_id = $1 AND patient = $2 AND status = 'active' AND total IS NOT NULL
               AND administered_at >= $3
             ORDER BY instrument_key, rater, administered_at DESC, seq DESC) AS latest
         ORDER BY administered_at DESC",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(patient)
    .bind::<Timestamptz, _>(since)
    .load(conn)
    .await
}
