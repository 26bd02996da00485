//! References (patient, clinician, episode) as rapport compares them: Unicode-normalised to
//! NFC on the way in, so the same name typed on a Mac (NFD) and on Windows (NFC) is one
//! patient. Every body field and query or path parameter that names one passes through here.

use serde::{Deserialize, Deserializer};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

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
    fn a_versioned_fhir_reference_names_its_resource() {
        assert_eq!(fhir_reference_id("Patient/a", "Patient"), Some("a"));
        assert_eq!(fhir_reference_id("Patient/a/_history/2", "Patient"), Some("a"));
        assert_eq!(fhir_reference_id("Practitioner/a", "Patient"), None);
        assert_eq!(fhir_reference_id("Patient/", "Patient"), None);
        assert_eq!(fhir_reference_id("Patient/a/b", "Patient"), None);
    }
}
