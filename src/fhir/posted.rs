//! Reading a posted QuestionnaireResponse into rapport's terms (a `NewResponse`), with the
//! FHIRPath expression of every element so that errors point into the posted resource.
//! Pure: no database, no HTTP.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::invalid;
use super::questionnaire::key_from_canonical;
use super::resources::{RATED_CLINICIAN_PATH, SESSION_NUMBER_PATH};
use crate::error::{ApiError, FieldError};
use crate::responses::model::NewResponse;

/// What a posted QuestionnaireResponse says, in rapport's terms, and where each answer was.
pub(super) struct Posted {
    pub body: NewResponse,
    pub status: String,
    /// JSON pointer of the internal request -> FHIRPath expression in the posted resource.
    pub expressions: HashMap<String, String>,
}

pub(super) fn reference_id<'a>(value: &'a Value, kind: &str) -> Option<&'a str> {
    value
        .get("reference")?
        .as_str()?
        .strip_prefix(kind)?
        .strip_prefix('/')
        .filter(|s| !s.is_empty())
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
        if answer_list.is_empty() {
            if item.get("item").is_none() {
                expressions.insert(
                    format!("/answers/{}", crate::error::escape_pointer(link_id)),
                    here.clone(),
                );
            }
            continue;
        }
        let at = format!("{here}.answer[0]");
        expressions.insert(
            format!("/answers/{}", crate::error::escape_pointer(link_id)),
            at.clone(),
        );
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

pub(super) fn parse_posted(qr: &Value) -> Result<Posted, ApiError> {
    let mut errors = Vec::new();
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
    if qr.get("resourceType").and_then(Value::as_str) != Some("QuestionnaireResponse") {
        return Err(invalid(
            "QuestionnaireResponse.resourceType",
            "must be QuestionnaireResponse",
        ));
    }
    let status = qr.get("status").and_then(Value::as_str).unwrap_or_default().to_string();
    let canonical = qr.get("questionnaire").and_then(Value::as_str).unwrap_or_default();
    let (url, version) = match canonical.split_once('|') {
        Some((u, v)) => (u, Some(v)),
        None => (canonical, None),
    };
    let instrument = key_from_canonical(url).map(str::to_string);
    if instrument.is_none() {
        errors.push(FieldError::new(
            "QuestionnaireResponse.questionnaire",
            "must be a Questionnaire canonical of this server",
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
    let patient = qr
        .get("subject")
        .and_then(|s| reference_id(s, "Patient"))
        .map(str::to_string);
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
    let external_id = qr.get("identifier").and_then(|i| {
        let value = i.get("value")?.as_str()?;
        Some(match i.get("system").and_then(Value::as_str) {
            Some(system) => format!("{system}|{value}"),
            None => value.to_string(),
        })
    });
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
            clinician,
            episode: None,
            rater,
            administered_at: authored.unwrap_or_default(),
            session,
            answers,
            external_id,
        },
        status,
        expressions,
    })
}
