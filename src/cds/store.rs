//! CDS clients and the global issuer directory, used JWT ids, issued cards and feedback.
//! Every query names its organisation, except the directory lookup a JWT's issuer needs.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{CardFeedback, CdsClient};
use crate::ids::OrgId;
use crate::schema::{cds_cards, cds_clients, cds_feedback, cds_issuer_directory};

/// How long an issued card can receive feedback.
pub const CARD_RETENTION_DAYS: i64 = 90;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cds_clients)]
pub struct CdsClientRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub description: String,
    pub ehr_connection_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<CdsClientRow> for CdsClient {
    fn from(r: CdsClientRow) -> Self {
        CdsClient {
            id: r.id,
            issuer: r.issuer,
            jwks_uri: r.jwks_uri,
            jwks: r.jwks,
            description: r.description,
            ehr_connection_id: r.ehr_connection_id,
            created_at: r.created_at,
        }
    }
}

/// A client to register (already checked).
pub struct NewRow<'a> {
    pub issuer: &'a str,
    pub jwks_uri: Option<&'a str>,
    pub jwks: Option<&'a serde_json::Value>,
    pub description: &'a str,
    pub ehr_connection_id: Option<Uuid>,
}

/// Registers a client; `None` when any organisation already has its issuer.
pub async fn create(conn: &mut AsyncPgConnection, org: OrgId, new: &NewRow<'_>) -> QueryResult<Option<CdsClientRow>> {
    let id = Uuid::new_v4();
    let claimed = diesel::insert_into(cds_issuer_directory::table)
        .values((
            cds_issuer_directory::issuer.eq(new.issuer),
            cds_issuer_directory::org_id.eq(org),
            cds_issuer_directory::cds_client_id.eq(id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if claimed == 0 {
        return Ok(None);
    }
    diesel::insert_into(cds_clients::table)
        .values((
            cds_clients::org_id.eq(org),
            cds_clients::id.eq(id),
            cds_clients::issuer.eq(new.issuer),
            cds_clients::jwks_uri.eq(new.jwks_uri),
            cds_clients::jwks.eq(new.jwks),
            cds_clients::description.eq(new.description),
            cds_clients::ehr_connection_id.eq(new.ehr_connection_id),
        ))
        .returning(CdsClientRow::as_returning())
        .get_result(conn)
        .await
        .map(Some)
}

pub async fn list(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<Vec<CdsClientRow>> {
    cds_clients::table
        .filter(cds_clients::org_id.eq(org))
        .select(CdsClientRow::as_select())
        .order((cds_clients::created_at.asc(), cds_clients::id.asc()))
        .load(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, id: Uuid) -> QueryResult<Option<CdsClientRow>> {
    cds_clients::table
        .filter(cds_clients::org_id.eq(org).and(cds_clients::id.eq(id)))
        .select(CdsClientRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Deletes a client and frees its issuer; the deleted row, or `None`.
pub async fn delete(conn: &mut AsyncPgConnection, org: OrgId, id: Uuid) -> QueryResult<Option<CdsClientRow>> {
    let Some(row) = diesel::delete(cds_clients::table)
        .filter(cds_clients::org_id.eq(org).and(cds_clients::id.eq(id)))
        .returning(CdsClientRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    diesel::delete(cds_issuer_directory::table)
        .filter(cds_issuer_directory::issuer.eq(&row.issuer))
        .filter(cds_issuer_directory::org_id.eq(org))
        .execute(conn)
        .await?;
    Ok(Some(row))
}

/// The client whose issuer this is, in whichever organisation registered it.
pub async fn find_by_issuer(conn: &mut AsyncPgConnection, issuer: &str) -> QueryResult<Option<CdsClientRow>> {
    let owner: Option<(Uuid, Uuid)> = cds_issuer_directory::table
        .filter(cds_issuer_directory::issuer.eq(issuer))
        .select((cds_issuer_directory::org_id, cds_issuer_directory::cds_client_id))
        .first(conn)
        .await
        .optional()?;
    let Some((org, id)) = owner else { return Ok(None) };
    find(conn, OrgId(org), id).await
}

/// Records a JWT id of `issuer` until `expires_at`; false when it was seen before. The
/// organisation's expired ids go in the same statement.
pub async fn remember_jti(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    issuer: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Fresh {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let fresh: Fresh = crate::db::Prepared::new(
        "WITH swept AS (
             DELETE FROM cds_jtis WHERE org_id = $1 AND expires_at < $5),
         kept AS (
             INSERT INTO cds_jtis (org_id, issuer, jti, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING
             RETURNING 1)
         SELECT count(*) AS n FROM kept",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<Text, _>(issuer)
    .bind::<Text, _>(jti)
    .bind::<Timestamptz, _>(expires_at)
    .bind::<Timestamptz, _>(Utc::now() - chrono::Duration::minutes(1))
    .get_result(conn)
    .await?;
    Ok(fresh.n == 1)
}

/// A card as kept: which service issued it, about whom, carrying which alerts.
pub struct IssuedCard {
    pub id: Uuid,
    pub alert_ids: Vec<Uuid>,
}

/// Keeps the cards of one answer (and sweeps the organisation's cards older than 90 days).
pub async fn keep_cards(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    service: &str,
    patient: &str,
    cards: &[IssuedCard],
) -> QueryResult<()> {
    if cards.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    diesel::delete(cds_cards::table)
        .filter(cds_cards::org_id.eq(org))
        .filter(cds_cards::issued_at.lt(now - chrono::Duration::days(CARD_RETENTION_DAYS)))
        .execute(conn)
        .await?;
    let rows: Vec<_> = cards
        .iter()
        .map(|c| {
            (
                cds_cards::org_id.eq(org),
                cds_cards::id.eq(c.id),
                cds_cards::service.eq(service),
                cds_cards::patient.eq(patient),
                cds_cards::alert_ids.eq(&c.alert_ids),
                cds_cards::issued_at.eq(now),
            )
        })
        .collect();
    diesel::insert_into(cds_cards::table)
        .values(rows)
        .execute(conn)
        .await
        .map(|_| ())
}

/// One feedback item, read from the CDS client's body.
pub struct NewFeedback {
    pub card: Uuid,
    pub outcome: String,
    pub outcome_timestamp: DateTime<Utc>,
    pub override_reason: Option<serde_json::Value>,
}

/// Keeps the items naming a card this organisation's `service` issued (within 90 days);
/// the ids of the cards they named, one per item kept.
pub async fn keep_feedback(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    service: &str,
    items: &[NewFeedback],
) -> QueryResult<Vec<Uuid>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = items.iter().map(|i| i.card).collect();
    let cards: Vec<(Uuid, String, Vec<Uuid>)> = cds_cards::table
        .filter(cds_cards::org_id.eq(org))
        .filter(cds_cards::service.eq(service))
        .filter(cds_cards::id.eq_any(&ids))
        .filter(cds_cards::issued_at.ge(Utc::now() - chrono::Duration::days(CARD_RETENTION_DAYS)))
        .select((cds_cards::id, cds_cards::patient, cds_cards::alert_ids))
        .load(conn)
        .await?;
    let mut kept = Vec::new();
    let mut rows = Vec::new();
    for item in items {
        let Some((card, patient, alerts)) = cards.iter().find(|(id, _, _)| *id == item.card) else {
            continue;
        };
        kept.push(*card);
        rows.push((
            cds_feedback::org_id.eq(org),
            cds_feedback::id.eq(Uuid::new_v4()),
            cds_feedback::card_id.eq(*card),
            cds_feedback::service.eq(service),
            cds_feedback::patient.eq(patient.clone()),
            cds_feedback::alert_ids.eq(alerts.clone()),
            cds_feedback::outcome.eq(item.outcome.clone()),
            cds_feedback::outcome_timestamp.eq(item.outcome_timestamp),
            cds_feedback::override_reason.eq(item.override_reason.clone()),
        ));
    }
    if !rows.is_empty() {
        diesel::insert_into(cds_feedback::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    Ok(kept)
}

/// The feedback on cards that carried `alert`, oldest first (then by the clinician's time).
pub async fn feedback_for_alert(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    alert: Uuid,
) -> QueryResult<Vec<CardFeedback>> {
    cds_feedback::table
        .filter(cds_feedback::org_id.eq(org))
        .filter(cds_feedback::alert_ids.contains(vec![alert]))
        .order((
            cds_feedback::received_at.asc(),
            cds_feedback::outcome_timestamp.asc(),
            cds_feedback::id.asc(),
        ))
        .select((
            cds_feedback::outcome,
            cds_feedback::outcome_timestamp,
            cds_feedback::override_reason,
            cds_feedback::received_at,
        ))
        .load(conn)
        .await
}
