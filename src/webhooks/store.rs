//! Webhook endpoint and delivery rows. Every request-path query filters by organisation;
//! the delivery workers' claim is the one query over all organisations (as the outbox's).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{Delivery, Webhook};
use crate::ids::{OrgId, WebhookId};
use crate::schema::{webhook_deliveries, webhook_endpoints};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointRow {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub payload: String,
    pub status: String,
    pub secret: String,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<EndpointRow> for Webhook {
    fn from(r: EndpointRow) -> Self {
        Webhook {
            id: r.id,
            url: r.url,
            events: r.events,
            description: r.description,
            payload: r.payload,
            status: r.status,
            created_at: r.created_at,
            previous_secret_expires_at: r.previous_secret_expires_at.filter(|t| *t > Utc::now()),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub seq: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Delivery {
            id: r.id,
            event_id: r.event_id,
            next_attempt_at: (r.status == "pending").then_some(r.next_attempt_at),
            event_type: r.event_type,
            status: r.status,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        }
    }
}

pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub events: &'a [String],
    pub description: Option<&'a str>,
    pub payload: &'a str,
    pub secret: &'a str,
}

pub async fn create(conn: &mut AsyncPgConnection, org: OrgId, new: &NewEndpoint<'_>) -> QueryResult<EndpointRow> {
    diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::org_id.eq(org),
            webhook_endpoints::id.eq(Uuid::new_v4()),
            webhook_endpoints::url.eq(new.url),
            webhook_endpoints::events.eq(new.events),
            webhook_endpoints::description.eq(new.description),
            webhook_endpoints::payload.eq(new.payload),
            webhook_endpoints::secret.eq(new.secret),
        ))
        .returning(EndpointRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn list(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<Vec<EndpointRow>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::org_id.eq(org))
        .order(webhook_endpoints::created_at.asc())
        .select(EndpointRow::as_select())
        .load(conn)
        .await
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, id: WebhookId) -> QueryResult<Option<EndpointRow>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::org_id.eq(org).and(webhook_endpoints::id.eq(id)))
        .select(EndpointRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Deletes an endpoint and its deliveries; false for an unknown id.
pub async fn delete(conn: &mut AsyncPgConnection, org: OrgId, id: WebhookId) -> QueryResult<bool> {
    let n = diesel::delete(webhook_endpoints::table)
        .filter(webhook_endpoints::org_id.eq(org).and(webhook_endpoints::id.eq(id)))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Makes `secret` the current one; the replaced secret keeps signing for `overlap`.
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    id: WebhookId,
    secret: &str,
    overlap: std::time::Duration,
) -> QueryResult<Option<EndpointRow>> {
    crate::db::Prepared::new(
        "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
            previous_secret_expires_at = now() + make_interval(secs => $4)
         WHERE org_id = $1 AND id = $2",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(secret)
    .bind::<Double, _>(overlap.as_secs_f64())
    .execute(conn)
    .await?;
    find(conn, org, id).await
}

/// The organisation's active endpoints (the subscribers of its events).
pub async fn active(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<Vec<EndpointRow>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::org_id.eq(org))
        .filter(webhook_endpoints::status.eq("active"))
        .select(EndpointRow::as_select())
        .load(conn)
        .await
}

/// One message to queue: its endpoint, event and exact body.
pub struct NewDelivery {
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub body: String,
}

/// Queues messages (one statement); a message already queued for that endpoint and event
/// is left as it is.
pub async fn queue(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    deliveries: Vec<NewDelivery>,
) -> QueryResult<Vec<DeliveryRow>> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<_> = deliveries
        .into_iter()
        .map(|d| {
            (
                webhook_deliveries::org_id.eq(org),
                webhook_deliveries::id.eq(Uuid::new_v4()),
                webhook_deliveries::endpoint_id.eq(d.endpoint_id),
                webhook_deliveries::event_id.eq(d.event_id),
                webhook_deliveries::event_type.eq(d.event_type),
                webhook_deliveries::body.eq(d.body),
            )
        })
        .collect();
    diesel::insert_into(webhook_deliveries::table)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(DeliveryRow::as_returning())
        .get_results(conn)
        .await
}

/// The endpoint's deliveries, newest first; `before` is the last seen sequence number.
pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    endpoint: Uuid,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let mut query = webhook_deliveries::table
        .filter(webhook_deliveries::org_id.eq(org))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .select(DeliveryRow::as_select())
        .order(webhook_deliveries::seq.desc())
        .into_boxed();
    if let Some(s) = status {
        query = query.filter(webhook_deliveries::status.eq(s.to_string()));
    }
    if let Some(b) = before {
        query = query.filter(webhook_deliveries::seq.lt(b));
    }
    query.limit(limit + 1).load(conn).await
}

pub async fn find_delivery(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    endpoint: Uuid,
    id: Uuid,
) -> QueryResult<Option<DeliveryRow>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::org_id.eq(org))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .filter(webhook_deliveries::id.eq(id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A failed delivery goes back to pending, due now; `None` when it is not failed.
pub async fn retry(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    endpoint: Uuid,
    id: Uuid,
) -> QueryResult<Option<DeliveryRow>> {
    diesel::update(webhook_deliveries::table)
        .filter(webhook_deliveries::org_id.eq(org))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .filter(webhook_deliveries::id.eq(id))
        .filter(webhook_deliveries::status.eq("failed"))
        .set((
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::next_attempt_at.eq(Utc::now()),
        ))
        .returning(DeliveryRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// A delivery a worker took: what it needs to sign and send one attempt.
#[derive(Debug, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    pub org_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub endpoint_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub body: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Text)]
    pub endpoint_status: String,
    #[diesel(sql_type = Text)]
    pub secret: String,
    /// The replaced secret while it still signs.
    #[diesel(sql_type = Nullable<Text>)]
    pub previous_secret: Option<String>,
}

/// The organisations that have a delivery due now.
pub async fn organisations_with_due_deliveries(conn: &mut AsyncPgConnection) -> QueryResult<Vec<OrgId>> {
    webhook_deliveries::table
        .filter(webhook_deliveries::status.eq("pending"))
        .filter(webhook_deliveries::next_attempt_at.le(diesel::dsl::now))
        .select(webhook_deliveries::org_id)
        .distinct()
        .load(conn)
        .await
}

/// Takes up to `limit` due deliveries of one organisation and locks them (`SKIP LOCKED`:
/// one another worker holds is left to it). The caller holds the lock, in its transaction,
/// while it sends them and records the outcomes: when its instance dies, the lock goes
/// with the connection and another worker sends them again at once.
pub async fn claim(conn: &mut AsyncPgConnection, org: OrgId, limit: i64) -> QueryResult<Vec<Claimed>> {
    crate::db::Prepared::new(
        "SELECT d.org_id, d.id, d.endpoint_id, d.event_id, d.body, d.attempts, e.url,
            e.status AS endpoint_status, e.secret,
            CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous_secret
         FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.org_id = d.org_id AND e.id = d.endpoint_id
         WHERE d.org_id = $2 AND d.status = 'pending' AND d.next_attempt_at <= now()
         ORDER BY d.next_attempt_at
         LIMIT $1
         FOR UPDATE OF d SKIP LOCKED",
    )
    .bind::<BigInt, _>(limit)
    .bind::<diesel::sql_types::Uuid, _>(org)
    .load(conn)
    .await
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered { status: i32 },
    /// 410 Gone: the endpoint is disabled.
    Gone,
    /// Any other answer, a timeout, a connection error or a refused address; retried after
    /// `retry_in`, or failed for good when `None`.
    Failed {
        status: Option<i32>,
        error: String,
        retry_in: Option<std::time::Duration>,
    },
    /// The endpoint was disabled before this attempt: nothing was sent.
    EndpointDisabled,
}

pub async fn record(conn: &mut AsyncPgConnection, c: &Claimed, outcome: &Outcome) -> QueryResult<()> {
    let org = OrgId(c.org_id);
    let this = webhook_deliveries::table
        .filter(webhook_deliveries::org_id.eq(org))
        .filter(webhook_deliveries::id.eq(c.id));
    let now = Utc::now();
    match outcome {
        Outcome::Delivered { status } => {
            diesel::update(this)
                .set((
                    webhook_deliveries::status.eq("delivered"),
                    webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                    webhook_deliveries::last_status.eq(Some(*status)),
                    webhook_deliveries::last_error.eq(None::<String>),
                    webhook_deliveries::delivered_at.eq(Some(now)),
                ))
                .execute(conn)
                .await?;
        }
        Outcome::Failed {
            status,
            error,
            retry_in,
        } => {
            let (state, next) = match retry_in {
                Some(wait) => (
                    "pending",
                    now + chrono::Duration::from_std(*wait).unwrap_or(chrono::Duration::zero()),
                ),
                None => ("failed", now),
            };
            diesel::update(this)
                .set((
                    webhook_deliveries::status.eq(state),
                    webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                    webhook_deliveries::last_status.eq(*status),
                    webhook_deliveries::last_error.eq(Some(error)),
                    webhook_deliveries::next_attempt_at.eq(next),
                ))
                .execute(conn)
                .await?;
        }
        Outcome::Gone | Outcome::EndpointDisabled => {
            if *outcome == Outcome::Gone {
                diesel::update(this)
                    .set((
                        webhook_deliveries::status.eq("failed"),
                        webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                        webhook_deliveries::last_status.eq(Some(410)),
                        webhook_deliveries::last_error.eq(Some("410 Gone: the endpoint is now disabled")),
                    ))
                    .execute(conn)
                    .await?;
                diesel::update(webhook_endpoints::table)
                    .filter(webhook_endpoints::org_id.eq(org))
                    .filter(webhook_endpoints::id.eq(c.endpoint_id))
                    .set((
                        webhook_endpoints::status.eq("disabled"),
                        webhook_endpoints::disabled_at.eq(Some(now)),
                    ))
                    .execute(conn)
                    .await?;
            }
            // Nothing more goes to a disabled endpoint: its other pending messages fail.
            diesel::update(webhook_deliveries::table)
                .filter(webhook_deliveries::org_id.eq(org))
                .filter(webhook_deliveries::endpoint_id.eq(c.endpoint_id))
                .filter(webhook_deliveries::status.eq("pending"))
                .set((
                    webhook_deliveries::status.eq("failed"),
                    webhook_deliveries::last_error.eq(Some("the endpoint is disabled")),
                ))
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// Deliveries of every organisation by status (for `/metrics`).
pub async fn counts_by_status(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, i64)>> {
    webhook_deliveries::table
        .group_by(webhook_deliveries::status)
        .select((webhook_deliveries::status, diesel::dsl::count_star()))
        .load(conn)
        .await
}
