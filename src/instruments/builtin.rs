//! The built-in instruments, embedded in the binary and upserted at start: the alliance
//! measures WAI-SR, WAI-S, SRS, HAq-II and PDRQ-9 (copyrighted: no item text), and the
//! outcome measures PHQ-9 and GAD-7 (free to reproduce: item text verbatim, the publisher's
//! attribution in `licence`). Sources are in each file's `citation`.

use diesel_async::AsyncPgConnection;

use std::collections::HashMap;
use std::sync::Arc;

use super::model::{InstrumentStatus, InstrumentVersion, NewInstrument};
use super::{BUILTIN_OWNER, LoadedInstrument, store, validate};

/// (key, definition JSON); all are version 1.
pub const BUILTINS: [(&str, &str); 7] = [
    ("wai-sr", include_str!("builtin/wai-sr.json")),
    ("wai-s", include_str!("builtin/wai-s.json")),
    ("srs", include_str!("builtin/srs.json")),
    ("haq-ii", include_str!("builtin/haq-ii.json")),
    ("pdrq-9", include_str!("builtin/pdrq-9.json")),
    ("phq-9", include_str!("builtin/phq-9.json")),
    ("gad-7", include_str!("builtin/gad-7.json")),
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

/// The built-ins, loaded once per process: they are immutable, so scoring them never
/// needs the database.
pub struct BuiltinCatalogue(HashMap<String, Arc<LoadedInstrument>>);

impl BuiltinCatalogue {
    pub fn load() -> Result<Self, String> {
        let mut map = HashMap::new();
        for spec in definitions()? {
            let definition = validate::validate(&spec).map_err(|e| format!("{e:?}"))?;
            let key = spec.key.clone();
            let version =
                InstrumentVersion::new(spec, BUILTIN_VERSION, InstrumentStatus::Published, BUILTIN_OWNER.into());
            map.insert(
                key,
                Arc::new(LoadedInstrument {
                    org: None,
                    created_at: chrono::Utc::now(),
                    version,
                    definition,
                }),
            );
        }
        Ok(BuiltinCatalogue(map))
    }

    /// A built-in by key, at `version` (only version 1 exists) or the latest.
    pub fn get(&self, key: &str, version: Option<i32>) -> Option<Arc<LoadedInstrument>> {
        self.0
            .get(key)
            .filter(|_| version.is_none_or(|v| v == BUILTIN_VERSION))
            .cloned()
    }
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
    fn every_builtin_is_valid_and_only_the_free_ones_have_item_text() {
        let defs = super::definitions().unwrap();
        assert_eq!(defs.len(), 7);
        for d in defs {
            let free = matches!(d.key.as_str(), "phq-9" | "gad-7");
            if free {
                assert!(
                    d.items.iter().all(|i| i.text.is_some()),
                    "{} ships its item text",
                    d.key
                );
                assert!(
                    d.licence
                        .as_deref()
                        .is_some_and(|l| l.contains("No permission required"))
                );
            } else {
                assert!(d.items.iter().all(|i| i.text.is_none()), "{} ships no item text", d.key);
            }
            assert!(
                d.citation.is_some() && d.licence.is_some(),
                "{} has citation and licence",
                d.key
            );
        }
    }
}
