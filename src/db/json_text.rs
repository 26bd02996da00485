//! A `jsonb` column read as its JSON text, not parsed into a tree: Postgres sends `jsonb`
//! as a version byte and the text, so a row that only passes its JSON through (the export)
//! costs one allocation per value instead of one per key and node. Written the same way,
//! a value serialised straight from Rust structs needs no `serde_json::Value` tree either.

use std::io::Write as _;

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use serde_json::value::RawValue;

/// A `jsonb` value as JSON text (checked by serde_json, never re-ordered or re-formatted).
#[derive(Debug, diesel::deserialize::FromSqlRow, diesel::expression::AsExpression)]
#[diesel(sql_type = Jsonb)]
pub struct JsonText(pub Box<RawValue>);

impl JsonText {
    /// `value` serialised as JSON text.
    pub fn of<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(JsonText)
    }
}

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

impl ToSql<Jsonb, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[JSONB_VERSION])?;
        out.write_all(self.0.get().as_bytes())?;
        Ok(IsNull::No)
    }
}
