//! The kept expected-response models (one row per organisation, instrument key and rater),
//! the marks new, voided and erased responses leave for the next refit, and the courses a
//! fit reads. Every query names its organisation, except the refit worker's scan for marks.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::ids::OrgId;
use crate::schema::expected_models;
use crate::scoring::expected::{Coefficients, Fit, InForce, Model, Status};

/// A kept model: what its last fit wrote, and since when changes wait for the next.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = expected_models)]
pub struct ModelRow {
    #[diesel(embed)]
    pub fit: FitValues,
    pub dirty_since: Option<DateTime<Utc>>,
}

impl std::ops::Deref for ModelRow {
    type Target = FitValues;
    fn deref(&self) -> &FitValues {
        &self.fit
    }
}

impl FitValues {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::InsufficientData)
    }

    /// The fit, when the last fit produced one.
    pub fn in_force(&self) -> Option<InForce> {
        let (Some(intercept), Some(intake), Some(log_t), Some(intake_log_t), Some(sd), Some(at)) = (
            self.intercept,
            self.intake,
            self.log_t,
            self.intake_log_t,
            self.residual_sd,
            self.fitted_at,
        ) else {
            return None;
        };
        (self.status() == Status::Fitted).then_some(InForce {
            fit: Fit {
                coefficients: Coefficients {
                    intercept,
                    intake,
                    log_t,
                    intake_log_t,
                },
                residual_sd: sd,
            },
            fitted_at: at,
        })
    }
}

/// What a fit writes (everything but the change mark).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = expected_models, treat_none_as_null = true)]
pub struct FitValues {
    // The key is never in the update (Citus refuses any write to the distribution column).
    #[diesel(skip_update)]
    pub org_id: OrgId,
    #[diesel(skip_update)]
    pub instrument_key: String,
    #[diesel(skip_update)]
    pub rater: String,
    pub status: String,
    pub n_courses: i64,
    pub n_points: i64,
    pub intercept: Option<f64>,
    pub intake: Option<f64>,
    pub log_t: Option<f64>,
    pub intake_log_t: Option<f64>,
    pub residual_sd: Option<f64>,
    pub intake_p10: Option<f64>,
    pub intake_p50: Option<f64>,
    pub intake_p90: Option<f64>,
    pub fitted_at: Option<DateTime<Utc>>,
}

impl FitValues {
    /// What a fit made at `at` writes.
    pub fn of(org: OrgId, key: &str, rater: &str, model: &Model, at: DateTime<Utc>) -> FitValues {
        let c = model.fit.map(|f| f.coefficients);
        let p = model.intake_percentiles;
        FitValues {
            org_id: org,
            instrument_key: key.to_string(),
            rater: rater.to_string(),
            status: model.status.as_str().to_string(),
            n_courses: i64::try_from(model.n_courses).unwrap_or(i64::MAX),
            n_points: i64::try_from(model.n_points).unwrap_or(i64::MAX),
            intercept: c.map(|c| c.intercept),
            intake: c.map(|c| c.intake),
            log_t: c.map(|c| c.log_t),
            intake_log_t: c.map(|c| c.intake_log_t),
            residual_sd: model.fit.map(|f| f.residual_sd),
            intake_p10: p.map(|p| p[0]),
            intake_p50: p.map(|p| p[1]),
            intake_p90: p.map(|p| p[2]),
            fitted_at: Some(at),
        }
    }
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, key: &str, rater: &str) -> QueryResult<Option<ModelRow>> {
    expected_models::table
        .filter(expected_models::org_id.eq(org))
        .filter(expected_models::instrument_key.eq(key))
        .filter(expected_models::rater.eq(rater))
        .select(ModelRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Marks each (instrument key, rater) of `org` as changed since its last fit (the first mark
/// after a fit keeps its time). A model already marked is only read: outbox workers in
/// parallel never queue on its row.
pub async fn mark_changed(conn: &mut AsyncPgConnection, org: OrgId, keys: &[(String, String)]) -> QueryResult<()> {
    for (key, rater) in keys {
        let marked: Option<Option<DateTime<Utc>>> = expected_models::table
            .filter(expected_models::org_id.eq(org))
            .filter(expected_models::instrument_key.eq(key))
            .filter(expected_models::rater.eq(rater))
            .select(expected_models::dirty_since)
            .first(conn)
            .await
            .optional()?;
        if matches!(marked, Some(Some(_))) {
            continue;
        }
        diesel::insert_into(expected_models::table)
            .values((
                expected_models::org_id.eq(org),
                expected_models::instrument_key.eq(key),
                expected_models::rater.eq(rater),
                expected_models::status.eq(Status::InsufficientData.as_str()),
                expected_models::n_courses.eq(0i64),
                expected_models::n_points.eq(0i64),
                expected_models::dirty_since.eq(Utc::now()),
            ))
            .on_conflict((
                expected_models::org_id,
                expected_models::instrument_key,
                expected_models::rater,
            ))
            .do_update()
            // No now() here: Citus takes only immutable functions in DO UPDATE SET.
            .set(expected_models::dirty_since.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >(
                "coalesce(expected_models.dirty_since, excluded.dirty_since)"
            )))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Takes the change mark of a model (the refit about to run answers it; a change during the
/// fit marks it again).
pub async fn take_mark(conn: &mut AsyncPgConnection, org: OrgId, key: &str, rater: &str) -> QueryResult<()> {
    diesel::update(expected_models::table)
        .filter(expected_models::org_id.eq(org))
        .filter(expected_models::instrument_key.eq(key))
        .filter(expected_models::rater.eq(rater))
        .set(expected_models::dirty_since.eq(None::<DateTime<Utc>>))
        .execute(conn)
        .await?;
    Ok(())
}

/// Keeps a fit (a change mark made meanwhile stays).
pub async fn save(conn: &mut AsyncPgConnection, fitted: &FitValues) -> QueryResult<ModelRow> {
    diesel::insert_into(expected_models::table)
        .values(fitted)
        .on_conflict((
            expected_models::org_id,
            expected_models::instrument_key,
            expected_models::rater,
        ))
        .do_update()
        .set(fitted)
        .returning(ModelRow::as_returning())
        .get_result(conn)
        .await
}

/// Models with changes waiting, oldest mark first (the refit worker's scan, across
/// organisations).
pub async fn waiting(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<ModelRow>> {
    expected_models::table
        .filter(expected_models::dirty_since.is_not_null())
        .order(expected_models::dirty_since.asc())
        .limit(limit)
        .select(ModelRow::as_select())
        .load(conn)
        .await
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The number of courses (active scored series of one patient and episode with at least
/// three totals) of an instrument and rater: what the refit rule compares (it does not
/// look at instrument versions; the fit does).
pub async fn count_courses(conn: &mut AsyncPgConnection, org: OrgId, key: &str, rater: &str) -> QueryResult<i64> {
    diesel::sql_query(
        "SELECT count(*) AS n FROM (
             SELECT 1 FROM responses
             WHERE org_id = $1 AND instrument_key = $2 AND rater = $3 AND status = 'active' AND total IS NOT NULL
             GROUP BY patient, episode HAVING count(*) >= 3) c",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(key)
    .bind::<Text, _>(rater)
    .get_result::<Count>(conn)
    .await
    .map(|c| c.n)
}

/// One scored response of a course, as a fit reads it.
#[derive(Debug, Clone, QueryableByName)]
pub struct CourseRow {
    #[diesel(sql_type = Text)]
    pub patient: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub episode: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub instrument_version: i32,
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub total: f64,
}

/// Every active scored response of an instrument and rater, by course (patient, episode),
/// each course in time order (ties by creation).
pub async fn course_rows(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    key: &str,
    rater: &str,
) -> QueryResult<Vec<CourseRow>> {
    diesel::sql_query(
        "SELECT patient, episode, instrument_version, total::float8 AS total FROM responses
         WHERE org_id = $1 AND instrument_key = $2 AND rater = $3 AND status = 'active' AND total IS NOT NULL
         ORDER BY patient, episode NULLS FIRST, administered_at, seq",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(key)
    .bind::<Text, _>(rater)
    .load(conn)
    .await
}

/// The patients with a response of an instrument and rater (the series a refit evaluates).
pub async fn patients(conn: &mut AsyncPgConnection, org: OrgId, key: &str, rater: &str) -> QueryResult<Vec<String>> {
    use crate::schema::responses;
    responses::table
        .filter(responses::org_id.eq(org))
        .filter(responses::instrument_key.eq(key))
        .filter(responses::rater.eq(rater))
        .select(responses::patient)
        .distinct()
        .order(responses::patient)
        .load(conn)
        .await
}
