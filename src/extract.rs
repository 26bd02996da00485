//! Request-body extraction with the README's limits and error shapes.
//! Bodies are read through decompression with the limit applied to the inflated bytes;
//! syntax errors are 400, wrong types, unknown or missing fields 422 naming the field by
//! JSON pointer, oversize 413 and a wrong content type 415.

use actix_web::dev::{Decompress, Payload};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError, escape_pointer};

/// The body limits, registered as app data by `startup` (`RAPPORT_BODY_LIMIT`,
/// `RAPPORT_LARGE_BODY_LIMIT`); without it the defaults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    pub standard: usize,
    pub large: usize,
    /// The whole body must arrive within this (`RAPPORT_CLIENT_REQUEST_TIMEOUT_MS`), else 408.
    pub timeout: std::time::Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            standard: 64 * 1024,
            large: 1024 * 1024,
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// The limits registered by `startup`, or the defaults.
pub fn body_limits(req: &HttpRequest) -> BodyLimits {
    req.app_data::<BodyLimits>().copied().unwrap_or_default()
}

/// Content encodings the body reader inflates; anything else is 415, never guessed at.
const SUPPORTED_ENCODINGS: [&str; 4] = ["identity", "gzip", "x-gzip", "deflate"];

fn check_content_encoding(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_ENCODING) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let all_known = text
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .all(|e| SUPPORTED_ENCODINGS.contains(&e.as_str()));
    if all_known && !text.trim().is_empty() {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "Content-Encoding must be gzip, deflate or identity".into(),
        ))
    }
}

/// A JSON body under the standard limit (`RAPPORT_BODY_LIMIT`, 64 KiB) or, with
/// `LARGE = true`, the large one (`RAPPORT_LARGE_BODY_LIMIT`, 1 MiB).
pub struct ApiJson<T, const LARGE: bool = false>(pub T);

/// Instrument definitions and batches.
pub type LargeJson<T> = ApiJson<T, true>;

/// True for `application/json` and any `application/<x>+json` (FHIR's included), without a
/// charset or with `charset=utf-8`: JSON is UTF-8 (RFC 8259), and a body announced as UTF-16
/// or Latin-1 would be read as something it is not (415 instead).
pub fn is_json_content_type(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let utf8 = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                || value.trim().trim_matches('"').eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    utf8 && (essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")))
}

/// Reads the whole (inflated) body, refusing more than `limit` bytes, an encoding it cannot
/// inflate (415), and a body that has not arrived within the request timeout (408).
pub async fn read_body(req: &HttpRequest, payload: Payload, limit: usize) -> Result<bytes::Bytes, ApiError> {
    check_content_encoding(req)?;
    let timeout = body_limits(req).timeout;
    match tokio::time::timeout(timeout, read_limited(req, payload, limit)).await {
        Ok(body) => body,
        Err(_) => Err(ApiError::RequestTimeout),
    }
}

async fn read_limited(req: &HttpRequest, payload: Payload, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("the body exceeds the limit of {limit} bytes"));
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
        && req.headers().get(header::CONTENT_ENCODING).is_none()
    {
        return Err(too_large());
    }
    let mut stream = Decompress::from_headers(payload, req.headers());
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The deepest nesting any rapport body needs is far below this; deeper is malformed (400).
pub const MAX_JSON_DEPTH: usize = 64;

/// The nesting depth of a JSON text (brackets outside strings), stopping past `limit`.
fn nesting_exceeds(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses JSON, naming the offending field by pointer.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if nesting_exceeds(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::BadRequest(format!(
            "JSON nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    if let Some(pointer) = repeated_member(bytes) {
        return Err(ApiError::validation(
            pointer,
            "this member name appears more than once in its object; each may appear once",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(value) => {
            de.end()
                .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
            Ok(value)
        }
        Err(err) => Err(path_error(err)),
    }
}

const REPEATED: &str = "rapport:repeated-member:";

/// The pointer of the first repeated member name in a JSON text (`{"1": 9, "1": 1}` names
/// `/1`), which a map or struct would otherwise resolve silently. `None` for valid JSON
/// without repeats and for malformed JSON (the typed parse reports that).
fn repeated_member(bytes: &[u8]) -> Option<String> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match Walk(&Step::Root).deserialize(&mut de) {
        Err(e) => e.to_string().strip_prefix(REPEATED).map(|rest| {
            // serde_json appends " at line L column C".
            rest.rsplit_once(" at line ").map_or(rest, |(p, _)| p).to_string()
        }),
        Ok(()) => None,
    }
}

/// Where a walk is, from the root; made into a JSON pointer only when it is reported.
enum Step<'p> {
    Root,
    Member(&'p Step<'p>, &'p str),
    Index(&'p Step<'p>, usize),
}

impl Step<'_> {
    fn pointer(&self) -> String {
        match self {
            Step::Root => String::new(),
            Step::Member(up, key) => format!("{}/{}", up.pointer(), escape_pointer(key)),
            Step::Index(up, i) => format!("{}/{i}", up.pointer()),
        }
    }
}

/// A JSON object's member name, borrowed from the text unless it holds escapes.
pub struct Name<'de>(pub std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Text)
    }
}

/// Walks a JSON value, failing at the first object that repeats a member name.
struct Walk<'p>(&'p Step<'p>);

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq.next_element_seed(Walk(&Step::Index(self.0, i)))?.is_some() {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(Name(key)) = map.next_key::<Name<'de>>()? {
            let here = Step::Member(self.0, &key);
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format!("{REPEATED}{}", here.pointer())));
            }
            map.next_value_seed(Walk(&here))?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// Deserialises a JSON text already checked by `parse_json` as part of a larger body (one
/// item of a batch), naming a bad field by pointer relative to that text.
pub fn from_checked_text<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(path_error)
}

/// Deserialises an already-parsed JSON value (one item of a batch), naming a bad field by
/// pointer relative to that value.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn path_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let pointer = pointer_of(err.path());
    let inner = err.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let message = strip_position(&inner.to_string());
            let pointer = match missing_field(&message) {
                Some(field) => format!("{pointer}/{}", escape_pointer(field)),
                None => pointer,
            };
            ApiError::Validation(vec![FieldError::new(pointer, message)])
        }
        _ => ApiError::BadRequest(format!("malformed JSON: {inner}")),
    }
}

fn strip_position(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    in_words(message)
}

/// serde's messages name Rust types (`expected i64`); a client wants words. The value
/// serde quotes is kept (`got 1000.0`).
fn in_words(message: &str) -> String {
    const TYPES: [(&str, &str); 12] = [
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("u64", "a whole number from 0"),
        ("u32", "a whole number from 0"),
        ("u16", "a whole number from 0"),
        ("u8", "a whole number from 0"),
        ("usize", "a whole number from 0"),
        ("f64", "a number"),
        ("a string", "text (a JSON string)"),
        ("a boolean", "true or false"),
        ("a sequence", "a JSON array"),
        ("a map", "a JSON object"),
    ];
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let Some((got, expected)) = rest.split_once(", expected ") else {
        return message.to_string();
    };
    let wanted = TYPES
        .iter()
        .find(|(t, _)| *t == expected)
        .map_or(expected, |(_, words)| words);
    let got = got
        .replace("floating point ", "the number ")
        .replace("integer ", "the number ")
        .replace('`', "");
    format!("must be {wanted} (got {got})")
}

/// The field a "missing field `x`" message names (the path stops at its parent; for unknown
/// fields the path already ends with the field).
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{}", escape_pointer(key))),
            Segment::Enum { variant } => out.push_str(&format!("/{}", escape_pointer(variant))),
            Segment::Unknown => {}
        }
    }
    out
}

impl<T: DeserializeOwned + 'static, const LARGE: bool> FromRequest for ApiJson<T, LARGE> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            if !is_json_content_type(&req) {
                return Err(ApiError::UnsupportedMediaType(
                    "the body must be application/json, in UTF-8 (no other charset)".into(),
                ));
            }
            let limits = body_limits(&req);
            let limit = if LARGE { limits.large } else { limits.standard };
            let bytes = read_body(&req, payload, limit).await?;
            parse_json(&bytes).map(ApiJson)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        tags: Vec<u8>,
    }

    fn pointer(e: ApiError) -> String {
        match e {
            ApiError::Validation(v) => v[0].pointer.clone(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn data_errors_name_the_field() {
        assert_eq!(
            pointer(parse_json::<Body>(br#"{"name": 1, "tags": []}"#).unwrap_err()),
            "/name"
        );
        assert_eq!(
            pointer(parse_json::<Body>(br#"{"name": "a", "tags": [1, "x"]}"#).unwrap_err()),
            "/tags/1"
        );
        assert_eq!(pointer(parse_json::<Body>(br#"{"tags": []}"#).unwrap_err()), "/name");
        assert_eq!(
            pointer(parse_json::<Body>(br#"{"name": "a", "tags": [], "org": 1}"#).unwrap_err()),
            "/org"
        );
    }

    #[test]
    fn repeated_member_names_are_422_naming_them() {
        let e = parse_json::<serde_json::Value>(br#"{"answers": {"1": 9, "2": 3, "1": 1}}"#).unwrap_err();
        assert_eq!(pointer(e), "/answers/1");
        let e = parse_json::<serde_json::Value>(br#"{"a": [{"x~/": 1, "x~/": 2}]}"#).unwrap_err();
        assert_eq!(pointer(e), "/a/0/x~0~1");
        // A name written with an escape is the same name.
        let e = parse_json::<serde_json::Value>(br#"{"list": [0, {"ab": 1, "a\u0062": 2}]}"#).unwrap_err();
        assert_eq!(pointer(e), "/list/1/ab");
        assert!(parse_json::<serde_json::Value>(br#"{"a": {"1": 1}, "b": {"1": 1}}"#).is_ok());
    }

    #[test]
    fn type_errors_are_said_in_words() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Session {
            session: Option<i64>,
        }
        match parse_json::<Session>(br#"{"session": 1e3}"#).unwrap_err() {
            ApiError::Validation(v) => {
                assert_eq!(v[0].pointer, "/session");
                assert_eq!(v[0].detail, "must be a whole number (got the number 1000.0)");
            }
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        assert!(matches!(
            parse_json::<Body>(b"{\"name\": "),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<serde_json::Value>(b"{} {}"),
            Err(ApiError::BadRequest(_))
        ));
        let deep = "[".repeat(10_000);
        assert!(matches!(
            parse_json::<serde_json::Value>(deep.as_bytes()),
            Err(ApiError::BadRequest(_))
        ));
    }
}

/// The query string as `T`, or a 400 naming the parameter that did not parse, in words (never
/// a Rust type name): actix's own `Query` says only "invalid digit found in string".
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T> ApiQuery<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for ApiQuery<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parses a query string into `T`, naming the parameter of any error.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let name = err.path().iter().next_back().map(|s| s.to_string()).unwrap_or_default();
        let message = err.into_inner().to_string();
        let (name, words) = match missing_field(&message) {
            Some(field) => (field.to_string(), "is required".to_string()),
            None => (name, query_words(&message)),
        };
        ApiError::BadRequest(if name.is_empty() {
            format!("invalid query parameters: {words}")
        } else {
            format!("`{name}` {words}")
        })
    })
}

/// A query parameter's parse error in words.
fn query_words(message: &str) -> String {
    if message.contains("invalid digit") || message.contains("cannot parse integer") {
        "must be a whole number".into()
    } else if message.contains("number too large") || message.contains("number too small") {
        "is out of range".into()
    } else if message.contains("invalid float literal") {
        "must be a number".into()
    } else if message.contains("provided string was not `true` or `false`") {
        "must be true or false".into()
    } else if message.contains("input contains invalid characters")
        || message.contains("premature end of input")
        || message.contains("trailing input")
        || message.contains("input is out of range")
        || message.contains("no possible date and time matching input")
    {
        "must be an RFC 3339 date-time with an offset (e.g. 2026-03-04T15:20:00Z)".into()
    } else {
        let m = in_words(message);
        if m.starts_with("must") {
            m
        } else {
            format!("is invalid: {m}")
        }
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(ApiQuery))
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Q {
        instrument: String,
        limit: Option<u32>,
        from: Option<chrono::DateTime<chrono::Utc>>,
    }

    fn detail(query: &str) -> String {
        match parse_query::<Q>(query) {
            Err(ApiError::BadRequest(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_query_parameter_is_named_in_words() {
        assert_eq!(detail("limit=5"), "`instrument` is required");
        assert_eq!(detail("instrument=x&limit=abc"), "`limit` must be a whole number");
        assert!(detail("instrument=x&from=yesterday").starts_with("`from` must be an RFC 3339"));
        for d in [
            detail("instrument=x&limit=-1"),
            detail("instrument=x&limit=99999999999"),
        ] {
            assert!(!d.contains("u32") && d.starts_with("`limit`"), "{d}");
        }
        assert!(parse_query::<Q>("instrument=x&limit=5").is_ok());
    }
}
