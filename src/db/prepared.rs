//! Hand-written statements that Postgres prepares once per connection.
//!
//! `diesel::sql_query` marks its statement unsafe to cache, so diesel-async prepares it
//! anew on every call: a Parse/Describe round trip and a fresh plan before the
//! Bind/Execute. A `Prepared` statement carries a fixed SQL text with `$n` placeholders and
//! its binds, and lets diesel's statement cache key it by that text: from the second call
//! on a connection it is one round trip on a cached statement.
//!
//! The text must not vary with the data (the binds carry the data), or the cache grows
//! with it. A placeholder used twice is sent twice (diesel numbers binds in the order they
//! occur), so keep large values to one occurrence.

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// A fixed SQL text and its binds; run it with diesel-async's `RunQueryDsl`.
pub struct Prepared<'a> {
    sql: String,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'a>>,
}

struct Bind<ST, V> {
    value: V,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, V> QueryFragment<Pg> for Bind<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.value)
    }
}

impl<'a> Prepared<'a> {
    /// `sql` refers to its binds as `$1`, `$2`, ... in the order `bind` is called.
    pub fn new(sql: impl Into<String>) -> Self {
        Prepared {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    /// Adds the next bind (`$1` first).
    pub fn bind<ST, V>(mut self, value: V) -> Self
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + Send + 'a,
        ST: 'a,
    {
        self.binds.push(Box::new(Bind::<ST, V> {
            value,
            sql_type: PhantomData,
        }));
        self
    }
}

/// A piece of a statement's text: SQL as written, or the placeholder `$n` (1-based).
#[derive(Debug, PartialEq)]
enum Piece<'s> {
    Sql(&'s str),
    Param(usize),
}

/// Splits `sql` at its `$n` placeholders (a `$` followed by digits).
fn pieces(sql: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = sql;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let digits_after = |s: &str| s.bytes().skip(1).take_while(u8::is_ascii_digit).count();
        if rest.starts_with('$') && digits_after(rest) > 0 {
            let (param, tail) = rest.split_at(1 + digits_after(rest));
            rest = tail;
            return Some(Piece::Param(param.get(1..)?.parse().unwrap_or(usize::MAX)));
        }
        let end = rest
            .match_indices('$')
            .map(|(i, _)| i)
            .find(|&i| i > 0 && rest.get(i..).is_some_and(|s| digits_after(s) > 0))
            .unwrap_or(rest.len());
        let (sql, tail) = rest.split_at(end);
        rest = tail;
        Some(Piece::Sql(sql))
    })
}

impl QueryFragment<Pg> for Prepared<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for piece in pieces(&self.sql) {
            match piece {
                Piece::Sql(sql) => out.push_sql(sql),
                Piece::Param(n) => {
                    let bind = n
                        .checked_sub(1)
                        .and_then(|i| self.binds.get(i))
                        .ok_or_else(|| diesel::result::Error::QueryBuilderError(format!("no bind for ${n}").into()))?;
                    bind.walk_ast(out.reborrow())?;
                }
            }
        }
        Ok(())
    }
}

/// No static id: diesel's statement cache keys the statement by its SQL and bind types.
impl QueryId for Prepared<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared<'_> {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_split_out_of_the_text() {
        let got: Vec<Piece> = pieces("SELECT $1::text, $12 FROM t WHERE a = $1 AND b = '$x'").collect();
        assert_eq!(
            got,
            vec![
                Piece::Sql("SELECT "),
                Piece::Param(1),
                Piece::Sql("::text, "),
                Piece::Param(12),
                Piece::Sql(" FROM t WHERE a = "),
                Piece::Param(1),
                Piece::Sql(" AND b = '$x'"),
            ]
        );
        assert_eq!(pieces("").count(), 0);
        assert_eq!(pieces("$2").collect::<Vec<_>>(), vec![Piece::Param(2)]);
    }

    #[test]
    fn the_text_diesel_sends_numbers_each_occurrence() {
        use diesel::sql_types::{Integer, Text};
        let q = Prepared::new("SELECT $2, $1, $2")
            .bind::<Integer, _>(7)
            .bind::<Text, _>("x");
        let sql = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(sql.starts_with("SELECT $1, $2, $3"), "{sql}");
    }
}
