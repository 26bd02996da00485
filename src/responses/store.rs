//! Response rows. Every query filters by organisation.

use crate::ids::{OrgId, ResponseId};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{Administration, ListQuery, ResponseStatus, Source};
use crate::schema::responses;
use crate::scoring::{Score, SubscaleScore};

/// A response's score as its columns hold it: written by the ingest and the amendment, read
/// by every row type (one list of the score columns instead of one per row type).
#[derive(
    Debug, Clone, Default, PartialEq, Queryable, QueryableByName, Selectable, Insertable, AsChangeset, serde::Serialize,
)]
#[diesel(table_name = responses, treat_none_as_null = true)]
pub struct ScoreColumns {
    pub total: Option<f64>,
    pub mean: Option<f64>,
    pub pomp: Option<f64>,
    pub subscales: Option<serde_json::Value>,
    pub answered: Option<i32>,
    pub missing: Option<i32>,
    pub prorated: Option<bool>,
    /// Every flag the response has (item flags also when unscored).
    pub flags: Option<Vec<String>>,
    /// Why there is no score.
    pub score_error: Option<String>,
    /// The score's interpretation band (None without bands or without a score).
    pub band: Option<String>,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = responses)]
pub struct AdministrationRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub seq: i64,
    pub instrument_key: String,
    pub instrument_version: i32,
    pub patient: String,
    pub clinician: Option<String>,
    pub episode: Option<String>,
    #[diesel(deserialize_as = crate::db::StoredRater)]
    pub rater: crate::scoring::Rater,
    pub administered_at: DateTime<Utc>,
    pub session: Option<i32>,
    pub answers: serde_json::Value,
    pub external_id: Option<String>,
    pub payload_hash: Vec<u8>,
    pub source: Source,
    pub status: ResponseStatus,
    pub void_reason: Option<String>,
    pub voided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// The score columns (null when unscored), as every row type holds them.
    #[diesel(embed)]
    pub scored: ScoreColumns,
    /// The FHIR identifier's system; None for REST external ids.
    pub external_system: Option<String>,
    /// When a FHIR `amended` resource last replaced it.
    pub amended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = responses)]
pub struct NewAdministrationRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub instrument_key: String,
    pub instrument_version: i32,
    pub patient: String,
    pub clinician: Option<String>,
    pub episode: Option<String>,
    pub rater: String,
    pub administered_at: DateTime<Utc>,
    pub session: Option<i32>,
    pub answers: serde_json::Value,
    pub external_id: Option<String>,
    pub payload_hash: Vec<u8>,
    pub source: Source,
    pub created_by: String,
    /// The score columns (null when unscored), as every row type holds them.
    #[diesel(embed)]
    pub scored: ScoreColumns,
    /// The FHIR identifier's system; None for REST external ids.
    pub external_system: Option<String>,
}

impl ScoreColumns {
    /// The score these columns hold; None when unscored.
    pub fn score(&self) -> Option<Score> {
        let total = self.total?;
        let subscales = self
            .subscales
            .clone()
            .and_then(|v| serde_json::from_value::<std::collections::BTreeMap<String, SubscaleScore>>(v).ok())
            .unwrap_or_default();
        Some(Score {
            total,
            mean: self.mean.unwrap_or_default(),
            pomp: self.pomp.unwrap_or_default(),
            subscales,
            answered: self.answered.unwrap_or_default() as u32,
            missing: self.missing.unwrap_or_default() as u32,
            prorated: self.prorated.unwrap_or_default(),
            flags: self.flags.clone().unwrap_or_default(),
            band: self.band.clone(),
        })
    }
}

impl AdministrationRow {
    pub fn score(&self) -> Option<Score> {
        self.scored.score()
    }
}

impl From<AdministrationRow> for Administration {
    fn from(r: AdministrationRow) -> Self {
        let score = r.score();
        Administration {
            id: r.id,
            instrument: r.instrument_key,
            instrument_version: r.instrument_version,
            patient: r.patient,
            clinician: r.clinician,
            episode: r.episode,
            rater: r.rater,
            administered_at: r.administered_at,
            session: r.session,
            external_id: r.external_id,
            external_system: r.external_system,
            answers: match r.answers {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
            source: r.source,
            status: r.status,
            void_reason: r.void_reason,
            created_at: r.created_at,
            score,
            score_error: r.scored.score_error,
            score_flags: r.scored.flags.unwrap_or_default(),
            amended: r.amended_at.is_some(),
        }
    }
}

/// What a batch row ended up as: the stored (id, payload hash), and whether it is new;
/// `None` when its external_id is stored but not (yet) visible.
pub type Stored = Option<(Uuid, Vec<u8>, bool)>;

/// A new row as `jsonb_populate_recordset` reads it into a `responses` row, serialised
/// straight from the row (no `serde_json::Value` tree in between).
#[derive(serde::Serialize)]
struct InputRow<'a> {
    org_id: &'a Uuid,
    id: &'a Uuid,
    instrument_key: &'a str,
    instrument_version: i32,
    patient: &'a str,
    clinician: Option<&'a str>,
    episode: Option<&'a str>,
    rater: &'a str,
    administered_at: &'a DateTime<Utc>,
    session: Option<i32>,
    answers: &'a serde_json::Value,
    external_id: Option<&'a str>,
    /// `bytea`'s hex input form.
    #[serde(serialize_with = "bytea_hex")]
    payload_hash: &'a [u8],
    source: &'static str,
    created_by: &'a str,
    #[serde(flatten)]
    scored: &'a ScoreColumns,
    external_system: Option<&'a str>,
}

fn bytea_hex<S: serde::Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    struct Hex<'a>(&'a [u8]);
    impl std::fmt::Display for Hex<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("\\x")?;
            self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
    }
    s.collect_str(&Hex(bytes))
}

impl<'a> From<&'a NewAdministrationRow> for InputRow<'a> {
    fn from(r: &'a NewAdministrationRow) -> Self {
        InputRow {
            org_id: &r.org_id.0,
            id: &r.id,
            instrument_key: &r.instrument_key,
            instrument_version: r.instrument_version,
            patient: &r.patient,
            clinician: r.clinician.as_deref(),
            episode: r.episode.as_deref(),
            rater: &r.rater,
            administered_at: &r.administered_at,
            session: r.session,
            answers: &r.answers,
            external_id: r.external_id.as_deref(),
            payload_hash: &r.payload_hash,
            source: r.source.as_str(),
            created_by: &r.created_by,
            scored: &r.scored,
            external_system: r.external_system.as_deref(),
        }
    }
}

/// A batch's rows as the JSON array `jsonb_populate_recordset` reads.
fn batch_json<'a>(rows: impl IntoIterator<Item = &'a NewAdministrationRow>) -> QueryResult<crate::db::JsonText> {
    let rows: Vec<InputRow<'a>> = rows.into_iter().map(InputRow::from).collect();
    crate::db::JsonText::of(&rows).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// The columns a new response is written with (jsonb_populate_recordset fills them).
const COLUMNS: &str = "org_id, id, instrument_key, instrument_version, patient, clinician, episode, rater,
    administered_at, session, answers, external_id, payload_hash, source, created_by, total, mean, pomp,
    subscales, answered, missing, prorated, flags, score_error, external_system, band";

/// The CTEs both inserts start with: `input` (the rows of `$1`, in order), `ins` (those whose
/// external_id is free, inserted, returning `returning`) and `outbox` (an event per stored
/// row). `returning` must name `id, org_id, patient, instrument_key, rater` at least.
fn insert_ctes(returning: &str) -> String {
    format!(
        "WITH input AS (
            SELECT * FROM jsonb_populate_recordset(NULL::responses, $1) WITH ORDINALITY AS i
         ), ins AS (
            INSERT INTO responses ({COLUMNS})
            SELECT {COLUMNS} FROM input ORDER BY ordinality
            ON CONFLICT (org_id, external_system, external_id) WHERE external_id IS NOT NULL DO NOTHING
            RETURNING {returning}
         ), outbox AS (
            {outbox}
         )",
        outbox = crate::outbox::insert_from("ins", crate::outbox::OutboxKind::ResponseCreated)
    )
}

/// An audit event the writer records (a read's, or a new response's).
pub struct AuditRecord {
    pub org: OrgId,
    pub actor: String,
    pub action: crate::audit::action::AuditAction,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub detail: serde_json::Value,
}

/// One group commit of the writer in one statement (no BEGIN/COMMIT round trips): the rows
/// whose external_id is free, a `response.created` audit event (by its request's `actor`)
/// and an outbox event per stored row, and the group's read audit events. Returns the
/// stored rows.
pub async fn insert_group_audited(
    conn: &mut AsyncPgConnection,
    rows: &[&NewAdministrationRow],
    actors: &[&str],
    reads: &[&AuditRecord],
) -> QueryResult<Vec<AdministrationRow>> {
    use diesel::sql_types::{Array, Jsonb, Text, Uuid as SqlUuid};
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let read_events: serde_json::Value = reads
        .iter()
        .map(|e| {
            serde_json::json!({"org_id": e.org.0, "actor": e.actor, "action": e.action,
                "resource_type": e.resource_type, "resource_id": e.resource_id, "detail": e.detail})
        })
        .collect();
    crate::db::Prepared::new(format!(
        "{}, reads AS (
            INSERT INTO audit_events (org_id, id, actor, action, resource_type, resource_id, detail)
            SELECT org_id, gen_random_uuid(), actor, action, resource_type, resource_id, detail
            FROM jsonb_to_recordset($4) AS r(org_id uuid, actor text, action text, resource_type text,
                resource_id text, detail jsonb)
         ), created AS (
            INSERT INTO audit_events (org_id, id, actor, action, resource_type, resource_id, detail)
            SELECT ins.org_id, gen_random_uuid(), a.actor, '{created}', 'response', ins.id::text,
                jsonb_build_object('instrument', ins.instrument_key, 'version', ins.instrument_version,
                    'source', ins.source)
            FROM ins JOIN unnest($2::uuid[], $3::text[]) AS a(id, actor) ON a.id = ins.id
         )
         SELECT * FROM ins",
        insert_ctes("*"),
        created = crate::audit::action::AuditAction::ResponseCreated.as_str()
    ))
    .bind::<Jsonb, _>(batch_json(rows.iter().copied())?)
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Text>, _>(actors)
    .bind::<Jsonb, _>(read_events)
    .load(conn)
    .await
}

/// Inserts a batch's rows (REST rows: no external_system; those whose external_id is stored
/// are skipped), an outbox event per new row and one `responses.batch_created` audit event,
/// in one statement; then the skipped rows' stored twins by the unique key's index (a second
/// statement: Citus takes no lateral join to a distributed table beside these CTEs).
/// Returns, in input order, what each row ended up as.
pub async fn insert_batch_audited(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    actor: &str,
    rows: &[&NewAdministrationRow],
) -> QueryResult<Vec<Stored>> {
    use diesel::sql_types::{Bool, Jsonb, Text, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = Bool)]
        created: bool,
    }
    let outcomes: Vec<Outcome> = crate::db::Prepared::new(format!(
        "{}, audit AS (
            INSERT INTO audit_events (org_id, id, actor, action, resource_type, resource_id, detail)
            SELECT $2, $3, $4, '{batch_created}', 'response', NULL,
                jsonb_build_object('created', count(*), 'ids', jsonb_agg(id))
            FROM ins HAVING count(*) > 0
         )
         SELECT ins.id IS NOT NULL AS created
         FROM input
         LEFT JOIN ins ON ins.id = input.id
         ORDER BY input.ordinality",
        insert_ctes("id, org_id, patient, instrument_key, rater"),
        batch_created = crate::audit::action::AuditAction::ResponsesBatchCreated.as_str()
    ))
    .bind::<Jsonb, _>(batch_json(rows.iter().copied())?)
    .bind::<SqlUuid, _>(org)
    .bind::<SqlUuid, _>(Uuid::new_v4())
    .bind::<Text, _>(actor)
    .load(conn)
    .await?;
    let skipped: Vec<String> = rows
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| !o.created)
        .filter_map(|(row, _)| row.external_id.clone())
        .collect();
    let twins: std::collections::HashMap<String, (Uuid, Vec<u8>)> = if skipped.is_empty() {
        Default::default()
    } else {
        by_external_ids(conn, org, &skipped)
            .await?
            .into_iter()
            .filter_map(|(external_id, id, hash)| external_id.map(|e| (e, (id, hash))))
            .collect()
    };
    Ok(rows
        .iter()
        .zip(outcomes)
        .map(|(row, o)| {
            if o.created {
                Some((row.id, row.payload_hash.clone(), true))
            } else {
                let (id, hash) = twins.get(row.external_id.as_deref()?)?;
                Some((*id, hash.clone(), false))
            }
        })
        .collect())
}

pub async fn find(conn: &mut AsyncPgConnection, org: OrgId, id: ResponseId) -> QueryResult<Option<AdministrationRow>> {
    responses::table
        .filter(responses::org_id.eq(org).and(responses::id.eq(id)))
        .select(AdministrationRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The stored rows among `ids` (any order).
pub async fn find_many(conn: &mut AsyncPgConnection, org: OrgId, ids: &[Uuid]) -> QueryResult<Vec<AdministrationRow>> {
    responses::table
        .filter(responses::org_id.eq(org).and(responses::id.eq_any(ids)))
        .select(AdministrationRow::as_select())
        .load(conn)
        .await
}

/// (external_id, id, payload hash) of stored rows with these external ids.
pub async fn by_external_ids(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    external_ids: &[String],
) -> QueryResult<Vec<(Option<String>, Uuid, Vec<u8>)>> {
    responses::table
        .filter(
            responses::org_id
                .eq(org)
                .and(responses::external_system.is_null())
                .and(responses::external_id.eq_any(external_ids)),
        )
        .select((responses::external_id, responses::id, responses::payload_hash))
        .load(conn)
        .await
}

/// The response stored under an idempotency key: `system` None for REST external ids (and
/// FHIR identifiers without a system), else the FHIR identifier's system.
pub async fn find_by_external_id(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    system: Option<&str>,
    external_id: &str,
) -> QueryResult<Option<AdministrationRow>> {
    use diesel::PgExpressionMethods as _;
    responses::table
        .filter(responses::org_id.eq(org).and(responses::external_id.eq(external_id)))
        .filter(responses::external_system.is_not_distinct_from(system))
        .select(AdministrationRow::as_select())
        .first(conn)
        .await
        .optional()
}

type Boxed<'a> = responses::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered<'a>(org: OrgId, q: &ListQuery) -> Boxed<'a> {
    let mut query = responses::table.filter(responses::org_id.eq(org)).into_boxed();
    if let Some(v) = &q.patient {
        query = query.filter(responses::patient.eq(v.clone()));
    }
    if let Some(v) = &q.clinician {
        query = query.filter(responses::clinician.eq(v.clone()));
    }
    if let Some(v) = &q.episode {
        query = query.filter(responses::episode.eq(v.clone()));
    }
    if let Some(v) = &q.instrument {
        query = query.filter(responses::instrument_key.eq(v.clone()));
    }
    if let Some(v) = q.instrument_version {
        query = query.filter(responses::instrument_version.eq(v));
    }
    if let Some(v) = q.rater {
        query = query.filter(responses::rater.eq(v.as_str()));
    }
    if let Some(v) = q.from {
        query = query.filter(responses::administered_at.ge(v));
    }
    if let Some(v) = q.to {
        query = query.filter(responses::administered_at.lt(v));
    }
    if let Some(v) = q.status {
        query = query.filter(responses::status.eq(v));
    }
    query
}

/// One page of the filtered list in insert order: after the `after` sequence number, one row
/// more than `limit` (to tell whether a next page exists).
fn page<'a>(org: OrgId, q: &ListQuery, after: Option<i64>, limit: i64) -> Boxed<'a> {
    let mut query = filtered(org, q).order(responses::seq.asc()).limit(limit + 1);
    if let Some(seq) = after {
        query = query.filter(responses::seq.gt(seq));
    }
    query
}

/// The filtered list in insert order, after the `after` sequence number.
pub async fn list(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    q: &ListQuery,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AdministrationRow>> {
    page(org, q, after, limit)
        .select(AdministrationRow::as_select())
        .load(conn)
        .await
}

/// What the export writes of a response: no organisation, payload hash, author or void
/// time, and the JSON columns as their text (passed through, not parsed).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = responses, check_for_backend(diesel::pg::Pg))]
pub struct ExportRow {
    pub id: Uuid,
    pub seq: i64,
    pub instrument_key: String,
    pub instrument_version: i32,
    pub patient: String,
    pub clinician: Option<String>,
    pub episode: Option<String>,
    pub rater: String,
    pub administered_at: DateTime<Utc>,
    pub session: Option<i32>,
    pub external_id: Option<String>,
    pub external_system: Option<String>,
    pub answers: crate::db::JsonText,
    pub source: Source,
    pub status: ResponseStatus,
    pub void_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub total: Option<f64>,
    pub mean: Option<f64>,
    pub pomp: Option<f64>,
    pub subscales: Option<crate::db::JsonText>,
    pub answered: Option<i32>,
    pub missing: Option<i32>,
    pub prorated: Option<bool>,
    pub flags: Option<Vec<String>>,
    pub score_error: Option<String>,
    pub band: Option<String>,
    pub amended_at: Option<DateTime<Utc>>,
}

/// `list` for the export: the same page, only the exported columns.
pub async fn export_page(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    q: &ListQuery,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<ExportRow>> {
    page(org, q, after, limit)
        .select(ExportRow::as_select())
        .load(conn)
        .await
}

/// How many responses the filters match.
pub async fn count(conn: &mut AsyncPgConnection, org: OrgId, q: &ListQuery) -> QueryResult<i64> {
    filtered(org, q).count().get_result(conn).await
}

/// Voids an active response; `None` when there is no active response with this id.
pub async fn void(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    id: ResponseId,
    reason: &str,
) -> QueryResult<Option<AdministrationRow>> {
    diesel::update(responses::table)
        .filter(
            responses::org_id
                .eq(org)
                .and(responses::id.eq(id))
                .and(responses::status.eq(ResponseStatus::Active)),
        )
        .set((
            responses::status.eq(ResponseStatus::Voided),
            responses::void_reason.eq(reason),
            responses::voided_at.eq(Some(Utc::now())),
        ))
        .returning(AdministrationRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Replaces an active response's content with an amended, re-scored one (FHIR `amended`);
/// id, source, external key and creation stay. `None` when no active row has that id.
pub async fn amend(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    id: ResponseId,
    row: &NewAdministrationRow,
) -> QueryResult<Option<AdministrationRow>> {
    diesel::update(responses::table)
        .filter(
            responses::org_id
                .eq(org)
                .and(responses::id.eq(id))
                .and(responses::status.eq(ResponseStatus::Active)),
        )
        .set((
            (
                responses::instrument_key.eq(&row.instrument_key),
                responses::instrument_version.eq(row.instrument_version),
                responses::clinician.eq(&row.clinician),
                responses::episode.eq(&row.episode),
                responses::rater.eq(&row.rater),
                responses::administered_at.eq(row.administered_at),
                responses::session.eq(row.session),
                responses::answers.eq(&row.answers),
                responses::payload_hash.eq(&row.payload_hash),
            ),
            &row.scored,
            responses::amended_at.eq(Some(Utc::now())),
        ))
        .returning(AdministrationRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Filters of the FHIR Observation search: one patient's active, scored responses.
#[derive(Debug, Default)]
pub struct ScoredSearch {
    /// Any of these patients (FHIR `subject`, comma = OR).
    pub patients: Vec<String>,
    /// Any of these instruments (FHIR `code`, comma = OR); None = every instrument.
    pub instruments: Option<Vec<String>>,
    /// Any of these responses (FHIR `derived-from`).
    pub ids: Option<Vec<Uuid>>,
    pub from: Option<DateTime<Utc>>,
    pub from_inclusive: bool,
    pub to: Option<DateTime<Utc>>,
    pub to_inclusive: bool,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// The filters of a scored search on any selection of `responses`.
fn scored_filters<'a, ST: 'a>(
    mut query: responses::BoxedQuery<'a, diesel::pg::Pg, ST>,
    org: OrgId,
    s: &'a ScoredSearch,
) -> responses::BoxedQuery<'a, diesel::pg::Pg, ST> {
    query = query
        .filter(responses::org_id.eq(org))
        .filter(responses::patient.eq_any(&s.patients))
        .filter(responses::status.eq(ResponseStatus::Active))
        .filter(responses::total.is_not_null());
    if let Some(keys) = &s.instruments {
        query = query.filter(responses::instrument_key.eq_any(keys));
    }
    if let Some(ids) = &s.ids {
        query = query.filter(responses::id.eq_any(ids));
    }
    if let Some(from) = s.from {
        query = if s.from_inclusive {
            query.filter(responses::administered_at.ge(from))
        } else {
            query.filter(responses::administered_at.gt(from))
        };
    }
    if let Some(to) = s.to {
        query = if s.to_inclusive {
            query.filter(responses::administered_at.le(to))
        } else {
            query.filter(responses::administered_at.lt(to))
        };
    }
    query
}

/// One page of a scored search (one row more than `limit`, to tell whether a next exists).
pub async fn search_scored(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    s: &ScoredSearch,
) -> QueryResult<Vec<AdministrationRow>> {
    let query = scored_filters(
        responses::table.select(AdministrationRow::as_select()).into_boxed(),
        org,
        s,
    );
    let query = if s.descending {
        query.order((responses::administered_at.desc(), responses::seq.desc()))
    } else {
        query.order((responses::administered_at.asc(), responses::seq.asc()))
    };
    query.offset(s.offset).limit(s.limit + 1).load(conn).await
}

/// How many rows a scored search matches (FHIR `_count=0`).
pub async fn count_scored(conn: &mut AsyncPgConnection, org: OrgId, s: &ScoredSearch) -> QueryResult<i64> {
    scored_filters(responses::table.select(diesel::dsl::count_star()).into_boxed(), org, s)
        .get_result(conn)
        .await
}
