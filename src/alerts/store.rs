//! Alert rows. Every query filters by organisation.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::evaluate::SeriesPoint;
use super::model::{Alert, AlertQuery};
use crate::ids::OrgId;
use crate::responses::model::ResponseStatus;
use crate::schema::{alerts, responses};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = alerts)]
pub struct AlertRow {
    pub id: Uuid,
    pub seq: i64,
    pub kind: String,
    pub status: String,
    pub patient: String,
    pub clinician: Option<String>,
    pub episode: Option<String>,
    pub instrument_key: String,
    pub instrument_version: i32,
    pub rater: String,
    pub response_id: Uuid,
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub note: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by_response_id: Option<Uuid>,
}

impl From<AlertRow> for Alert {
    fn from(r: AlertRow) -> Self {
        Alert {
            id: r.id,
            kind: r.kind,
            status: r.status,
            patient: r.patient,
            clinician: r.clinician,
            episode: r.episode,
            instrument: r.instrument_key,
            instrument_version: r.instrument_version,
            rater: r.rater,
            response_id: r.response_id,
            detail: r.detail,
            created_at: r.created_at,
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
            note: r.note,
            resolved_at: r.resolved_at,
            resolved_by_response_id: r.resolved_by_response_id,
        }
    }
}

/// The series an event names: (organisation, patient, instrument, rater).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub org: OrgId,
    pub patient: String,
    pub instrument: String,
    pub rater: String,
}

/// The series' active, scored responses in time order (ties by insertion).
pub async fn series(conn: &mut AsyncPgConnection, key: &SeriesKey) -> QueryResult<Vec<SeriesPoint>> {
    type Row = (
        Uuid,
        i32,
        Option<String>,
        Option<String>,
        Option<f64>,
        Option<Vec<String>>,
        serde_json::Value,
    );
    let rows: Vec<Row> = responses::table
        .filter(responses::org_id.eq(key.org))
        .filter(responses::patient.eq(&key.patient))
        .filter(responses::instrument_key.eq(&key.instrument))
        .filter(responses::rater.eq(&key.rater))
        .filter(responses::status.eq(ResponseStatus::Active))
        .filter(responses::total.is_not_null())
        .select((
            responses::id,
            responses::instrument_version,
            responses::clinician,
            responses::episode,
            responses::total,
            responses::flags,
            responses::answers,
        ))
        .order((responses::administered_at.asc(), responses::seq.asc()))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, instrument_version, clinician, episode, total, flags, answers)| SeriesPoint {
                id,
                instrument_version,
                clinician,
                episode,
                total: total.unwrap_or_default(),
                flags: flags.unwrap_or_default(),
                answers,
            },
        )
        .collect())
}

/// One alert the series calls for, ready to upsert.
pub struct Upsert<'a> {
    pub fingerprint: &'a str,
    pub kind: &'a str,
    pub point: &'a SeriesPoint,
    pub detail: &'a serde_json::Value,
    pub resolved_by: Option<Uuid>,
}

/// An alert after its upsert, with the status it had before (None: it is new).
#[derive(Debug, QueryableByName)]
pub struct Upserted {
    #[diesel(embed)]
    pub alert: AlertRow,
    #[diesel(sql_type = Nullable<Text>)]
    pub previous_status: Option<String>,
}

impl Upserted {
    /// The webhook events this change is: `alert.created` for a new alert (or one that is
    /// back after being withdrawn), `alert.resolved` when it became resolved.
    pub fn events(&self) -> Vec<&'static str> {
        let now = self.alert.status.as_str();
        let mut events = Vec::new();
        match self.previous_status.as_deref() {
            None => events.push("alert.created"),
            Some("withdrawn") if now != "withdrawn" => events.push("alert.created"),
            _ => {}
        }
        if now == "resolved" && self.previous_status.as_deref() != Some("resolved") {
            events.push("alert.resolved");
        }
        events
    }
}

/// Brings one alert to what the series says: created open (or resolved), resolved when a
/// resolving point exists, re-opened when that point went away, and left alone otherwise
/// (acknowledgements stay). Applying the same state twice changes nothing.
pub async fn upsert(conn: &mut AsyncPgConnection, key: &SeriesKey, a: &Upsert<'_>) -> QueryResult<Upserted> {
    diesel::sql_query(
        "WITH before AS (SELECT status FROM alerts WHERE org_id = $1 AND fingerprint = $10)
         INSERT INTO alerts (org_id, id, kind, status, patient, clinician, episode, instrument_key,
            instrument_version, rater, response_id, fingerprint, detail, resolved_at, resolved_by_response_id)
         VALUES ($1, gen_random_uuid(), $2, CASE WHEN $12::uuid IS NULL THEN 'open' ELSE 'resolved' END, $3, $4, $5,
            $6, $7, $8, $9, $10, $11, CASE WHEN $12::uuid IS NULL THEN NULL ELSE now() END, $12)
         ON CONFLICT (org_id, fingerprint) DO UPDATE SET
            detail = EXCLUDED.detail,
            clinician = EXCLUDED.clinician,
            episode = EXCLUDED.episode,
            status = CASE
                WHEN EXCLUDED.resolved_by_response_id IS NOT NULL THEN
                    CASE WHEN alerts.status IN ('open', 'acknowledged', 'withdrawn') THEN 'resolved' ELSE alerts.status END
                WHEN alerts.status IN ('resolved', 'withdrawn') THEN
                    CASE WHEN alerts.acknowledged_at IS NULL THEN 'open' ELSE 'acknowledged' END
                ELSE alerts.status END,
            resolved_at = CASE
                WHEN EXCLUDED.resolved_by_response_id IS NULL THEN NULL
                WHEN alerts.resolved_by_response_id IS NOT DISTINCT FROM EXCLUDED.resolved_by_response_id
                    THEN alerts.resolved_at
                ELSE now() END,
            resolved_by_response_id = EXCLUDED.resolved_by_response_id
         RETURNING alerts.*, (SELECT status FROM before) AS previous_status",
    )
    .bind::<SqlUuid, _>(key.org)
    .bind::<Text, _>(a.kind)
    .bind::<Text, _>(&key.patient)
    .bind::<Nullable<Text>, _>(&a.point.clinician)
    .bind::<Nullable<Text>, _>(&a.point.episode)
    .bind::<Text, _>(&key.instrument)
    .bind::<diesel::sql_types::Int4, _>(a.point.instrument_version)
    .bind::<Text, _>(&key.rater)
    .bind::<SqlUuid, _>(a.point.id)
    .bind::<Text, _>(a.fingerprint)
    .bind::<Jsonb, _>(a.detail)
    .bind::<Nullable<SqlUuid>, _>(a.resolved_by)
    .get_result(conn)
    .await
}

/// Alerts of the series that it no longer calls for (their point was voided, or an earlier
/// change means the rule no longer fires) become `withdrawn`.
pub async fn withdraw_others(conn: &mut AsyncPgConnection, key: &SeriesKey, keep: &[String]) -> QueryResult<usize> {
    diesel::update(alerts::table)
        .filter(alerts::org_id.eq(key.org))
        .filter(alerts::patient.eq(&key.patient))
        .filter(alerts::instrument_key.eq(&key.instrument))
        .filter(alerts::rater.eq(&key.rater))
        .filter(alerts::status.ne("withdrawn"))
        .filter(alerts::fingerprint.ne_all(keep))
        .set(alerts::status.eq("withdrawn"))
        .execute(conn)
        .await
}

/// How many alerts (any status) the series has.
pub async fn count_in_series(conn: &mut AsyncPgConnection, key: &SeriesKey) -> QueryResult<i64> {
    alerts::table
        .filter(alerts::org_id.eq(key.org))
        .filter(alerts::patient.eq(&key.patient))
        .filter(alerts::instrument_key.eq(&key.instrument))
        .filter(alerts::rater.eq(&key.rater))
        .count()
        .get_result(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, id: Uuid) -> QueryResult<Option<AlertRow>> {
    alerts::table
        .filter(alerts::org_id.eq(org).and(alerts::id.eq(id)))
        .select(AlertRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    q: &AlertQuery,
    status: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    let mut query = alerts::table
        .filter(alerts::org_id.eq(org))
        .select(AlertRow::as_select())
        .order(alerts::seq.asc())
        .into_boxed();
    if let Some(s) = status {
        query = query.filter(alerts::status.eq(s.to_string()));
    }
    if let Some(v) = &q.kind {
        query = query.filter(alerts::kind.eq(v.clone()));
    }
    if let Some(v) = &q.patient {
        query = query.filter(alerts::patient.eq(v.clone()));
    }
    if let Some(v) = &q.clinician {
        query = query.filter(alerts::clinician.eq(v.clone()));
    }
    if let Some(v) = &q.instrument {
        query = query.filter(alerts::instrument_key.eq(v.clone()));
    }
    if let Some(v) = q.since {
        query = query.filter(alerts::created_at.ge(v));
    }
    if let Some(a) = after {
        query = query.filter(alerts::seq.gt(a));
    }
    query.limit(limit + 1).load(conn).await
}

/// Acknowledges an open alert (the first acknowledgement and its note are kept; again
/// changes nothing). `None` for an unknown id.
pub async fn acknowledge(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    id: Uuid,
    actor: &str,
    note: Option<&str>,
) -> QueryResult<Option<AlertRow>> {
    diesel::sql_query(
        "UPDATE alerts SET
            status = CASE WHEN status = 'open' THEN 'acknowledged' ELSE status END,
            acknowledged_at = COALESCE(acknowledged_at, now()),
            acknowledged_by = COALESCE(acknowledged_by, $3),
            note = COALESCE(note, $4)
         WHERE org_id = $1 AND id = $2
         RETURNING *",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(actor)
    .bind::<Nullable<Text>, _>(note)
    .get_result(conn)
    .await
    .optional()
}
