//! `GET /v1/exports/dictionary`: what each export column means.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::responses::{instrument_for, number};
use super::{csv_error, text_cell};
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::instruments::LoadedInstrument;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DictionaryQuery {
    /// Instrument key (required).
    pub instrument: String,
    /// Version (default: the highest).
    pub version: Option<i32>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DictionaryColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `datetime` or `boolean`.
    #[serde(rename = "type")]
    pub column_type: String,
    pub label: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub subscale: Option<String>,
    pub reverse_keyed: Option<bool>,
    /// How a missing value is written.
    pub missing: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dictionary {
    pub instrument: String,
    pub instrument_version: i32,
    /// `alliance` or `outcome`.
    pub kind: crate::scoring::Kind,
    /// `higher_is_better` or `lower_is_better`: which way the total improves.
    pub direction: crate::scoring::Direction,
    pub pseudonymized_columns: Vec<String>,
    /// How CSV text cells are neutralised against formula injection.
    pub csv_text_cells: String,
    pub columns: Vec<DictionaryColumn>,
}

fn dictionary(instrument: &LoadedInstrument) -> Dictionary {
    let v = &instrument.version;
    let def = &instrument.definition;
    let (lo, hi) = (
        crate::scoring::to_f64(def.scale.min),
        crate::scoring::to_f64(def.scale.max),
    );
    let n = v.items.len() as f64;
    let integer_scale = def.scale.step.fract().is_zero() && def.scale.min.fract().is_zero();
    let col = |name: &str, t: &str, label: &str, range: Option<(f64, f64)>| DictionaryColumn {
        name: name.into(),
        column_type: t.into(),
        label: label.into(),
        min: range.map(|r| r.0),
        max: range.map(|r| r.1),
        subscale: None,
        reverse_keyed: None,
        missing: "empty cell (CSV) / null (NDJSON)".into(),
    };
    let mut columns = vec![
        col("id", "string", "Response id (UUID)", None),
        col("instrument", "string", "Instrument key", None),
        col("instrument_version", "integer", "Instrument version", None),
        col(
            "patient",
            "string",
            "Patient reference (16-hex pseudonym unless identified)",
            None,
        ),
        col(
            "clinician",
            "string",
            "Rated clinician (pseudonym unless identified)",
            None,
        ),
        col(
            "episode",
            "string",
            "Episode reference (pseudonym unless identified)",
            None,
        ),
        col("rater", "string", "patient, clinician or observer", None),
        col("administered_at", "datetime", "ISO 8601, UTC", None),
        col("session", "integer", "Session number", Some((1.0, 100_000.0))),
        col("status", "string", "active or voided", None),
    ];
    for item in &v.items {
        let mut c = col(
            &format!("item_{}", item.id),
            if integer_scale { "integer" } else { "number" },
            item.text
                .as_deref()
                .unwrap_or(&format!("Item {} (raw answer, before reverse keying)", item.id)),
            Some((lo, hi)),
        );
        c.subscale = item.subscale.clone();
        c.reverse_keyed = Some(item.reverse);
        c.missing = "empty cell (CSV) / absent (NDJSON answers)".into();
        columns.push(c);
    }
    columns.push(col(
        "total",
        "number",
        "Total score (prorated when items are missing)",
        Some((lo * n, hi * n)),
    ));
    columns.push(col(
        "mean",
        "number",
        "Mean item score (total / item count)",
        Some((lo, hi)),
    ));
    columns.push(col("pomp", "number", "Percent of maximum possible", Some((0.0, 100.0))));
    columns.push(col("band", "string", &band_label(def), None));
    for s in &v.subscales {
        let k = def
            .subscales
            .iter()
            .find(|d| d.key == s.key)
            .map(|d| d.items.len() as f64)
            .unwrap_or(0.0);
        let mut t = col(
            &format!("{}_total", s.key),
            "number",
            &format!("{} subscale total", s.title),
            Some((lo * k, hi * k)),
        );
        t.subscale = Some(s.key.clone());
        let mut m = col(
            &format!("{}_mean", s.key),
            "number",
            &format!("{} subscale mean", s.title),
            Some((lo, hi)),
        );
        m.subscale = Some(s.key.clone());
        columns.push(t);
        columns.push(m);
    }
    columns.push(col(
        "prorated",
        "boolean",
        "true when missing items were prorated",
        None,
    ));
    columns.push(col("flags", "string", &flags_label(def), None));
    columns.push(col(
        "score_error",
        "string",
        "Why the response has no score (e.g. too many items missing); empty when scored",
        None,
    ));
    Dictionary {
        instrument: v.key.clone(),
        instrument_version: v.version,
        kind: def.kind,
        direction: def.direction,
        pseudonymized_columns: vec!["patient".into(), "clinician".into(), "episode".into()],
        csv_text_cells: CSV_TEXT_CELLS.into(),
        columns,
    }
}

const CSV_TEXT_CELLS: &str = "In CSV, a text cell that starts with =, +, -, @, a tab or a carriage return is written \
with a leading ' so that spreadsheets show it as text instead of running it (OWASP CSV injection); numeric columns \
are never changed.";

/// The band column in words: each label with its inclusive range of totals.
fn band_label(def: &crate::scoring::InstrumentDefinition) -> String {
    if def.bands.is_empty() {
        return "Interpretation band of the total (this instrument has none: always empty)".into();
    }
    let bands: Vec<String> = def
        .bands
        .iter()
        .map(|b| format!("{} {}-{}", b.label, b.min.normalize(), b.max.normalize()))
        .collect();
    format!("Interpretation band of the total (inclusive): {}", bands.join(", "))
}

/// The flags column in words, including the definition's own item flags.
fn flags_label(def: &crate::scoring::InstrumentDefinition) -> String {
    let mut names = vec!["below_cutoff".to_string(), "item_below_threshold".to_string()];
    let item_flags: Vec<String> = def
        .item_flags
        .iter()
        .map(|f| {
            let item = def.items.get(f.item).map_or("?", |i| i.id.as_str());
            let comparator = match f.comparator {
                crate::scoring::Comparator::Lt => "<",
                crate::scoring::Comparator::Le => "<=",
                crate::scoring::Comparator::Gt => ">",
                crate::scoring::Comparator::Ge => ">=",
            };
            format!("{} (item {item} answered {comparator} {})", f.flag, f.value.normalize())
        })
        .collect();
    names.extend(item_flags);
    format!(
        "Flags joined by ';' (an unscored response keeps its item flags): {}",
        names.join(", ")
    )
}

/// The data dictionary of the export columns, as JSON or CSV.
#[utoipa::path(
    tag = "export",
    params(DictionaryQuery),
    responses(
        (status = 200, description = "The dictionary", content(
            (Dictionary = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "Missing or unknown instrument, bad format", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `export`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The instrument is not one the caller can see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["export"]))
)]
#[get("/dictionary")]
pub async fn export_dictionary(
    principal: Principal,
    state: web::Data<AppState>,
    query: crate::extract::ApiQuery<DictionaryQuery>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::Export)?;
    let instrument = instrument_for(&state, &principal, &query.instrument, query.version).await?;
    let dict = dictionary(&instrument);
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(HttpResponse::Ok().json(dict)),
        "csv" => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer
                .write_record([
                    "name",
                    "type",
                    "label",
                    "min",
                    "max",
                    "subscale",
                    "reverse_keyed",
                    "missing",
                ])
                .map_err(csv_error)?;
            for c in &dict.columns {
                writer
                    .write_record([
                        text_cell(&c.name),
                        text_cell(&c.column_type),
                        text_cell(&c.label),
                        number(c.min),
                        number(c.max),
                        text_cell(c.subscale.as_deref().unwrap_or_default()),
                        c.reverse_keyed.map(|r| r.to_string()).unwrap_or_default(),
                        text_cell(&c.missing),
                    ])
                    .map_err(csv_error)?;
            }
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"rapport-{}-dictionary.csv\"", dict.instrument),
                ))
                .body(writer.into_inner().map_err(|e| ApiError::internal(e.to_string()))?))
        }
        _ => Err(ApiError::BadRequest("`format` must be json or csv".into())),
    }
}
