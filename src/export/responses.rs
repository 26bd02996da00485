//! `GET /v1/exports/responses`: streamed NDJSON or CSV, pseudonymised by default.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::{csv_error, pseudonym, pseudonym_secret, text_cell};
use crate::audit::{self, AuditEntry};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Name;
use crate::instruments::{LoadedInstrument, LookupError, Wanted};
use crate::responses::model::{ListQuery, ResponseStatus};
use crate::responses::store::{self, ExportRow};
use crate::scoring::Rater;
use crate::state::AppState;

/// Rows fetched per database round trip while streaming.
const CHUNK: i64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Instrument key (required).
    pub instrument: String,
    /// Only this version (default: every version; CSV columns follow the highest).
    pub version: Option<i32>,
    /// administered_at at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// administered_at before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    pub rater: Option<Rater>,
    pub status: Option<ResponseStatus>,
    /// `ndjson` (default) or `csv`.
    #[param(inline)]
    pub format: Option<ExportFormat>,
    /// Replace patient, clinician and episode references with keyed pseudonyms (default true);
    /// `false` also needs `export:identified`.
    pub pseudonymize: Option<bool>,
}

pub(super) async fn instrument_for(
    state: &AppState,
    principal: &Principal,
    key: &str,
    version: Option<i32>,
) -> ApiResult<Arc<LoadedInstrument>> {
    let mut conn = crate::db::conn(&state.pool).await?;
    // Without a version the columns follow the highest one; a key the caller cannot see is
    // 404, as for any id.
    let wanted = version.map_or(Wanted::Highest, Wanted::Exact);
    crate::instruments::find(&mut conn, &state.builtins, principal.org, key, wanted)
        .await
        .map_err(LookupError::in_path)
}

/// The CSV header of an instrument version, in the README's column order: identity
/// columns, one `item_<id>` per item, scores, one pair per subscale, `prorated`, `flags`
/// (every flag the row has: an unscored row's item flags too), `score_error`.
pub fn csv_header(instrument: &LoadedInstrument) -> Vec<String> {
    let mut header: Vec<String> = [
        "id",
        "instrument",
        "instrument_version",
        "patient",
        "clinician",
        "episode",
        "rater",
        "administered_at",
        "session",
        "status",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(instrument.version.items.iter().map(|i| format!("item_{}", i.id)));
    header.extend(["total", "mean", "pomp", "band"].iter().map(|s| s.to_string()));
    for s in &instrument.version.subscales {
        header.push(format!("{}_total", s.key));
        header.push(format!("{}_mean", s.key));
    }
    header.push("prorated".into());
    header.push("flags".into());
    header.push("score_error".into());
    header
}

/// A response as an NDJSON line: the response shape (`Administration`), written straight
/// from the export row with its JSON columns passed through. A pseudonymised line leaves out
/// what can identify (the external id and its system, and the free-text void reason).
#[derive(serde::Serialize)]
struct Line<'a> {
    id: &'a uuid::Uuid,
    instrument: &'a str,
    instrument_version: i32,
    patient: &'a str,
    clinician: Option<&'a str>,
    episode: Option<&'a str>,
    rater: &'a str,
    administered_at: &'a DateTime<Utc>,
    session: Option<i32>,
    /// Identified lines only (then present, also when null).
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_system: Option<&'a str>,
    answers: &'a RawValue,
    source: crate::responses::model::Source,
    status: ResponseStatus,
    /// Identified lines only (then present, also when null).
    #[serde(skip_serializing_if = "Option::is_none")]
    void_reason: Option<Option<&'a str>>,
    created_at: &'a DateTime<Utc>,
    score: Option<LineScore<'a>>,
    score_error: Option<&'a str>,
    score_flags: &'a [String],
    amended: bool,
}

/// `Score` as the row holds it.
#[derive(serde::Serialize)]
struct LineScore<'a> {
    total: f64,
    mean: f64,
    pomp: f64,
    subscales: &'a RawValue,
    answered: u32,
    missing: u32,
    prorated: bool,
    flags: &'a [String],
    band: Option<&'a str>,
}

/// The entries of a JSON object with their values as raw JSON, sorted by `key_order` (keys
/// borrowed unless they hold escapes); anything but an object has none.
fn object_entries(json: &RawValue) -> Vec<(Cow<'_, str>, &RawValue)> {
    struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);
    impl<'de> Deserialize<'de> for Entries<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Object;
            impl<'de> serde::de::Visitor<'de> for Object {
                type Value = Entries<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                    while let Some((Name(k), v)) = map.next_entry::<Name<'de>, &'de RawValue>()? {
                        entries.push((k, v));
                    }
                    Ok(Entries(entries))
                }
            }
            d.deserialize_map(Object)
        }
    }
    let mut entries = serde_json::from_str::<Entries<'_>>(json.get())
        .map(|e| e.0)
        .unwrap_or_default();
    entries.sort_by(|a, b| key_order(&a.0, &b.0));
    entries
}

/// Shorter keys first, then bytewise (the order `jsonb` keeps, so sorting is a no-op).
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The raw value of `key` among sorted `entries`.
fn entry<'a>(entries: &[(Cow<'_, str>, &'a RawValue)], key: &str) -> Option<&'a RawValue> {
    let at = entries.binary_search_by(|(k, _)| key_order(k, key)).ok()?;
    entries.get(at).map(|(_, v)| *v)
}

/// A raw JSON value that is a number (answers can be strings or codes in custom instruments;
/// the CSV's item cells hold numbers only).
fn raw_number(v: &RawValue) -> Option<&str> {
    let text = v.get();
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
        .then_some(text)
}

struct Renderer {
    format: ExportFormat,
    secret: Option<Vec<u8>>,
    instrument: Arc<LoadedInstrument>,
    /// `{}`, for a score stored without subscales.
    no_subscales: Box<RawValue>,
}

pub(super) fn number(v: Option<f64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

impl Renderer {
    fn reference(&self, value: &str) -> String {
        match &self.secret {
            Some(secret) => pseudonym(secret, value),
            None => value.to_string(),
        }
    }

    fn render(&self, rows: Vec<ExportRow>, out: &mut Vec<u8>) -> Result<(), ApiError> {
        match self.format {
            ExportFormat::Ndjson => {
                let identified = self.secret.is_none();
                for row in rows {
                    let (patient, clinician, episode) = (
                        self.reference(&row.patient),
                        row.clinician.as_deref().map(|c| self.reference(c)),
                        row.episode.as_deref().map(|e| self.reference(e)),
                    );
                    let score = row.total.map(|total| LineScore {
                        total,
                        mean: row.mean.unwrap_or_default(),
                        pomp: row.pomp.unwrap_or_default(),
                        subscales: row.subscales.as_ref().map_or(&*self.no_subscales, |s| &*s.0),
                        answered: row.answered.unwrap_or_default() as u32,
                        missing: row.missing.unwrap_or_default() as u32,
                        prorated: row.prorated.unwrap_or_default(),
                        flags: row.flags.as_deref().unwrap_or_default(),
                        band: row.band.as_deref(),
                    });
                    let line = Line {
                        id: &row.id,
                        instrument: &row.instrument_key,
                        instrument_version: row.instrument_version,
                        patient: &patient,
                        clinician: clinician.as_deref(),
                        episode: episode.as_deref(),
                        rater: &row.rater,
                        administered_at: &row.administered_at,
                        session: row.session,
                        external_id: identified.then_some(row.external_id.as_deref()),
                        external_system: row.external_system.as_deref().filter(|_| identified),
                        answers: &row.answers.0,
                        source: row.source,
                        status: row.status,
                        void_reason: identified.then_some(row.void_reason.as_deref()),
                        created_at: &row.created_at,
                        score,
                        score_error: row.score_error.as_deref(),
                        score_flags: row.flags.as_deref().unwrap_or_default(),
                        amended: row.amended_at.is_some(),
                    };
                    serde_json::to_writer(&mut *out, &line).map_err(|e| ApiError::internal(e.to_string()))?;
                    out.push(b'\n');
                }
            }
            ExportFormat::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(std::mem::take(out));
                // One buffer for every formatted number of the chunk.
                let mut cell = String::new();
                let mut field = |writer: &mut csv::Writer<Vec<u8>>, value: Option<&dyn std::fmt::Display>| {
                    cell.clear();
                    if let Some(v) = value {
                        let _ = write!(cell, "{v}");
                    }
                    writer.write_field(&cell).map_err(csv_error)
                };
                for row in rows {
                    let reference = |r: Option<&str>| r.map(|v| text_cell(&self.reference(v))).unwrap_or_default();
                    field(&mut writer, Some(&row.id))?;
                    writer.write_field(text_cell(&row.instrument_key)).map_err(csv_error)?;
                    field(&mut writer, Some(&row.instrument_version))?;
                    writer.write_field(reference(Some(&row.patient))).map_err(csv_error)?;
                    writer
                        .write_field(reference(row.clinician.as_deref()))
                        .map_err(csv_error)?;
                    writer
                        .write_field(reference(row.episode.as_deref()))
                        .map_err(csv_error)?;
                    writer.write_field(&row.rater).map_err(csv_error)?;
                    writer
                        .write_field(row.administered_at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                        .map_err(csv_error)?;
                    field(&mut writer, row.session.as_ref().map(|s| s as &dyn std::fmt::Display))?;
                    writer.write_field(row.status.as_str()).map_err(csv_error)?;
                    let answers = object_entries(&row.answers.0);
                    for item in &self.instrument.version.items {
                        let answer = entry(&answers, &item.id).and_then(raw_number);
                        writer.write_field(answer.unwrap_or_default()).map_err(csv_error)?;
                    }
                    for n in [row.total, row.mean, row.pomp] {
                        field(&mut writer, n.as_ref().map(|v| v as &dyn std::fmt::Display))?;
                    }
                    writer
                        .write_field(text_cell(row.band.as_deref().unwrap_or_default()))
                        .map_err(csv_error)?;
                    // Subscales count only for a scored row (as in the response's `score`).
                    let subscales = match (&row.subscales, row.total) {
                        (Some(s), Some(_)) => object_entries(&s.0),
                        _ => Vec::new(),
                    };
                    for s in &self.instrument.version.subscales {
                        let sub = entry(&subscales, &s.key)
                            .and_then(|raw| serde_json::from_str::<crate::scoring::SubscaleScore>(raw.get()).ok());
                        field(&mut writer, sub.as_ref().map(|x| &x.total as &dyn std::fmt::Display))?;
                        field(&mut writer, sub.as_ref().map(|x| &x.mean as &dyn std::fmt::Display))?;
                    }
                    field(&mut writer, row.prorated.as_ref().map(|p| p as &dyn std::fmt::Display))?;
                    writer
                        .write_field(text_cell(&row.flags.as_deref().unwrap_or_default().join(";")))
                        .map_err(csv_error)?;
                    writer
                        .write_field(text_cell(row.score_error.as_deref().unwrap_or_default()))
                        .map_err(csv_error)?;
                    writer.write_record(None::<&[u8]>).map_err(csv_error)?;
                }
                *out = writer.into_inner().map_err(|e| ApiError::internal(e.to_string()))?;
            }
        }
        Ok(())
    }
}

type Chunk = tokio::task::JoinHandle<ApiResult<Vec<ExportRow>>>;

struct Cursor {
    state: web::Data<AppState>,
    org: crate::ids::OrgId,
    query: Arc<ListQuery>,
    /// The next chunk's query, already running while this one renders (None: no more).
    next: Option<Chunk>,
    renderer: Renderer,
    preface: Option<Vec<u8>>,
}

/// Starts fetching the chunk after `after` (up to `CHUNK` + 1 rows, to know if more follow),
/// from the replica when there is one.
fn fetch(state: &web::Data<AppState>, org: crate::ids::OrgId, query: &Arc<ListQuery>, after: Option<i64>) -> Chunk {
    let (state, query) = (state.clone(), query.clone());
    tokio::spawn(async move {
        let mut conn = state.read_conn().await?;
        Ok(store::export_page(&mut conn, org, &query, after, CHUNK).await?)
    })
}

async fn next_chunk(mut c: Cursor) -> Option<(Result<bytes::Bytes, ApiError>, Cursor)> {
    if let Some(preface) = c.preface.take() {
        return Some((Ok(bytes::Bytes::from(preface)), c));
    }
    let fetched = match c.next.take()?.await {
        Ok(rows) => rows,
        Err(e) => Err(ApiError::internal(e.to_string())),
    };
    let mut rows = match fetched {
        Ok(rows) => rows,
        Err(e) => return Some((Err(e), c)),
    };
    if rows.len() as i64 > CHUNK {
        rows.truncate(CHUNK as usize);
        // The database reads the next chunk while this one is rendered.
        c.next = Some(fetch(&c.state, c.org, &c.query, rows.last().map(|r| r.seq)));
    }
    let mut out = Vec::with_capacity(rows.len() * 400);
    if let Err(e) = c.renderer.render(rows, &mut out) {
        c.next = None;
        return Some((Err(e), c));
    }
    Some((Ok(bytes::Bytes::from(out)), c))
}

/// Every response of one instrument with item answers and scores, streamed in chunks.
/// Pseudonymised by default. Send `Accept-Encoding: gzip` for a compressed body.
#[utoipa::path(
    tag = "export",
    params(ExportQuery),
    responses(
        (status = 200, description = "NDJSON (one response per line) or CSV (RFC 4180, header row)", content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        (status = 400, description = "Missing instrument, bad filter", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `export` (and `export:identified` for pseudonymize=false)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The instrument is not one the caller can see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["export"]))
)]
#[get("/responses")]
pub async fn export_responses(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<ExportQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::Export)?;
    let query = query.into_inner();
    let pseudonymize = query.pseudonymize.unwrap_or(true);
    if !pseudonymize {
        principal.require(Scope::ExportIdentified)?;
    }
    let format = query.format.unwrap_or(ExportFormat::Ndjson);
    let instrument = instrument_for(&state, &principal, &query.instrument, query.version).await?;
    let filters = ListQuery {
        patient: None,
        clinician: None,
        episode: None,
        instrument: Some(query.instrument.clone()),
        instrument_version: query.version,
        rater: query.rater,
        from: query.from,
        to: query.to,
        status: query.status,
        limit: None,
        cursor: None,
    };
    let mut conn = crate::db::conn(&state.pool).await?;
    let secret = if pseudonymize {
        Some(pseudonym_secret(&mut conn, principal.org).await?)
    } else {
        None
    };
    let rows = store::count(&mut conn, principal.org, &filters).await?;
    audit::record(
        &mut conn,
        AuditEntry {
            org: principal.org,
            actor: principal.client_id.as_str(),
            action: crate::audit::AuditAction::ResponsesExported,
            resource_type: "export",
            resource_id: None,
            detail: json!({
                "instrument": query.instrument, "version": query.version, "from": query.from, "to": query.to,
                "rater": query.rater, "status": query.status, "format": if format == ExportFormat::Csv { "csv" } else { "ndjson" },
                "identified": !pseudonymize, "rows": rows,
            }),
        },
    )
    .await?;
    drop(conn);

    let renderer = Renderer {
        format,
        secret,
        instrument: instrument.clone(),
        no_subscales: RawValue::from_string("{}".to_string()).map_err(|e| ApiError::internal(e.to_string()))?,
    };
    let preface = match format {
        ExportFormat::Csv => {
            let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
            writer.write_record(csv_header(&instrument)).map_err(csv_error)?;
            Some(writer.into_inner().map_err(|e| ApiError::internal(e.to_string()))?)
        }
        ExportFormat::Ndjson => None,
    };
    let filters = Arc::new(filters);
    let cursor = Cursor {
        next: Some(fetch(&state, principal.org, &filters, None)),
        state: state.clone(),
        org: principal.org,
        query: filters,
        renderer,
        preface,
    };
    let stream = futures_util::stream::unfold(cursor, next_chunk);
    let (content_type, extension) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let filename = format!(
        "rapport-{}-responses-{}.{extension}",
        query.instrument,
        Utc::now().format("%Y%m%d")
    );
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    #[test]
    fn object_entries_find_every_key_also_escaped_ones_and_leave_values_raw() {
        let answers = raw(r#"{"10": 4, "2": "often", "1": -1.5, "a\"b": 3, "nested": {"x": [1]}}"#);
        let entries = object_entries(&answers);
        assert_eq!(entries.len(), 5);
        assert_eq!(entry(&entries, "1").map(RawValue::get), Some("-1.5"));
        assert_eq!(entry(&entries, "10").map(RawValue::get), Some("4"));
        assert_eq!(entry(&entries, "a\"b").map(RawValue::get), Some("3"));
        assert_eq!(entry(&entries, "nested").map(RawValue::get), Some(r#"{"x": [1]}"#));
        assert!(entry(&entries, "3").is_none());
        assert!(object_entries(&raw("[1, 2]")).is_empty(), "not an object: no entries");
    }

    #[test]
    fn only_numbers_fill_an_item_cell() {
        assert_eq!(raw_number(&raw("4")), Some("4"));
        assert_eq!(raw_number(&raw("-0.5")), Some("-0.5"));
        assert_eq!(raw_number(&raw(r#""4""#)), None);
        assert_eq!(raw_number(&raw("null")), None);
        assert_eq!(raw_number(&raw("true")), None);
    }
}
