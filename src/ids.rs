//! Typed identifiers, so that an organisation id and a response id cannot be swapped in a
//! call that takes both. Each maps to a Postgres `uuid` and serialises as a plain UUID.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow, Serialize, Deserialize,
        )]
        #[diesel(sql_type = sql_types::Uuid)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl ToSql<sql_types::Uuid, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <Uuid as ToSql<sql_types::Uuid, Pg>>::to_sql(&self.0, out)
            }
        }

        impl FromSql<sql_types::Uuid, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                <Uuid as FromSql<sql_types::Uuid, Pg>>::from_sql(bytes).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An organisation (tenant).
    OrgId
);
uuid_id!(
    /// A stored response (an administration of an instrument).
    ResponseId
);
uuid_id!(
    /// An alert.
    AlertId
);
uuid_id!(
    /// A webhook endpoint.
    WebhookId
);

/// An API client's public identifier (`client_id`), the text it authenticates with and the
/// name audit events carry. Unique across organisations (`client_directory`). It maps to a
/// Postgres `text` and serialises as a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow, Serialize, Deserialize)]
#[diesel(sql_type = sql_types::Text)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// A client id as stored or as signed into a token; checking that such a client exists is
    /// the caller's job (the token endpoint and the `Principal` extractor do it).
    pub fn new(id: impl Into<String>) -> Self {
        ClientId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ToSql<sql_types::Text, Pg> for ClientId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<sql_types::Text, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql_types::Text, Pg> for ClientId {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <String as FromSql<sql_types::Text, Pg>>::from_sql(bytes).map(ClientId)
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
