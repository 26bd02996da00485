//! Keyset pagination shared by every list: a bounded `limit` and an opaque cursor that
//! encodes the last row's sort key. A cursor that does not decode is a 400, never a 500.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// `limit` from the query string: 1..=500, default 50. Taken as text so that `abc`, `-1` and
/// `10^9` all reach this check and answer the same 400.
pub fn limit(raw: Option<&str>) -> ApiResult<i64> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "`limit` must be a whole number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

pub fn encode_cursor<T: Serialize>(key: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(raw: Option<&str>) -> ApiResult<Option<T>> {
    let Some(text) = raw else { return Ok(None) };
    let bad = || ApiError::BadRequest("`cursor` is not a cursor this service issued".into());
    let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map(Some).map_err(|_| bad())
}

/// Splits one extra fetched row off: `rows` was loaded with `limit + 1`.
pub fn page<T, K: Serialize>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> K) -> (Vec<T>, Option<String>) {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        let next = rows.last().map(|r| encode_cursor(&key(r)));
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some("500")).unwrap(), 500);
        for bad in ["0", "-1", "501", "1000000000", "abc", ""] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_fails() {
        let c = encode_cursor(&(42i64, "x"));
        assert_eq!(
            decode_cursor::<(i64, String)>(Some(&c)).unwrap(),
            Some((42, "x".to_string()))
        );
        assert!(decode_cursor::<(i64, String)>(Some("!!garbage")).is_err());
        assert!(decode_cursor::<i64>(Some("bm9wZQ")).is_err());
    }
}
