//! References (patient, clinician, episode) as rapport compares them: Unicode-normalised to
//! NFC on the way in, so the same name typed on a Mac (NFD) and on Windows (NFC) is one
//! patient. Every body field and query or path parameter that names one passes through here.

use serde::{Deserialize, Deserializer};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// The longest reference accepted, in characters.
pub const MAX_REFERENCE_CHARS: usize = 200;

/// A checked reference (patient, clinician, episode, idempotency key): NFC, 1-200
/// characters, not only spaces, no NUL or other control characters. Parsed once; the type
/// carries the proof.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference(String);

/// A patient's reference.
pub type PatientRef = Reference;

impl Reference {
    /// Normalises and checks `text`; the error says what is wrong, in words.
    pub fn parse(text: &str) -> Result<Reference, String> {
        let text = nfc(text);
        if text.contains('\0') {
            Err("must not contain NUL (U+0000) characters".into())
        } else if text.chars().any(char::is_control) {
            Err("must not contain control characters (tabs, line breaks, ...)".into())
        } else if text.trim().is_empty() {
            Err("must not be empty or only spaces".into())
        } else if text.chars().count() > MAX_REFERENCE_CHARS {
            Err(format!("is longer than {MAX_REFERENCE_CHARS} characters"))
        } else {
            Ok(Reference(text))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// `text` in Unicode Normalization Form C (NFC).
pub fn nfc(text: &str) -> String {
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => text.to_string(),
        _ => text.nfc().collect(),
    }
}

/// A serde field reader for a reference: the string, normalised.
pub fn nfc_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|s| nfc(&s))
}

/// A serde field reader for an optional reference: the string, normalised.
pub fn nfc_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d).map(|s| s.map(|s| nfc(&s)))
}

/// The id a FHIR reference names: `Patient/a` and `Patient/a/_history/2` are `a`;
/// `None` for another kind or an empty id.
pub fn fhir_reference_id<'a>(reference: &'a str, kind: &str) -> Option<&'a str> {
    let rest = reference.strip_prefix(kind)?.strip_prefix('/')?;
    let id = match rest.split_once("/_history/") {
        Some((id, version)) if !version.is_empty() && !version.contains('/') => id,
        Some(_) => return None,
        None => rest,
    };
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfd_and_nfc_spellings_are_one_reference() {
        let nfd = "Jose\u{301}";
        let nfc_form = "Jos\u{e9}";
        assert_ne!(nfd, nfc_form);
        assert_eq!(nfc(nfd), nfc_form);
        assert_eq!(nfc(nfc_form), nfc_form);
    }

    #[test]
    fn a_reference_is_normalised_and_checked_in_one_parse() {
        assert_eq!(Reference::parse("Jose\u{301}").unwrap().as_str(), "Jos\u{e9}");
        for bad in ["", "   ", "a\0b", "a\tb", &"x".repeat(201)] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Reference::parse(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn a_versioned_fhir_reference_names_its_resource() {
        assert_eq!(fhir_reference_id("Patient/a", "Patient"), Some("a"));
        assert_eq!(fhir_reference_id("Patient/a/_history/2", "Patient"), Some("a"));
        assert_eq!(fhir_reference_id("Practitioner/a", "Patient"), None);
        assert_eq!(fhir_reference_id("Patient/", "Patient"), None);
        assert_eq!(fhir_reference_id("Patient/a/b", "Patient"), None);
    }
}
