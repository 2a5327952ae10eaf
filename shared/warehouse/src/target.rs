//! Which warehouse `ATLAS_WAREHOUSE_URL` names.

use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A PostgreSQL URL: the local warehouse.
    Postgres(String),
    /// `redshift://<workgroup-or-cluster>/<database>`, through the Data API.
    Redshift { cluster: String, database: String },
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Target::Postgres(s.to_owned()));
        }
        let Some(rest) = s.strip_prefix("redshift://") else {
            return Err(
                "use a PostgreSQL URL or redshift://<workgroup-or-cluster>/<database>".into(),
            );
        };
        match rest.split_once('/') {
            Some((cluster, database))
                if !cluster.is_empty() && !database.is_empty() && !database.contains('/') =>
            {
                Ok(Target::Redshift {
                    cluster: cluster.to_owned(),
                    database: database.to_owned(),
                })
            }
            _ => Err("a Redshift warehouse is redshift://<workgroup-or-cluster>/<database>".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_what_is_wrong() {
        assert_eq!(
            "postgres://u@h/wh".parse(),
            Ok(Target::Postgres("postgres://u@h/wh".into()))
        );
        assert_eq!(
            "redshift://analytics/atlas".parse(),
            Ok(Target::Redshift {
                cluster: "analytics".into(),
                database: "atlas".into()
            })
        );
        for bad in ["redshift://analytics", "redshift:///db", "mysql://x/y", ""] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
