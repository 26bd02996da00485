//! Research export: every scored response with its item answers, streamed in chunks as
//! NDJSON or CSV, with patient, clinician and episode references pseudonymised by default
//! (HMAC-SHA256 under a per-organisation secret, stable until rotated).

pub mod dictionary;
pub mod pseudonym_key;
pub mod responses;

pub use crate::pseudonyms::{pseudonym, pseudonym_secret, rotate_pseudonym_secret};

/// A text cell of a CSV export, neutralised against formula injection (OWASP "CSV
/// Injection"): a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
/// leading `'`, so a spreadsheet shows it as text instead of evaluating it. Numeric columns
/// are written as numbers and never pass through here.
pub fn text_cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

/// A CSV writer's error as a server fault (the writer only fails on I/O into memory).
pub fn csv_error(e: csv::Error) -> crate::error::ApiError {
    crate::error::ApiError::internal(e)
}

#[cfg(test)]
mod csv_tests {
    use super::text_cell;

    #[test]
    fn formula_prefixes_are_neutralised() {
        for bad in ["=HYPERLINK(\"x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(text_cell(bad), format!("'{bad}"));
        }
        assert_eq!(text_cell("p-123"), "p-123");
        assert_eq!(text_cell(""), "");
    }
}
