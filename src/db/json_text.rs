//! A `jsonb` column read as its JSON text, not parsed into a tree: Postgres sends `jsonb`
//! as a version byte and the text, so a row that only passes its JSON through (the export)
//! costs one allocation per value instead of one per key and node.

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Jsonb;
use serde_json::value::RawValue;

/// A `jsonb` value as JSON text (checked by serde_json, never re-ordered or re-formatted).
#[derive(Debug, diesel::deserialize::FromSqlRow)]
pub struct JsonText(pub Box<RawValue>);

/// The only `jsonb` wire format Postgres has defined.
const JSONB_VERSION: u8 = 1;

impl FromSql<Jsonb, Pg> for JsonText {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, text)) => {
                let text = std::str::from_utf8(text)?;
                Ok(JsonText(RawValue::from_string(text.to_owned())?))
            }
            _ => Err("unsupported jsonb wire format".into()),
        }
    }
}
