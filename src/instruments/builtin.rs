//! The built-in instruments of INSTRUMENTS.md, embedded in the binary and upserted at start.

use diesel_async::AsyncPgConnection;

use super::model::NewInstrument;
use super::{store, validate};

/// (key, definition JSON); all are version 1.
pub const BUILTINS: [(&str, &str); 5] = [
    ("wai-sr", include_str!("builtin/wai-sr.json")),
    ("wai-s", include_str!("builtin/wai-s.json")),
    ("srs", include_str!("builtin/srs.json")),
    ("haq-ii", include_str!("builtin/haq-ii.json")),
    ("pdrq-9", include_str!("builtin/pdrq-9.json")),
];

pub const BUILTIN_VERSION: i32 = 1;

/// Parses and validates every built-in definition.
pub fn definitions() -> Result<Vec<NewInstrument>, String> {
    BUILTINS
        .iter()
        .map(|(key, text)| {
            let spec: NewInstrument = serde_json::from_str(text).map_err(|e| format!("built-in {key}: {e}"))?;
            validate::validate(&spec).map_err(|e| format!("built-in {key} is invalid: {e:?}"))?;
            Ok(spec)
        })
        .collect()
}

/// Writes the built-ins (insert or replace, never a second row).
pub async fn load_builtins(conn: &mut AsyncPgConnection) -> Result<(), crate::db::BoxError> {
    for spec in definitions()? {
        store::upsert_builtin(conn, &spec.key, BUILTIN_VERSION, serde_json::to_value(&spec)?).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_is_valid_and_textless() {
        let defs = super::definitions().unwrap();
        assert_eq!(defs.len(), 5);
        for d in defs {
            assert!(d.items.iter().all(|i| i.text.is_none()), "{} ships no item text", d.key);
            assert!(
                d.citation.is_some() && d.licence.is_some(),
                "{} has citation and licence",
                d.key
            );
        }
    }
}
