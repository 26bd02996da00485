//! Citus readiness, read from the migrated schema: every tenant table is distributable by
//! `org_id` (in its primary key, in every unique constraint, and on both sides of every
//! foreign key between tenant tables); every other table is on the explicit list of
//! reference (global) tables (`db::citus::REFERENCE_TABLES`, the list rapport distributes
//! by). A new table must be put on one side or the other.

use diesel::sql_types::{Array, Text};
use diesel_async::RunQueryDsl;

use crate::helpers::TestApp;

use rapport::db::citus::REFERENCE_TABLES;

#[derive(diesel::QueryableByName, Debug)]
struct Constraint {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Array<Text>)]
    columns: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    references: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Array<Text>>)]
    referenced_columns: Option<Vec<String>>,
}

#[derive(diesel::QueryableByName)]
struct Table {
    #[diesel(sql_type = Text)]
    table_name: String,
}

#[tokio::test]
async fn every_tenant_table_is_distributable_by_org_id() {
    let app = TestApp::spawn().await;
    let mut conn = app.db().await;
    let tables: Vec<Table> = diesel::sql_query(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_\\_diesel%'
         ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let constraints: Vec<Constraint> = diesel::sql_query(
        "SELECT c.conrelid::regclass::text AS table_name, c.conname::text AS name, c.contype::text AS kind,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) k JOIN pg_attribute a
                      ON a.attrelid = c.conrelid AND a.attnum = k) AS columns,
                CASE WHEN c.contype = 'f' THEN c.confrelid::regclass::text END AS references,
                CASE WHEN c.contype = 'f' THEN ARRAY(SELECT a.attname::text FROM unnest(c.confkey) k JOIN pg_attribute a
                      ON a.attrelid = c.confrelid AND a.attnum = k) END AS referenced_columns
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f')",
    )
    .load(&mut conn)
    .await
    .unwrap();
    // Unique indexes that are not constraints count too.
    let unique_indexes: Vec<Constraint> = diesel::sql_query(
        "SELECT i.indrelid::regclass::text AS table_name, ci.relname::text AS name, 'i' AS kind,
                ARRAY(SELECT a.attname::text FROM unnest(i.indkey) k JOIN pg_attribute a
                      ON a.attrelid = i.indrelid AND a.attnum = k) AS columns,
                NULL::text AS references, NULL::text[] AS referenced_columns
         FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ci.relnamespace
         WHERE n.nspname = 'public' AND i.indisunique AND NOT EXISTS
               (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
    )
    .load(&mut conn)
    .await
    .unwrap();

    let mut problems = Vec::new();
    let tenant: Vec<&str> = tables
        .iter()
        .map(|t| t.table_name.as_str())
        .filter(|t| !REFERENCE_TABLES.contains(t))
        .collect();
    assert!(tenant.len() >= 10, "tenant tables: {tenant:?}");
    for table in &tenant {
        let has_pk = constraints.iter().any(|c| c.table_name == *table && c.kind == "p");
        if !has_pk {
            problems.push(format!("{table}: no primary key"));
        }
    }
    for c in constraints.iter().chain(&unique_indexes) {
        if !tenant.contains(&c.table_name.as_str()) {
            continue;
        }
        let has_org = c.columns.iter().any(|col| col == "org_id");
        match c.kind.as_str() {
            "p" | "u" | "i" if !has_org => {
                problems.push(format!("{}: {} ({:?}) lacks org_id", c.table_name, c.name, c.columns))
            }
            "f" => {
                let target = c.references.clone().unwrap_or_default();
                let to_tenant = tenant.contains(&target.as_str());
                let target_has_org = c
                    .referenced_columns
                    .as_ref()
                    .is_some_and(|cols| cols.iter().any(|col| col == "org_id"));
                if to_tenant && !(has_org && target_has_org) {
                    problems.push(format!(
                        "{}: foreign key {} to {target} is not on org_id (cannot be co-located)",
                        c.table_name, c.name
                    ));
                }
            }
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "not distributable by org_id:\n{}",
        problems.join("\n")
    );
    // Every reference table exists (the list is kept true).
    for r in REFERENCE_TABLES {
        assert!(
            tables.iter().any(|t| t.table_name == r),
            "{r} is listed but does not exist"
        );
    }
}
