//! The warehouse's tables, in two dialects with the same names, columns
//! and keys: Redshift's (distribution and sort keys) and PostgreSQL's (the
//! local warehouse, with indexes instead).

use std::collections::BTreeMap;

pub const POSTGRES: &str = include_str!("../sql/postgres.sql");
pub const REDSHIFT: &str = include_str!("../sql/redshift.sql");

/// The tables a schema text creates, each with its columns in order.
pub fn tables(sql: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in sql.lines() {
        let line = line.split("--").next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix("CREATE TABLE IF NOT EXISTS ") {
            let name = rest.trim_end_matches('(').trim().to_owned();
            current = Some((name, Vec::new()));
        } else if let Some((name, columns)) = current.as_mut() {
            if line.starts_with(')') {
                out.insert(std::mem::take(name), std::mem::take(columns));
                current = None;
            } else if let Some(word) = line.split_whitespace().next()
                && !matches!(word, "PRIMARY" | "UNIQUE" | "CONSTRAINT")
            {
                columns.push(word.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_have_the_same_tables_and_columns() {
        let (pg, rs) = (tables(POSTGRES), tables(REDSHIFT));
        assert_eq!(
            pg.keys().collect::<Vec<_>>(),
            [
                "agg_daily_entity_stats",
                "dim_attributes",
                "dim_entities",
                "dim_tenants",
                "fact_current_state",
                "fact_telemetry",
                "load_watermarks",
            ]
        );
        assert_eq!(pg, rs);
        // The seed's enrichment and derived columns are on the facts.
        for column in [
            "tenant_name",
            "attribute_name",
            "data_type",
            "attribute_category",
            "entity_type",
            "ingested_date",
            "ingested_hour",
            "day_of_week",
            "year_month",
        ] {
            assert!(pg["fact_telemetry"].iter().any(|c| c == column), "{column}");
        }
    }

    #[test]
    fn the_parser_sees_columns_not_keys() {
        let t = tables(
            "CREATE TABLE IF NOT EXISTS t (\n  a bigint, -- note\n  b text,\n  PRIMARY KEY (a)\n) DISTSTYLE ALL;",
        );
        assert_eq!(t["t"], ["a", "b"]);
    }
}
