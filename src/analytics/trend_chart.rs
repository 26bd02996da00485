//! `GET /v1/patients/{patient}/trends.svg`: the trend as a picture (see `chart`), for an
//! EHR page or the console. Same filters, scope and audit event as the trend itself.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::chart::{self, Chart, ChartBand, ChartExpected, ChartMarker, ChartPoint, XAxis};
use super::model::{Trend, TrendQuery};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::instruments::LoadedInstrument;
use crate::scoring::{Comparator, Method, to_f64};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum XParam {
    Time,
    Session,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChartQuery {
    /// Pixels, 240-2000 (default 720).
    pub width: Option<u32>,
    /// Pixels, 240-2000 (default 360).
    pub height: Option<u32>,
    /// `time` (default: points at their dates) or `session` (at their session numbers;
    /// points without one are left out).
    #[param(inline)]
    pub x: Option<XParam>,
}

fn size(value: Option<u32>, default: u32, name: &str) -> ApiResult<u32> {
    match value.unwrap_or(default) {
        v if (chart::MIN_SIZE..=chart::MAX_SIZE).contains(&v) => Ok(v),
        v => Err(ApiError::BadRequest(format!(
            "`{name}` must be {}-{} pixels, not {v}",
            chart::MIN_SIZE,
            chart::MAX_SIZE
        ))),
    }
}

/// The chart of a trend: the points, the instrument's range, cut-off and bands, and the
/// rupture and repair markers, with a title and description in words.
fn chart_of(trend: &Trend, instrument: Option<&LoadedInstrument>, x: XAxis, width: u32, height: u32) -> Chart {
    let kept: Vec<(usize, &super::model::TrendPoint)> = trend
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| x == XAxis::Time || p.session.is_some())
        .collect();
    let points: Vec<ChartPoint> = kept
        .iter()
        .map(|(_, p)| match x {
            XAxis::Time => ChartPoint {
                x: p.administered_at.timestamp() as f64,
                total: p.total,
                label: p.administered_at.format("%Y-%m-%d").to_string(),
            },
            XAxis::Session => {
                let session = p.session.unwrap_or_default();
                ChartPoint {
                    x: f64::from(session),
                    total: p.total,
                    label: format!("S{session}"),
                }
            }
        })
        .collect();
    let expected: Vec<ChartExpected> = kept
        .iter()
        .zip(&points)
        .filter_map(|((_, p), drawn)| {
            let e = p.expected?;
            Some(ChartExpected {
                x: drawn.x,
                expected: e.expected,
                bound: e.bound,
            })
        })
        .collect();
    let unscored: Vec<ChartMarker> = trend
        .unscored
        .iter()
        .filter_map(|u| {
            let (x, label) = match x {
                XAxis::Time => (
                    u.administered_at.timestamp() as f64,
                    u.administered_at.format("%Y-%m-%d").to_string(),
                ),
                XAxis::Session => {
                    let session = u.session?;
                    (f64::from(session), format!("S{session}"))
                }
            };
            let flags = if u.flags.is_empty() {
                String::new()
            } else {
                format!("; flags: {}", u.flags.join(", "))
            };
            Some(ChartMarker {
                x,
                label,
                detail: format!("not scored ({}){flags}", u.reason),
            })
        })
        .collect();
    // Marker positions among the points drawn.
    let index_of = |id: uuid::Uuid| kept.iter().position(|(_, p)| p.response_id == id);
    let ruptures: Vec<usize> = trend
        .summary
        .ruptures
        .iter()
        .filter_map(|r| index_of(r.response_id))
        .collect();
    let repairs: Vec<usize> = trend
        .summary
        .ruptures
        .iter()
        .filter_map(|r| r.repaired_by_response_id.and_then(index_of))
        .collect();
    let (title, y_min, y_max, cutoff, bands) = match instrument {
        Some(i) => {
            let d = &i.definition;
            let items = d.items.len() as f64;
            // A cut-off on the mean is drawn in total units.
            let cutoff = d.cutoff.map(|c| match d.method {
                Method::Sum => to_f64(c.value),
                Method::Mean => to_f64(c.value) * items,
            });
            let bands = d
                .bands
                .iter()
                .map(|b| ChartBand {
                    min: to_f64(b.min),
                    max: to_f64(b.max),
                    label: b.label.clone(),
                })
                .collect();
            (
                i.version.title.clone(),
                to_f64(d.min_total()),
                to_f64(d.max_total()),
                cutoff.map(|c| (c, d.cutoff.map(|c| c.comparator))),
                bands,
            )
        }
        None => (trend.instrument.clone(), 0.0, 1.0, None, Vec::new()),
    };
    let title = format!(
        "{title} ({}-rated) for patient {}: {} point{}",
        trend.rater.as_str(),
        trend.patient,
        points.len(),
        if points.len() == 1 { "" } else { "s" }
    );
    let mut description = match (points.first(), points.last()) {
        (Some(first), Some(last)) => {
            let repaired = trend.summary.ruptures.iter().filter(|r| r.repaired).count();
            let mut d = format!(
                "Totals from {} at {} to {} at {}, on a possible range of {} to {}. ",
                number(first.total),
                first.label,
                number(last.total),
                last.label,
                number(y_min),
                number(y_max)
            );
            let _ = std::fmt::Write::write_fmt(
                &mut d,
                format_args!(
                    "{} rupture{} ({repaired} repaired).",
                    ruptures.len(),
                    if ruptures.len() == 1 { "" } else { "s" }
                ),
            );
            if let Some((value, comparator)) = cutoff {
                let side = match comparator {
                    Some(Comparator::Lt) | Some(Comparator::Le) => "below",
                    _ => "above",
                };
                let _ = std::fmt::Write::write_fmt(
                    &mut d,
                    format_args!(
                        " Cut-off at {} (dashed line); {} response{} flagged {side} it.",
                        number(value),
                        trend.summary.below_cutoff,
                        if trend.summary.below_cutoff == 1 { "" } else { "s" }
                    ),
                );
            }
            d
        }
        _ if unscored.is_empty() => "No responses in this series.".to_string(),
        _ => "No scored responses in this series. ".to_string(),
    };
    if !expected.is_empty() {
        let off = trend
            .points
            .iter()
            .filter(|p| p.expected.is_some_and(|e| !e.on_track))
            .count();
        let _ = std::fmt::Write::write_fmt(
            &mut description,
            format_args!(
                " The orange dashed line is the expected response of this clinic's patients with the same intake, \
                 the shaded band reaches to the bound; {off} point{} lie beyond it (not on track).",
                if off == 1 { "" } else { "s" }
            ),
        );
    }
    if !unscored.is_empty() {
        let flagged = trend.unscored.iter().filter(|u| !u.flags.is_empty()).count();
        let _ = std::fmt::Write::write_fmt(
            &mut description,
            format_args!(
                " {} response{} could not be scored (marked on the time axis); {flagged} of them carr{} a safety flag.",
                unscored.len(),
                if unscored.len() == 1 { "" } else { "s" },
                if flagged == 1 { "ies" } else { "y" }
            ),
        );
    }
    Chart {
        width,
        height,
        title,
        description,
        y_min,
        y_max,
        points,
        cutoff: cutoff.map(|(v, _)| v),
        bands,
        ruptures,
        repairs,
        unscored,
        step: instrument.map_or(1.0, |i| to_f64(i.definition.scale.step)),
        expected,
    }
}

fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

/// One patient's trend as an SVG chart: totals as a line with points, the y axis over the
/// instrument's possible range, the cut-off dashed, bands shaded, ruptures red and repairs
/// green, and a `<title>`/`<desc>` in words. No script and no external reference; the same
/// data gives the same bytes. Embed it with `<img src=...>` after fetching it with the
/// token (it is patient data: `Cache-Control: private, no-store`).
#[utoipa::path(
    tag = "analytics",
    params(("patient" = String, Path, description = "The patient reference"), TrendQuery, ChartQuery),
    responses(
        (status = 200, description = "The chart", content_type = "image/svg+xml", body = String),
        (status = 400, description = "Missing `instrument`, a bad date, rater, size or x", body = Problem, content_type = "application/problem+json"),
        crate::edge::problems::Unauthorized,
        (status = 403, description = "Needs `responses:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The organisation has no data for this patient, or the instrument is not one the caller can see", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["responses:read"]))
)]
#[get("/patients/{patient}/trends.svg")]
pub async fn patient_trend_chart(
    principal: Principal,
    state: web::Data<AppState>,
    patient: web::Path<String>,
    query: crate::extract::ApiQuery<TrendQuery>,
    chart_query: crate::extract::ApiQuery<ChartQuery>,
) -> ApiResult<HttpResponse> {
    let width = size(chart_query.width, 720, "width")?;
    let height = size(chart_query.height, 360, "height")?;
    let x = match chart_query.x {
        Some(XParam::Session) => XAxis::Session,
        _ => XAxis::Time,
    };
    let (trend, instrument) =
        super::trends::load(&principal, &state, super::trends::path_reference(&patient)?, &query).await?;
    let svg = chart::render(&chart_of(&trend, instrument.as_deref(), x, width, height));
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(svg))
}
