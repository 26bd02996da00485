//! Reading a posted QuestionnaireResponse into rapport's terms (a `NewResponse`), with the
//! FHIRPath expression of every element so that errors point into the posted resource.
//! Pure: no database, no HTTP.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::invalid;
use super::resources::{RATED_CLINICIAN_PATH, SESSION_NUMBER_PATH};
use crate::error::{ApiError, FieldError};
use crate::responses::model::NewResponse;

/// What a posted QuestionnaireResponse says, in rapport's terms, and where each answer was.
pub(super) struct Posted {
    pub body: NewResponse,
    /// JSON pointer of the internal request -> FHIRPath expression in the posted resource.
    pub expressions: HashMap<String, String>,
}

pub(super) fn reference_id<'a>(value: &'a Value, kind: &str) -> Option<&'a str> {
    crate::refs::fhir_reference_id(value.get("reference")?.as_str()?, kind)
}

fn flatten(
    items: &Value,
    path: &str,
    answers: &mut BTreeMap<String, Value>,
    expressions: &mut HashMap<String, String>,
    errors: &mut Vec<FieldError>,
) {
    let Some(items) = items.as_array() else { return };
    for (i, item) in items.iter().enumerate() {
        let here = format!("{path}.item[{i}]");
        if let Some(nested) = item.get("item") {
            flatten(nested, &here, answers, expressions, errors);
        }
        let answer_list = item
            .get("answer")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(link_id) = item.get("linkId").and_then(Value::as_str) else {
            errors.push(FieldError::new(format!("{here}.linkId"), "every item needs a linkId"));
            continue;
        };
        let answer_pointer = format!("/answers/{}", crate::error::escape_pointer(link_id));
        if expressions.contains_key(&answer_pointer) {
            errors.push(FieldError::new(
                format!("{here}.linkId"),
                format!("linkId `{link_id}` appears more than once; each item may appear once"),
            ));
            continue;
        }
        if answer_list.is_empty() {
            if item.get("item").is_none() {
                expressions.insert(answer_pointer, here.clone());
            }
            continue;
        }
        let at = format!("{here}.answer[0]");
        expressions.insert(answer_pointer, at.clone());
        let [answer] = answer_list.as_slice() else {
            errors.push(FieldError::new(format!("{here}.answer[1]"), "one answer per item"));
            continue;
        };
        if let Some(nested) = answer.get("item") {
            flatten(nested, &at, answers, expressions, errors);
        }
        let value = if let Some(v) = answer.get("valueInteger").or_else(|| answer.get("valueDecimal")) {
            Some(v.clone())
        } else if let Some(code) = answer
            .get("valueCoding")
            .and_then(|c| c.get("code"))
            .and_then(Value::as_str)
        {
            code.trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        } else {
            None
        };
        match value {
            Some(v @ Value::Number(_)) => {
                answers.insert(link_id.to_string(), v);
            }
            _ => errors.push(FieldError::new(
                at,
                "the answer must be valueInteger, valueDecimal or a valueCoding whose code is the number",
            )),
        }
    }
}

/// The elements of a QuestionnaireResponse rapport reads or may ignore; anything else
/// (`modifierExtension`, `implicitRules`, `contained`, ...) could change the meaning and is
/// refused.
const QR_ELEMENTS: [&str; 16] = [
    "resourceType",
    "id",
    "meta",
    "text",
    "language",
    "extension",
    "identifier",
    "basedOn",
    "partOf",
    "questionnaire",
    "status",
    "subject",
    "encounter",
    "authored",
    "author",
    "source",
];
const ITEM_ELEMENTS: [&str; 4] = ["linkId", "text", "definition", "answer"];
const ANSWER_ELEMENTS: [&str; 3] = ["valueInteger", "valueDecimal", "valueCoding"];

/// Every element rapport does not read or accept: 422 naming each (read strictly, the way
/// EHRs send them: nothing that changes the meaning passes unread).
fn check_elements(qr: &Value, errors: &mut Vec<FieldError>) {
    let refuse = |errors: &mut Vec<FieldError>, at: String, what: &str| {
        errors.push(FieldError::new(at, what.to_string()));
    };
    let Some(top) = qr.as_object() else { return };
    for name in top.keys() {
        if name != "item" && !QR_ELEMENTS.contains(&name.as_str()) {
            refuse(
                errors,
                format!("QuestionnaireResponse.{name}"),
                "is not accepted by rapport",
            );
        }
    }
    for (i, item) in top
        .get("item")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for name in item.as_object().into_iter().flat_map(|o| o.keys()) {
            if name == "item" {
                refuse(
                    errors,
                    format!("QuestionnaireResponse.item[{i}].item"),
                    "nested items are not accepted",
                );
            } else if !ITEM_ELEMENTS.contains(&name.as_str()) {
                refuse(
                    errors,
                    format!("QuestionnaireResponse.item[{i}].{name}"),
                    "is not accepted by rapport",
                );
            }
        }
        for (j, answer) in item
            .get("answer")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for name in answer.as_object().into_iter().flat_map(|o| o.keys()) {
                if name == "item" {
                    refuse(
                        errors,
                        format!("QuestionnaireResponse.item[{i}].answer[{j}].item"),
                        "nested items are not accepted",
                    );
                } else if !ANSWER_ELEMENTS.contains(&name.as_str()) {
                    refuse(
                        errors,
                        format!("QuestionnaireResponse.item[{i}].answer[{j}].{name}"),
                        "is not accepted by rapport",
                    );
                }
            }
        }
    }
}

/// `valueDecimal`s whose JSON text a double cannot hold exactly (e.g.
/// `9.0000000000000000000000000001`, which would read as 9): 422, since the answer must be
/// judged as written.
pub(super) fn inexact_decimals(raw: &str) -> Vec<FieldError> {
    use serde_json::value::RawValue;
    #[derive(serde::Deserialize)]
    struct Qr<'a> {
        #[serde(borrow, default)]
        item: Vec<Item<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Item<'a> {
        #[serde(borrow, default)]
        answer: Vec<Answer<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow, default, rename = "valueDecimal")]
        value_decimal: Option<&'a RawValue>,
    }
    let Ok(qr) = serde_json::from_str::<Qr<'_>>(raw) else {
        return Vec::new();
    };
    let exact = |text: &str| -> bool {
        // `from_str_exact` refuses what a Decimal would have to round.
        let Ok(written) =
            rust_decimal::Decimal::from_str_exact(text).or_else(|_| rust_decimal::Decimal::from_scientific(text))
        else {
            return false;
        };
        let Ok(read) = text.parse::<f64>() else { return false };
        // The shortest text that reads back as the same double: what scoring will see.
        format!("{read}")
            .parse::<rust_decimal::Decimal>()
            .is_ok_and(|seen| seen.normalize() == written.normalize())
    };
    let mut errors = Vec::new();
    for (i, item) in qr.item.iter().enumerate() {
        for (j, answer) in item.answer.iter().enumerate() {
            if let Some(text) = answer.value_decimal.map(RawValue::get)
                && text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
                && !exact(text)
            {
                errors.push(FieldError::new(
                    format!("QuestionnaireResponse.item[{i}].answer[{j}].valueDecimal"),
                    format!("{text} cannot be read exactly: no answer on the scale is written so"),
                ));
            }
        }
    }
    errors
}

pub(super) fn parse_posted(qr: &Value, base: &str) -> Result<Posted, ApiError> {
    let mut errors = Vec::new();
    check_elements(qr, &mut errors);
    let mut expressions: HashMap<String, String> = [
        ("/patient", "QuestionnaireResponse.subject"),
        ("/administered_at", "QuestionnaireResponse.authored"),
        ("/instrument", "QuestionnaireResponse.questionnaire"),
        ("/instrument_version", "QuestionnaireResponse.questionnaire"),
        ("/rater", "QuestionnaireResponse.author"),
        ("/external_id", "QuestionnaireResponse.identifier"),
        ("/clinician", "QuestionnaireResponse.extension"),
        ("/session", "QuestionnaireResponse.extension"),
        ("/answers", "QuestionnaireResponse.item"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (instrument, instrument_version) = questionnaire_of(qr, base, &mut errors);
    let patient = subject_of(qr);
    if patient.is_none() {
        errors.push(FieldError::new(
            "QuestionnaireResponse.subject",
            "must reference a Patient (Patient/{id})",
        ));
    }
    let authored = qr.get("authored").and_then(Value::as_str).map(str::to_string);
    if authored.is_none() {
        errors.push(FieldError::new("QuestionnaireResponse.authored", "is required"));
    }
    let (external_system, external_id) = match identifier_of(qr) {
        Some(Identifier { system, value }) => (system, Some(value)),
        None => (None, None),
    };
    let (rater, clinician, session) = who_and_when(qr, &mut expressions, &mut errors);
    let mut answers = BTreeMap::new();
    if let Some(items) = qr.get("item") {
        flatten(
            items,
            "QuestionnaireResponse",
            &mut answers,
            &mut expressions,
            &mut errors,
        );
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Posted {
        body: NewResponse {
            instrument: instrument.unwrap_or_default(),
            instrument_version,
            patient: patient.unwrap_or_default(),
            clinician: clinician.map(|c| crate::refs::nfc(&c)),
            episode: None,
            rater,
            administered_at: authored.unwrap_or_default(),
            session,
            answers,
            external_id,
            external_system,
        },
        expressions,
    })
}

/// The instrument key and (optional) version a `questionnaire` canonical names: this
/// server's (`{base}/fhir/r4/Questionnaire/{key}`, or the relative `Questionnaire/{key}`),
/// with an optional `|version`. Another server's canonical names no instrument of ours.
fn questionnaire_of(qr: &Value, base: &str, errors: &mut Vec<FieldError>) -> (Option<String>, Option<i32>) {
    let canonical = qr.get("questionnaire").and_then(Value::as_str).unwrap_or_default();
    let (url, version) = match canonical.split_once('|') {
        Some((u, v)) => (u, Some(v)),
        None => (canonical, None),
    };
    let ours = url
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix("/fhir/r4/"))
        .or_else(|| url.starts_with("Questionnaire/").then_some(url));
    let instrument = ours
        .and_then(|rest| rest.strip_prefix("Questionnaire/"))
        .filter(|key| !key.is_empty() && !key.contains(['/', '?', '#']))
        .map(str::to_string);
    if instrument.is_none() {
        errors.push(FieldError::new(
            "QuestionnaireResponse.questionnaire",
            format!(
                "must be a Questionnaire canonical of this server ({base}/fhir/r4/Questionnaire/{{key}}, optionally |version, or Questionnaire/{{key}})"
            ),
        ));
    }
    let instrument_version = match version.map(|v| v.parse::<i32>()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            errors.push(FieldError::new(
                "QuestionnaireResponse.questionnaire",
                "the version after | must be a whole number",
            ));
            None
        }
    };
    (instrument, instrument_version)
}

/// The rater (from `author`), the rated clinician (the rated-clinician extension, else a
/// Practitioner author) and the session number (its extension).
fn who_and_when(
    qr: &Value,
    expressions: &mut HashMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> (Option<String>, Option<String>, Option<i64>) {
    let author = qr.get("author");
    let author_practitioner = author.and_then(|a| reference_id(a, "Practitioner")).map(str::to_string);
    let rater = if author_practitioner.is_some() {
        Some("clinician".to_string())
    } else if author.and_then(|a| reference_id(a, "RelatedPerson")).is_some() {
        Some("observer".to_string())
    } else {
        None
    };
    let mut clinician = author_practitioner;
    let mut session = None;
    for (i, ext) in qr
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let url = ext.get("url").and_then(Value::as_str).unwrap_or_default();
        if url.ends_with(RATED_CLINICIAN_PATH) {
            match ext.get("valueReference").and_then(|r| reference_id(r, "Practitioner")) {
                Some(c) => clinician = Some(c.to_string()),
                None => errors.push(FieldError::new(
                    format!("QuestionnaireResponse.extension[{i}]"),
                    "needs a valueReference to a Practitioner",
                )),
            }
            expressions.insert("/clinician".into(), format!("QuestionnaireResponse.extension[{i}]"));
        } else if url.ends_with(SESSION_NUMBER_PATH) {
            session = ext.get("valueInteger").and_then(Value::as_i64);
            expressions.insert("/session".into(), format!("QuestionnaireResponse.extension[{i}]"));
        }
    }
    (rater, clinician, session)
}

/// What a posted QuestionnaireResponse asks for, by its `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PostedStatus {
    /// Store it (idempotent by identifier).
    Completed,
    /// Replace the answers of the response stored under its identifier (or store it).
    Amended,
    /// Void the response stored under its identifier, for its subject.
    EnteredInError,
}

/// Reads `resourceType` and `status` before anything else: what else is required depends
/// on the status (`entered-in-error` needs only identifier and subject).
pub(super) fn status_of(qr: &Value) -> Result<PostedStatus, ApiError> {
    if qr.get("resourceType").and_then(Value::as_str) != Some("QuestionnaireResponse") {
        return Err(invalid(
            "QuestionnaireResponse.resourceType",
            "must be QuestionnaireResponse",
        ));
    }
    match qr.get("status").and_then(Value::as_str) {
        Some("completed") => Ok(PostedStatus::Completed),
        Some("amended") => Ok(PostedStatus::Amended),
        Some("entered-in-error") => Ok(PostedStatus::EnteredInError),
        Some("in-progress") => Err(invalid(
            "QuestionnaireResponse.status",
            "in-progress responses are not accepted: post the completed response",
        )),
        _ => Err(invalid(
            "QuestionnaireResponse.status",
            "must be completed, amended or entered-in-error",
        )),
    }
}

/// A FHIR identifier: system and value kept apart (never one `system|value` string, which
/// a `|` in either part could forge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identifier {
    pub system: Option<String>,
    pub value: String,
}

pub(super) fn identifier_of(qr: &Value) -> Option<Identifier> {
    let identifier = qr.get("identifier")?;
    let value = identifier.get("value")?.as_str()?.to_string();
    let system = identifier
        .get("system")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Some(Identifier { system, value })
}

/// The `Patient/{id}` the resource is about.
pub(super) fn subject_of(qr: &Value) -> Option<String> {
    qr.get("subject")
        .and_then(|s| reference_id(s, "Patient"))
        .map(crate::refs::nfc)
}

/// `If-None-Exist: identifier=[system]|value` (percent-encoded as in a URL). Anything else
/// is a 400: a condition rapport cannot evaluate must not silently create a duplicate.
pub(super) fn if_none_exist(condition: &str) -> Result<Identifier, ApiError> {
    let bad = || {
        ApiError::BadRequest("If-None-Exist must be `identifier=[system]|value`; no other search is supported".into())
    };
    let token = condition.trim().strip_prefix("identifier=").ok_or_else(bad)?;
    if token.contains('&') {
        return Err(bad());
    }
    let decoded = percent_encoding::percent_decode_str(token)
        .decode_utf8()
        .map_err(|_| bad())?;
    let (system, value) = decoded.split_once('|').ok_or_else(bad)?;
    if value.is_empty() {
        return Err(bad());
    }
    Ok(Identifier {
        system: Some(system.to_string()).filter(|s| !s.is_empty()),
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_system_and_value_apart() {
        let a = identifier_of(&serde_json::json!({"identifier": {"system": "urn:sys|a", "value": "b"}}));
        let b = identifier_of(&serde_json::json!({"identifier": {"system": "urn:sys", "value": "a|b"}}));
        assert_ne!(a, b);
    }

    #[test]
    fn if_none_exist_takes_only_identifier_tokens() {
        assert_eq!(
            if_none_exist("identifier=urn:ehr%7Cenc-1").unwrap(),
            Identifier {
                system: Some("urn:ehr".into()),
                value: "enc-1".into()
            }
        );
        assert_eq!(if_none_exist("identifier=|enc-1").unwrap().system, None);
        for bad in [
            "subject=Patient/p",
            "identifier=enc-1",
            "identifier=a|b&status=completed",
            "identifier=a|",
        ] {
            assert!(if_none_exist(bad).is_err(), "{bad}");
        }
    }
}
