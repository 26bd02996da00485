//! The Observation search parameters, parsed with FHIR's search rules. Pure: no database,
//! no HTTP; unit-tested here.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::error::ApiError;
use crate::responses::store;

/// A FHIR date or dateTime as the instants it spans: a year, a month, a day (UTC), or one
/// instant for a full date-time.
fn parse_date(value: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        let t = t.with_timezone(&Utc);
        return Some((t, t));
    }
    let (first, next) = match value.len() {
        4 => {
            let year: i32 = value.parse().ok()?;
            (
                NaiveDate::from_ymd_opt(year, 1, 1)?,
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?,
            )
        }
        7 => {
            let first = NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").ok()?;
            (first, first.checked_add_months(chrono::Months::new(1))?)
        }
        10 => {
            let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
            (day, day.succ_opt()?)
        }
        _ => return None,
    };
    let start = first.and_hms_opt(0, 0, 0)?.and_utc();
    let end = next.and_hms_opt(0, 0, 0)?.and_utc() - chrono::Duration::microseconds(1);
    Some((start, end))
}

/// The parameters of an Observation search, parsed with FHIR's rules: a repeated
/// parameter is AND, a comma inside one is OR, `code` takes `system|code`, `date` takes
/// partial dates. `no_match` when the parameters already rule out every row (a code that
/// is no score of rapport's, an id that is no UUID, two different subjects).
#[derive(Debug)]
pub struct ObservationSearch {
    pub scored: store::ScoredSearch,
    pub no_match: bool,
    /// `_count=0`: answer the number of matches only.
    pub count_only: bool,
    /// The parameters as given, for the `next` link.
    params: Vec<(String, String)>,
}

/// AND of a repeated parameter's OR sets: the values every occurrence allows.
fn and_any<T: PartialEq + Clone>(current: &mut Option<Vec<T>>, any_of: Vec<T>) {
    *current = Some(match current.take() {
        None => any_of,
        Some(kept) => kept.into_iter().filter(|v| any_of.contains(v)).collect(),
    });
}

/// The instrument a `code` token names: `{key}-total` of rapport's code system or a LOINC
/// total code, with the FHIR token rules: `system|code` must match the system, `|code`
/// means no system (every code rapport gives has one: no match), `code` any system.
fn instrument_of_token<'a>(token: &'a str, code_system: &str) -> Option<&'a str> {
    let ours = |code: &'a str| code.strip_suffix("-total");
    let loinc = |code: &'a str| super::resources::instrument_of_loinc(code);
    match token.split_once('|') {
        None => ours(token).or_else(|| loinc(token)),
        Some(("", _)) => None,
        Some((system, code)) if system == code_system => ours(code),
        Some((system, code)) if system == super::resources::LOINC => loinc(code),
        Some(_) => None,
    }
}

impl ObservationSearch {
    /// Parses a query string: `subject=Patient/{id}` (required), `code` (`{key}-total`,
    /// optionally `system|code`), `date` with `ge`/`gt`/`le`/`lt`/`eq` prefixes,
    /// `derived-from`, `_count` (0-500), `_sort`, `_offset`; anything else is a 400 naming
    /// the parameter.
    pub fn parse(query: &str, code_system: &str) -> Result<ObservationSearch, ApiError> {
        let bad = |m: &str| ApiError::BadRequest(m.to_string());
        let params: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|_| bad("malformed query string"))?;
        let mut search = store::ScoredSearch {
            limit: 50,
            ..Default::default()
        };
        let mut subjects: Option<Vec<String>> = None;
        let mut count_only = false;
        for (name, value) in &params {
            match name.as_str() {
                "subject" => and_any(
                    &mut subjects,
                    value
                        .split(',')
                        .map(|v| crate::refs::nfc(crate::refs::fhir_reference_id(v, "Patient").unwrap_or(v)))
                        .collect(),
                ),
                "code" => and_any(
                    &mut search.instruments,
                    value
                        .split(',')
                        .filter_map(|token| instrument_of_token(token, code_system).map(str::to_string))
                        .collect(),
                ),
                "derived-from" => and_any(
                    &mut search.ids,
                    value
                        .split(',')
                        .filter_map(|v| Uuid::parse_str(v.strip_prefix("QuestionnaireResponse/").unwrap_or(v)).ok())
                        .collect(),
                ),
                "date" if value.contains(',') => {
                    return Err(bad("`date` takes one value per parameter (repeat it for a range)"));
                }
                "date" => apply_date(&mut search, value)?,
                "_count" if value.trim() == "0" => count_only = true,
                "_count" => {
                    search.limit = crate::pagination::limit(Some(value)).map_err(|_| {
                        bad(&format!(
                            "`_count` must be a whole number from 0 to {}",
                            crate::pagination::MAX_LIMIT
                        ))
                    })?
                }
                "_offset" => {
                    search.offset = value
                        .parse::<i64>()
                        .ok()
                        .filter(|o| (0..=10_000_000).contains(o))
                        .ok_or_else(|| bad("`_offset` must be a whole number from 0"))?;
                }
                "_sort" => match value.as_str() {
                    "date" => search.descending = false,
                    "-date" => search.descending = true,
                    _ => return Err(bad("`_sort` must be date or -date")),
                },
                "_format" => {}
                other => return Err(bad(&format!("unsupported search parameter `{other}`"))),
            }
        }
        let subjects = subjects.ok_or_else(|| bad("`subject=Patient/{id}` is required"))?;
        // A comma list is an OR of patients; repeated parameters AND (two different: empty).
        let mut distinct = subjects;
        distinct.sort();
        distinct.dedup();
        let no_match = distinct.is_empty()
            || search.instruments.as_ref().is_some_and(Vec::is_empty)
            || search.ids.as_ref().is_some_and(Vec::is_empty)
            || matches!((search.from, search.to), (Some(f), Some(t)) if f > t);
        search.patients = distinct;
        Ok(ObservationSearch {
            scored: search,
            no_match,
            count_only,
            params,
        })
    }

    /// The query of the next page: the same parameters, `_offset` moved on by one page.
    pub fn next_page_query(&self) -> String {
        let mut kept: Vec<(String, String)> = self.params.iter().filter(|(n, _)| n != "_offset").cloned().collect();
        kept.push(("_offset".into(), (self.scored.offset + self.scored.limit).to_string()));
        serde_urlencoded::to_string(&kept).unwrap_or_default()
    }
}

/// One `date` parameter, ANDed with the others: a prefix (`eq` when none) and a date,
/// partial date or date-time; each bound only ever narrows the range.
fn apply_date(search: &mut store::ScoredSearch, value: &str) -> Result<(), ApiError> {
    let (prefix, rest) = match (value.get(..2), value.get(2..)) {
        (Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")), Some(rest)) => (p, rest),
        _ => ("eq", value),
    };
    let (start, end) = parse_date(rest).ok_or_else(|| {
        ApiError::BadRequest(
            "`date` must be a year, month, date or date-time (2026, 2026-03, 2026-03-04, RFC 3339) with an optional ge/gt/le/lt/eq prefix"
                .into(),
        )
    })?;
    let mut lower = |at: DateTime<Utc>, inclusive: bool| {
        let stricter = match search.from {
            None => true,
            Some(f) => at > f || (at == f && !inclusive),
        };
        if stricter {
            (search.from, search.from_inclusive) = (Some(at), inclusive);
        }
    };
    match prefix {
        "ge" => lower(start, true),
        "gt" => lower(end, false),
        "eq" => lower(start, true),
        _ => {}
    }
    let mut upper = |at: DateTime<Utc>, inclusive: bool| {
        let stricter = match search.to {
            None => true,
            Some(t) => at < t || (at == t && !inclusive),
        };
        if stricter {
            (search.to, search.to_inclusive) = (Some(at), inclusive);
        }
    };
    match prefix {
        "le" => upper(end, true),
        "lt" => upper(start, false),
        "eq" => upper(end, true),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ObservationSearch {
        fn parse_default(q: &str) -> Result<ObservationSearch, ApiError> {
            ObservationSearch::parse(q, SYSTEM)
        }
    }

    const SYSTEM: &str = "https://rapport.example/fhir/CodeSystem/rapport";

    fn parse(q: &str) -> ObservationSearch {
        ObservationSearch::parse(q, SYSTEM).unwrap()
    }

    #[test]
    fn subject_is_required() {
        assert!(matches!(
            ObservationSearch::parse_default("code=srs-total"),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(parse("subject=Patient/p-1").scored.patients, vec!["p-1".to_string()]);
    }

    #[test]
    fn code_names_the_instrument_and_its_system_must_match() {
        let one = |q: &str| parse(q).scored.instruments;
        assert_eq!(one("subject=Patient/p&code=srs-total"), Some(vec!["srs".to_string()]));
        assert_eq!(
            one("subject=Patient/p&code=https://rapport.example/fhir/CodeSystem/rapport%7Cwai-sr-total"),
            Some(vec!["wai-sr".to_string()])
        );
        assert_eq!(
            one("subject=Patient/p&code=http://loinc.org%7C44261-6"),
            Some(vec!["phq-9".to_string()])
        );
        assert!(
            parse("subject=Patient/p&code=http://x%7Cwai-sr-total").no_match,
            "another system"
        );
        assert!(parse("subject=Patient/p&code=%7Cwai-sr-total").no_match, "no system");
        assert!(parse("subject=Patient/p&code=http://loinc.org%7Cwai-sr-total").no_match);
        assert!(parse("subject=Patient/p&code=12345-6").no_match);
    }

    #[test]
    fn date_prefixes_bound_the_range() {
        let s = parse("subject=Patient/p&date=ge2026-01-01&date=lt2026-02-01").scored;
        assert_eq!(s.from.map(|t| t.to_rfc3339()), Some("2026-01-01T00:00:00+00:00".into()));
        assert!(s.from_inclusive);
        assert_eq!(s.to.map(|t| t.to_rfc3339()), Some("2026-02-01T00:00:00+00:00".into()));
        assert!(!s.to_inclusive);
        let day = parse("subject=Patient/p&date=2026-03-04").scored;
        assert_eq!(
            day.to.map(|t| t.to_rfc3339()),
            Some("2026-03-04T23:59:59.999999+00:00".into())
        );
        assert!(ObservationSearch::parse_default("subject=Patient/p&date=yesterday").is_err());
    }

    #[test]
    fn paging_and_sorting() {
        let s = parse("subject=Patient/p&_count=20&_offset=40&_sort=-date");
        assert_eq!((s.scored.limit, s.scored.offset, s.scored.descending), (20, 40, true));
        assert_eq!(
            s.next_page_query(),
            "subject=Patient%2Fp&_count=20&_sort=-date&_offset=60"
        );
        assert!(parse("subject=Patient/p&_count=0").count_only);
        assert!(ObservationSearch::parse_default("subject=Patient/p&_count=501").is_err());
        assert!(ObservationSearch::parse_default("subject=Patient/p&_sort=name").is_err());
    }

    #[test]
    fn repeats_are_and_and_commas_are_or() {
        let or = parse("subject=Patient/p&code=srs-total,wai-sr-total")
            .scored
            .instruments;
        assert_eq!(or, Some(vec!["srs".to_string(), "wai-sr".to_string()]));
        let and = parse("subject=Patient/p&code=srs-total,wai-sr-total&code=srs-total");
        assert_eq!(and.scored.instruments, Some(vec!["srs".to_string()]));
        assert!(parse("subject=Patient/p&code=srs-total&code=wai-sr-total").no_match);
        assert!(parse("subject=Patient/p&subject=Patient/q").no_match);
        assert!(!parse("subject=Patient/p&subject=Patient/p").no_match);
        assert_eq!(
            parse("subject=Patient/p,Patient/q").scored.patients,
            vec!["p".to_string(), "q".to_string()],
            "a comma list is an OR"
        );
        // Two date bounds narrow: the later lower bound and the earlier upper bound win.
        let s = parse("subject=Patient/p&date=ge2026-01&date=ge2026-02-10&date=le2026&date=lt2026-06").scored;
        assert_eq!(s.from.map(|t| t.to_rfc3339()), Some("2026-02-10T00:00:00+00:00".into()));
        assert_eq!(s.to.map(|t| t.to_rfc3339()), Some("2026-06-01T00:00:00+00:00".into()));
        assert!(!s.to_inclusive);
        assert!(parse("subject=Patient/p&date=ge2026-05&date=lt2026-04").no_match);
    }

    #[test]
    fn partial_dates_span_their_period() {
        let month = parse("subject=Patient/p&date=2026-02").scored;
        assert_eq!(
            month.from.map(|t| t.to_rfc3339()),
            Some("2026-02-01T00:00:00+00:00".into())
        );
        assert_eq!(
            month.to.map(|t| t.to_rfc3339()),
            Some("2026-02-28T23:59:59.999999+00:00".into())
        );
        let year = parse("subject=Patient/p&date=2025").scored;
        assert_eq!(
            year.to.map(|t| t.to_rfc3339()),
            Some("2025-12-31T23:59:59.999999+00:00".into())
        );
        assert!(ObservationSearch::parse_default("subject=Patient/p&date=2026-13").is_err());
    }

    #[test]
    fn unknown_parameters_are_refused() {
        match ObservationSearch::parse_default("subject=Patient/p&status=final") {
            Err(ApiError::BadRequest(m)) => assert!(m.contains("`status`")),
            other => panic!("expected 400, got {other:?}"),
        }
    }
}
