//! The outbox consumer that keeps `clinician_series` (the all-clinicians list reads one row
//! per series instead of every response) true to `responses` for the series of a batch.
//! Incremental: the facts are computed from the points the worker already read for the
//! batch (`Batch::points`), not aggregated again over `responses` in SQL.

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use crate::error::ApiError;
use crate::outbox::{Batch, Consumer};
use crate::series::{SeriesKey, SeriesPoint};

/// The facts `clinician_series` keeps of one (clinician, patient) series: the same as the
/// SQL definition the list reads for a series whose events are pending
/// (`store::SERIES_FACTS`), computed from the series' points.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptFacts {
    pub clinician: String,
    /// Scored totals in series order.
    pub totals: Vec<f64>,
    /// The highest instrument version among them.
    pub instrument_version: i32,
    /// Their distinct instrument versions, ascending.
    pub versions: Vec<i32>,
    pub below_cutoff: i64,
    /// The sum of session-3 totals (None without any).
    pub session3_sum: Option<f64>,
    pub session3_count: i64,
}

/// One `KeptFacts` per clinician of a patient's series (points in series order; unscored
/// points and points without a clinician are left out), in order of first appearance.
pub fn facts_of(points: &[SeriesPoint]) -> Vec<KeptFacts> {
    let mut out: Vec<KeptFacts> = Vec::new();
    for p in points {
        let (Some(total), Some(clinician)) = (p.total, p.clinician.as_deref()) else {
            continue;
        };
        let at = match out.iter().position(|f| f.clinician == clinician) {
            Some(at) => at,
            None => {
                out.push(KeptFacts {
                    clinician: clinician.to_string(),
                    totals: Vec::new(),
                    instrument_version: p.instrument_version,
                    versions: Vec::new(),
                    below_cutoff: 0,
                    session3_sum: None,
                    session3_count: 0,
                });
                out.len() - 1
            }
        };
        let Some(f) = out.get_mut(at) else { continue };
        f.totals.push(total);
        f.instrument_version = f.instrument_version.max(p.instrument_version);
        if let Err(i) = f.versions.binary_search(&p.instrument_version) {
            f.versions.insert(i, p.instrument_version);
        }
        if p.flags
            .iter()
            .any(|flag| flag == crate::scoring::score::FLAG_BELOW_CUTOFF)
        {
            f.below_cutoff += 1;
        }
        if p.session == Some(3) {
            f.session3_sum = Some(f.session3_sum.unwrap_or(0.0) + total);
            f.session3_count += 1;
        }
    }
    out
}

/// Registered first: the facts of a series are kept before anything reads them.
pub struct KeptSeries;

impl Consumer for KeptSeries {
    fn name(&self) -> &'static str {
        "kept clinician series"
    }

    fn consume<'a>(
        &'a self,
        conn: &'a mut AsyncPgConnection,
        batch: &'a mut Batch,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let kept: Vec<(&SeriesKey, KeptFacts)> = batch
                .series
                .iter()
                .zip(&batch.points)
                .flat_map(|(key, points)| facts_of(points).into_iter().map(move |f| (key, f)))
                .collect();
            super::store::replace_clinician_series(conn, &batch.series, &kept).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(
        clinician: Option<&str>,
        version: i32,
        session: Option<i32>,
        total: Option<f64>,
        flags: &[&str],
    ) -> SeriesPoint {
        SeriesPoint {
            id: uuid::Uuid::new_v4(),
            instrument_version: version,
            clinician: clinician.map(str::to_string),
            episode: None,
            session,
            total,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            answers: serde_json::Value::Null,
        }
    }

    #[test]
    fn facts_follow_the_sql_definition() {
        let points = [
            point(Some("b"), 2, Some(1), Some(40.0), &[]),
            point(Some("a"), 1, Some(3), Some(30.0), &["below_cutoff"]),
            // Unscored (an item flag alone) and clinician-less points are not kept.
            point(Some("a"), 1, Some(3), None, &["below_cutoff"]),
            point(None, 1, Some(3), Some(10.0), &[]),
            point(Some("b"), 1, Some(3), Some(20.5), &["below_cutoff", "other"]),
            point(Some("b"), 2, Some(3), Some(21.5), &[]),
        ];
        let facts = facts_of(&points);
        assert_eq!(
            facts,
            vec![
                KeptFacts {
                    clinician: "b".into(),
                    totals: vec![40.0, 20.5, 21.5],
                    instrument_version: 2,
                    versions: vec![1, 2],
                    below_cutoff: 1,
                    session3_sum: Some(42.0),
                    session3_count: 2,
                },
                KeptFacts {
                    clinician: "a".into(),
                    totals: vec![30.0],
                    instrument_version: 1,
                    versions: vec![1],
                    below_cutoff: 1,
                    session3_sum: Some(30.0),
                    session3_count: 1,
                },
            ]
        );
    }

    #[test]
    fn no_session_three_is_no_sum() {
        let facts = facts_of(&[point(Some("a"), 1, Some(2), Some(5.0), &[])]);
        assert_eq!(
            facts.first().map(|f| (f.session3_sum, f.session3_count)),
            Some((None, 0))
        );
        assert!(facts_of(&[point(Some("a"), 1, Some(3), None, &["x"])]).is_empty());
    }
}
