//! Building FHIR R4 resources (as JSON) from rapport's own data. Pure: no I/O.

// `value["field"] = ...` on objects this module builds with `json!` a line earlier: the
// index cannot miss (IndexMut on a JSON object inserts).
#![allow(clippy::indexing_slicing)]

use crate::scoring::Rater;
use serde_json::{Value, json};

use crate::instruments::LoadedInstrument;
use crate::instruments::model::InstrumentStatus;
use crate::responses::model::{Administration, ResponseStatus};
use crate::scoring::to_f64;

pub const FHIR_JSON: &str = "application/fhir+json";
pub const RATED_CLINICIAN_PATH: &str = "/fhir/StructureDefinition/rated-clinician";
pub const SESSION_NUMBER_PATH: &str = "/fhir/StructureDefinition/session-number";
const MIN_VALUE: &str = "http://hl7.org/fhir/StructureDefinition/minValue";
const MAX_VALUE: &str = "http://hl7.org/fhir/StructureDefinition/maxValue";
const ORDINAL_VALUE: &str = "http://hl7.org/fhir/StructureDefinition/ordinalValue";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const UCUM: &str = "http://unitsofmeasure.org";

pub fn questionnaire_url(base: &str, key: &str) -> String {
    format!("{base}/fhir/r4/Questionnaire/{key}")
}

pub fn code_system(base: &str) -> String {
    format!("{base}/fhir/CodeSystem/rapport")
}

/// A computer-friendly name: `wai-sr` -> `WaiSr`.
fn computable_name(key: &str) -> String {
    let name: String = key
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            cs.next()
                .map(|f| f.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name
    } else {
        format!("Q{name}")
    }
}

fn number(value: rust_decimal::Decimal, integer: bool) -> Value {
    if integer {
        json!(to_f64(value) as i64)
    } else {
        json!(to_f64(value))
    }
}

/// An instrument version as a Questionnaire.
pub fn questionnaire(base: &str, instrument: &LoadedInstrument) -> Value {
    let v = &instrument.version;
    let def = &instrument.definition;
    let integer = def.scale.step.fract().is_zero() && def.scale.min.fract().is_zero();
    let (item_type, value_key) = if integer {
        ("integer", "valueInteger")
    } else {
        ("decimal", "valueDecimal")
    };
    let status = match v.status {
        InstrumentStatus::Draft => "draft",
        InstrumentStatus::Published => "active",
        InstrumentStatus::Retired => "retired",
    };
    let answer_options: Option<Vec<Value>> = (!v.scale.labels.is_empty()).then(|| {
        let steps = ((def.scale.max - def.scale.min) / def.scale.step).trunc();
        let steps: i64 = steps.try_into().unwrap_or(0).min(1000);
        (0..=steps)
            .map(|k| {
                let point = def.scale.min + def.scale.step * rust_decimal::Decimal::from(k);
                let code = point.normalize().to_string();
                let label = v
                    .scale
                    .labels
                    .iter()
                    .find(|(value, _)| value.trim().parse::<f64>().ok() == Some(to_f64(point)))
                    .map(|(_, l)| l.clone());
                let mut coding = json!({"system": format!("{}/scale", code_system(base)), "code": code});
                if let Some(label) = label {
                    coding["display"] = json!(label);
                }
                json!({
                    "extension": [{"url": ORDINAL_VALUE, "valueDecimal": to_f64(point)}],
                    "valueCoding": coding,
                })
            })
            .collect()
    });
    let items: Vec<Value> = v
        .items
        .iter()
        .map(|item| {
            let mut out = json!({
                "linkId": item.id,
                "type": item_type,
                "required": false,
                "extension": [
                    {"url": MIN_VALUE, value_key: number(def.scale.min, integer)},
                    {"url": MAX_VALUE, value_key: number(def.scale.max, integer)},
                ],
            });
            if let Some(text) = &item.text {
                out["text"] = json!(text);
            }
            if let Some(subscale) = &item.subscale {
                out["code"] = json!([{"system": format!("{}/subscale", code_system(base)), "code": subscale}]);
            }
            if let Some(options) = &answer_options {
                out["answerOption"] = json!(options);
            }
            out
        })
        .collect();
    let mut q = json!({
        "resourceType": "Questionnaire",
        "id": v.key,
        // Versions of one key share an id and fullUrl; versionId tells them apart (bdl-7).
        "meta": {"versionId": v.version.to_string()},
        "url": questionnaire_url(base, &v.key),
        "version": v.version.to_string(),
        "name": computable_name(&v.key),
        "title": v.title,
        "status": status,
        "subjectType": ["Patient"],
        "item": items,
    });
    if let Some(licence) = &v.licence {
        q["copyright"] = json!(licence);
    }
    q
}

fn answer_value(value: &Value, integer: bool) -> Value {
    match value.as_f64() {
        Some(f) if integer && f.fract() == 0.0 => json!({"valueInteger": f as i64}),
        Some(f) => json!({"valueDecimal": f}),
        None => json!({"valueString": value.to_string()}),
    }
}

/// A stored response as a QuestionnaireResponse.
pub fn questionnaire_response(base: &str, a: &Administration, instrument: Option<&LoadedInstrument>) -> Value {
    let integer = instrument
        .map(|i| i.definition.scale.step.fract().is_zero() && i.definition.scale.min.fract().is_zero())
        .unwrap_or(true);
    let order: Vec<String> = match instrument {
        Some(i) => i
            .version
            .items
            .iter()
            .map(|it| it.id.clone())
            .filter(|id| a.answers.contains_key(id))
            .collect(),
        None => a.answers.keys().cloned().collect(),
    };
    let items: Vec<Value> = order
        .iter()
        .map(|id| json!({"linkId": id, "answer": [answer_value(&a.answers[id], integer)]}))
        .collect();
    let mut qr = json!({
        "resourceType": "QuestionnaireResponse",
        "id": a.id.to_string(),
        "questionnaire": format!("{}|{}", questionnaire_url(base, &a.instrument), a.instrument_version),
        "status": match (a.status, a.amended) {
            (ResponseStatus::Voided, _) => "entered-in-error",
            (_, true) => "amended",
            _ => "completed",
        },
        "subject": {"reference": format!("Patient/{}", a.patient)},
        "authored": a.administered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if !items.is_empty() {
        qr["item"] = json!(items);
    }
    if let Some(value) = &a.external_id {
        qr["identifier"] = match &a.external_system {
            Some(system) => json!({"system": system, "value": value}),
            None => json!({"value": value}),
        };
    }
    let mut extensions = Vec::new();
    if let Some(c) = &a.clinician {
        extensions.push(json!({"url": format!("{base}{RATED_CLINICIAN_PATH}"), "valueReference": {"reference": format!("Practitioner/{c}")}}));
        if a.rater == Rater::Clinician {
            qr["author"] = json!({"reference": format!("Practitioner/{c}")});
        }
    }
    if let Some(s) = a.session {
        extensions.push(json!({"url": format!("{base}{SESSION_NUMBER_PATH}"), "valueInteger": s}));
    }
    if !extensions.is_empty() {
        qr["extension"] = json!(extensions);
    }
    if a.rater == Rater::Patient {
        qr["source"] = json!({"reference": format!("Patient/{}", a.patient)});
    }
    qr
}

/// A scored response as an Observation (`None` when it has no score).
pub const LOINC: &str = "http://loinc.org";

/// The LOINC codes of the built-in outcome measures' totals (built-in keys cannot be
/// redefined by an organisation, so the key alone identifies them).
const LOINC_TOTALS: [(&str, &str, &str); 2] = [
    (
        "phq-9",
        "44261-6",
        "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    ),
    (
        "gad-7",
        "70274-6",
        "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
    ),
];

/// The LOINC (code, display) of an instrument's total, when it has one.
pub fn loinc_total(instrument: &str) -> Option<(&'static str, &'static str)> {
    LOINC_TOTALS
        .iter()
        .find(|(key, _, _)| *key == instrument)
        .map(|(_, code, display)| (*code, *display))
}

/// The instrument whose total a LOINC code names.
pub fn instrument_of_loinc(code: &str) -> Option<&'static str> {
    LOINC_TOTALS.iter().find(|(_, c, _)| *c == code).map(|(key, _, _)| *key)
}

pub fn observation(base: &str, a: &Administration, title: &str) -> Option<Value> {
    let score = a.score.as_ref()?;
    let system = code_system(base);
    let quantity = |v: f64| json!({"value": v, "unit": "{score}", "system": UCUM, "code": "{score}"});
    let components: Vec<Value> = score
        .subscales
        .iter()
        .map(|(key, s)| {
            json!({
                "code": {"coding": [{"system": system, "code": format!("{}-{key}", a.instrument), "display": format!("{title}: {key}")}]},
                "valueQuantity": quantity(s.total),
            })
        })
        .collect();
    let mut obs = json!({
        "resourceType": "Observation",
        "id": a.id.to_string(),
        "status": if a.status == ResponseStatus::Voided { "entered-in-error" } else { "final" },
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}],
        "code": {"coding": total_codings(&system, &a.instrument, title)},
        "subject": {"reference": format!("Patient/{}", a.patient)},
        "effectiveDateTime": a.administered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "valueQuantity": quantity(score.total),
        "derivedFrom": [{"reference": format!("QuestionnaireResponse/{}", a.id)}],
    });
    if !components.is_empty() {
        obs["component"] = json!(components);
    }
    let performer = match (a.rater, &a.clinician) {
        (Rater::Patient, _) => Some(format!("Patient/{}", a.patient)),
        (Rater::Clinician, Some(c)) => Some(format!("Practitioner/{c}")),
        _ => None,
    };
    if let Some(p) = performer {
        obs["performer"] = json!([{"reference": p}]);
    }
    let mut interpretation = Vec::new();
    if score.flags.iter().any(|f| f == "below_cutoff") {
        interpretation.push(json!({"coding": [{"system": INTERPRETATION, "code": "L", "display": "Low"}], "text": "below the instrument's cut-off"}));
    }
    if let Some(band) = &score.band {
        interpretation.push(json!({"text": band}));
    }
    if !interpretation.is_empty() {
        obs["interpretation"] = json!(interpretation);
    }
    Some(obs)
}

/// rapport's own code of a total, and the LOINC code next to it where one exists.
fn total_codings(system: &str, instrument: &str, title: &str) -> Vec<Value> {
    let mut codings =
        vec![json!({"system": system, "code": format!("{instrument}-total"), "display": format!("{title} total")})];
    if let Some((code, display)) = loinc_total(instrument) {
        codings.push(json!({"system": LOINC, "code": code, "display": display}));
    }
    codings
}

pub fn bundle(self_url: &str, next_url: Option<String>, entries: Vec<(String, Value)>) -> Value {
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = next_url {
        links.push(json!({"relation": "next", "url": next}));
    }
    let total = entries.len();
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "link": links});
    // FHIR JSON has no empty arrays: an empty page has no `entry` at all.
    if total > 0 {
        bundle["entry"] = entries
            .into_iter()
            .map(|(full_url, resource)| json!({"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}}))
            .collect();
    }
    bundle
}

/// A searchset Bundle that only counts (`_count=0`): `total`, no entries.
pub fn count_bundle(self_url: &str, total: i64) -> Value {
    let mut bundle = bundle(self_url, None, Vec::new());
    bundle["total"] = json!(total);
    bundle
}

/// The CapabilityStatement; `token_url` is the token endpoint SMART clients use.
pub fn capability_statement(base: &str, token_url: &str) -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-29",
        "publisher": "rapport",
        "kind": "instance",
        "software": {"name": "rapport", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "rapport FHIR R4 front door", "url": format!("{base}/fhir/r4")},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "OAuth2 client-credentials bearer tokens from /v1/oauth/token.",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": token_url}],
                }],
                "service": [{"coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"},
                    {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"},
                ]}],
                "description": "SMART Backend Services (private_key_jwt with RS384 or ES384) or client secrets; see /.well-known/smart-configuration.",
            },
            "resource": [
                {
                    "type": "Questionnaire",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [{"name": "url", "type": "uri"}, {"name": "version", "type": "token"}],
                },
                {
                    "type": "QuestionnaireResponse",
                    "interaction": [{"code": "read"}, {"code": "create"}],
                    "conditionalCreate": true,
                },
                {
                    "type": "Observation",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": [
                        {"name": "subject", "type": "reference"},
                        {"name": "code", "type": "token"},
                        {"name": "date", "type": "date"},
                        {"name": "derived-from", "type": "reference"},
                    ],
                },
            ],
        }],
    })
}

/// An OperationOutcome with one issue.
pub fn operation_outcome(code: &str, diagnostics: &str, expressions: Vec<String>) -> Value {
    let mut issue = json!({"severity": "error", "code": code, "diagnostics": diagnostics});
    if !expressions.is_empty() {
        issue["expression"] = json!(expressions);
    }
    json!({"resourceType": "OperationOutcome", "issue": [issue]})
}
