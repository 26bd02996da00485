//! Alert rows. Every query filters by organisation.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::evaluate::SeriesPoint;
use super::model::{Alert, AlertQuery};
use crate::ids::{AlertId, OrgId};
use crate::schema::alerts;
use crate::series::{SeriesArrays, SeriesKey};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = alerts)]
pub struct AlertRow {
    pub id: Uuid,
    pub seq: i64,
    pub kind: super::model::AlertKind,
    pub status: super::model::AlertStatus,
    pub patient: String,
    pub clinician: Option<String>,
    pub episode: Option<String>,
    pub instrument_key: String,
    pub instrument_version: i32,
    #[diesel(deserialize_as = crate::db::StoredRater)]
    pub rater: crate::scoring::Rater,
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

/// An alert a series already holds, as far as an upsert would change it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Held {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ord: i64,
    #[diesel(sql_type = Text)]
    pub fingerprint: String,
    #[diesel(sql_type = Text)]
    pub status: super::model::AlertStatus,
    #[diesel(sql_type = Nullable<Text>)]
    pub clinician: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub episode: Option<String>,
    #[diesel(sql_type = Jsonb)]
    pub detail: serde_json::Value,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub resolved_by_response_id: Option<Uuid>,
}

impl Held {
    /// Whether upserting `a` would leave this alert as it is (then it needs no write).
    pub fn unchanged_by(&self, a: &Upsert<'_>) -> bool {
        use super::model::AlertStatus::{Acknowledged, Open, Resolved};
        let status_kept = matches!(
            (a.resolved_by, self.status),
            (Some(_), Resolved) | (None, Open | Acknowledged)
        );
        status_kept
            && self.resolved_by_response_id == a.resolved_by
            && self.clinician == a.point.clinician
            && self.episode == a.point.episode
            && &self.detail == a.detail
    }
}

/// The alerts each series of `keys` (one organisation's) holds, in the order of `keys`.
/// One statement for the whole batch.
pub async fn held_many(conn: &mut AsyncPgConnection, keys: &[SeriesKey]) -> QueryResult<Vec<Vec<Held>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let held: Vec<Held> = SeriesArrays::of(keys)
        .query(
            "SELECT s.ord, a.fingerprint, a.status, a.clinician, a.episode, a.detail, a.resolved_by_response_id
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                  AS s(org_id, patient, instrument_key, rater, ord)
             JOIN alerts a ON a.org_id = s.org_id AND a.patient = s.patient
                AND a.instrument_key = s.instrument_key AND a.rater = s.rater
             WHERE a.org_id = $5",
        )
        .load(conn)
        .await?;
    Ok(crate::series::by_series(
        keys.len(),
        held.into_iter().map(|h| (h.ord, h)),
    ))
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
#[derive(Debug)]
pub struct Upserted {
    pub alert: AlertRow,
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
///
/// The status before is read first, in the same transaction (the caller holds the series'
/// evaluation lock): Citus takes no subquery in an INSERT.
pub async fn upsert(conn: &mut AsyncPgConnection, key: &SeriesKey, a: &Upsert<'_>) -> QueryResult<Upserted> {
    let previous_status: Option<String> = alerts::table
        .filter(alerts::org_id.eq(key.org))
        .filter(alerts::fingerprint.eq(a.fingerprint))
        .select(alerts::status)
        .first::<super::model::AlertStatus>(conn)
        .await
        .optional()?
        .map(|status| status.as_str().to_string());
    let alert: AlertRow = crate::db::Prepared::new(
        "INSERT INTO alerts (org_id, id, kind, status, patient, clinician, episode, instrument_key,
            instrument_version, rater, response_id, fingerprint, detail, resolved_at, resolved_by_response_id)
         VALUES ($1, gen_random_uuid(), $2, CASE WHEN $12::uuid IS NULL THEN 'open' ELSE 'resolved' END, $3, $4, $5,
            $6, $7, $8, $9, $10, $11, CASE WHEN $12::uuid IS NULL THEN NULL ELSE $13 END, $12)
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
                ELSE $13 END,
            resolved_by_response_id = EXCLUDED.resolved_by_response_id
         RETURNING alerts.*",
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
    // The time as a value, not `now()`: Citus takes only immutable functions in DO UPDATE.
    .bind::<diesel::sql_types::Timestamptz, _>(chrono::Utc::now())
    .get_result(conn)
    .await?;
    Ok(Upserted { alert, previous_status })
}

/// Alerts of the series that it no longer calls for (their point was voided, or an earlier
/// change means the rule no longer fires) become `withdrawn`.
pub async fn withdraw_others(conn: &mut AsyncPgConnection, key: &SeriesKey, keep: &[String]) -> QueryResult<usize> {
    diesel::update(alerts::table)
        .filter(alerts::org_id.eq(key.org))
        .filter(alerts::patient.eq(&key.patient))
        .filter(alerts::instrument_key.eq(&key.instrument))
        .filter(alerts::rater.eq(&key.rater))
        .filter(alerts::status.ne(super::model::AlertStatus::Withdrawn))
        .filter(alerts::fingerprint.ne_all(keep))
        .set(alerts::status.eq(super::model::AlertStatus::Withdrawn))
        .execute(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, id: AlertId) -> QueryResult<Option<AlertRow>> {
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
    status: Option<super::model::AlertStatus>,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    let mut query = alerts::table
        .filter(alerts::org_id.eq(org))
        .select(AlertRow::as_select())
        // Newest first: a new safety flag is on the first page.
        .order(alerts::seq.desc())
        .into_boxed();
    if let Some(s) = status {
        query = query.filter(alerts::status.eq(s));
    }
    if let Some(v) = q.kind.as_deref().and_then(super::model::AlertKind::parse) {
        query = query.filter(alerts::kind.eq(v));
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
        query = query.filter(alerts::seq.lt(a));
    }
    query.limit(limit + 1).load(conn).await
}

/// Acknowledges an open alert (the first acknowledgement and its note are kept; again
/// changes nothing). `None` for an unknown id.
pub async fn acknowledge(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    id: AlertId,
    actor: &str,
    note: Option<&str>,
) -> QueryResult<Option<AlertRow>> {
    crate::db::Prepared::new(
        "UPDATE alerts SET
            status = CASE WHEN status = 'open' THEN 'acknowledged' ELSE status END,
            acknowledged_at = COALESCE(acknowledged_at, $5),
            acknowledged_by = COALESCE(acknowledged_by, $3),
            note = COALESCE(note, $4)
         WHERE org_id = $1 AND id = $2
         RETURNING *",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(actor)
    .bind::<Nullable<Text>, _>(note)
    // The time as a value: Citus takes no `now()` inside COALESCE in an UPDATE.
    .bind::<diesel::sql_types::Timestamptz, _>(chrono::Utc::now())
    .get_result(conn)
    .await
    .optional()
}

/// The patient's open alerts (what a CDS card shows), newest first.
pub async fn open_for_patient(conn: &mut AsyncPgConnection, org: OrgId, patient: &str) -> QueryResult<Vec<AlertRow>> {
    alerts::table
        .filter(alerts::org_id.eq(org))
        .filter(alerts::patient.eq(patient))
        .filter(alerts::status.eq(super::model::AlertStatus::Open))
        .select(AlertRow::as_select())
        .order(alerts::seq.desc())
        .load(conn)
        .await
}
