//! The five published tables, their columns as Debezium sends them, and
//! the typed rows a change carries.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::encoding::{Datum, Document, Kind};

/// A published table. Leaf partitions map to their parent, since a
/// publication made without `publish_via_partition_root` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Tenants,
    Attributes,
    Entities,
    /// `entity_values_ts`: the time series.
    Values,
    /// `entity_jsonb`: the hot projection.
    Projection,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Tenants,
        Table::Attributes,
        Table::Entities,
        Table::Values,
        Table::Projection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Attributes => "attributes",
            Table::Entities => "entities",
            Table::Values => "entity_values_ts",
            Table::Projection => "entity_jsonb",
        }
    }

    /// The table a relation name belongs to: the table itself or one of
    /// its partitions (`entity_values_ts_2026_11`, `entities_p3`,
    /// `entities_default`, `entity_jsonb_p12`).
    pub fn of_relation(relation: &str) -> Option<Table> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if let Some(t) = Table::ALL.into_iter().find(|t| t.name() == relation) {
            return Some(t);
        }
        if let Some(month) = relation.strip_prefix("entity_values_ts_") {
            let (y, m) = month.split_once('_')?;
            return (y.len() == 4 && m.len() == 2 && digits(y) && digits(m))
                .then_some(Table::Values);
        }
        if let Some(n) = relation.strip_prefix("entities_") {
            return (n == "default" || n.strip_prefix('p').is_some_and(digits))
                .then_some(Table::Entities);
        }
        relation
            .strip_prefix("entity_jsonb_p")
            .filter(|n| digits(n))
            .map(|_| Table::Projection)
    }

    /// The table a Debezium topic (`<topic.prefix>.<schema>.<relation>`)
    /// carries.
    pub fn of_topic(topic: &str) -> Option<Table> {
        Table::of_relation(topic.rsplit('.').next()?)
    }

    /// Every column Debezium sends, with its type.
    pub fn columns(self) -> &'static [(&'static str, Kind)] {
        use Kind::*;
        match self {
            Table::Tenants => &[
                ("tenant_id", Int64),
                ("tenant_name", Text),
                ("created_at", Timestamp),
                ("is_active", Bool),
                ("allow_auto_register", Bool),
            ],
            Table::Attributes => &[
                ("attribute_id", Int64),
                ("tenant_id", Int64),
                ("attribute_name", Text),
                ("data_type", Text),
                ("is_hot", Bool),
                ("created_at", Timestamp),
            ],
            Table::Entities => &[
                ("entity_id", Int64),
                ("tenant_id", Int64),
                ("entity_type", Text),
                ("created_at", Timestamp),
                ("is_deleted", Bool),
            ],
            Table::Values => &[
                ("entity_id", Int64),
                ("tenant_id", Int64),
                ("attribute_id", Int64),
                ("value", Text),
                ("value_int", Int64),
                ("value_decimal", Decimal { scale: 5 }),
                ("value_bool", Bool),
                ("value_timestamp", Timestamp),
                ("ingested_at", Timestamp),
            ],
            Table::Projection => &[
                ("entity_id", Int64),
                ("tenant_id", Int64),
                ("hot_attrs", Json),
                ("hot_attrs_ts", Json),
                ("updated_at", Timestamp),
            ],
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A row's decoded columns, by name; a column the record left out is absent.
pub type Columns = HashMap<&'static str, Datum>;

/// Why decoded columns do not make a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("{table}: column {column} is missing or null")]
    Missing { table: Table, column: &'static str },
    #[error("{table}: column {column} holds {found}, expected {expected}")]
    Type {
        table: Table,
        column: &'static str,
        found: &'static str,
        expected: &'static str,
    },
}

/// One reading of `entity_values_ts`: exactly one `value*` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRow {
    pub tenant_id: i64,
    pub entity_id: i64,
    pub attribute_id: i64,
    pub value: Option<String>,
    pub value_int: Option<i64>,
    pub value_decimal: Option<Decimal>,
    pub value_bool: Option<bool>,
    pub value_timestamp: Option<DateTime<Utc>>,
    pub ingested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub tenant_id: i64,
    pub tenant_name: String,
    pub is_active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeRow {
    pub attribute_id: i64,
    pub tenant_id: i64,
    pub attribute_name: String,
    pub data_type: String,
    pub is_hot: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    pub tenant_id: i64,
    pub entity_id: i64,
    pub entity_type: String,
    pub is_deleted: bool,
}

/// A hot projection; `None` where an update left a TOASTed document out.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionRow {
    pub tenant_id: i64,
    pub entity_id: i64,
    pub hot_attrs: Option<Document>,
    pub hot_attrs_ts: Option<Document>,
    pub updated_at: DateTime<Utc>,
}

/// A whole row of one table.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Tenant(TenantRow),
    Attribute(AttributeRow),
    Entity(EntityRow),
    Value(ValueRow),
    Projection(ProjectionRow),
}

/// A deleted row's primary key: all a delete's `before` holds under the
/// default replica identity.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Tenant {
        tenant_id: i64,
    },
    Attribute {
        attribute_id: i64,
    },
    Entity {
        tenant_id: i64,
        entity_id: i64,
    },
    Value {
        tenant_id: i64,
        entity_id: i64,
        attribute_id: i64,
        ingested_at: DateTime<Utc>,
    },
    Projection {
        tenant_id: i64,
        entity_id: i64,
    },
}

/// A column type a row field can be read as, and its name in errors.
trait FromDatum: Sized {
    const EXPECTED: &'static str;
    fn from_datum(d: &Datum) -> Option<Self>;
}

macro_rules! from_datum {
    ($($t:ty => $variant:ident, $expected:literal;)*) => {$(
        impl FromDatum for $t {
            const EXPECTED: &'static str = $expected;
            fn from_datum(d: &Datum) -> Option<Self> {
                match d {
                    Datum::$variant(v) => Some(v.clone()),
                    _ => None,
                }
            }
        }
    )*};
}

from_datum! {
    i64 => Int64, "an int64";
    bool => Bool, "a boolean";
    String => Text, "text";
    DateTime<Utc> => Timestamp, "a timestamp";
    Decimal => Decimal, "a decimal";
    Document => Json, "a JSON document";
}

impl Datum {
    fn describe(&self) -> &'static str {
        match self {
            Datum::Null => "null",
            Datum::Unavailable => "an unavailable value",
            Datum::Int64(_) => i64::EXPECTED,
            Datum::Bool(_) => bool::EXPECTED,
            Datum::Text(_) => String::EXPECTED,
            Datum::Timestamp(_) => <DateTime<Utc>>::EXPECTED,
            Datum::Decimal(_) => Decimal::EXPECTED,
            Datum::Json(_) => Document::EXPECTED,
        }
    }
}

/// Typed access to decoded columns, naming the table in every error.
struct Get<'a> {
    table: Table,
    cols: &'a Columns,
}

impl Get<'_> {
    /// The column, or `None` when absent, null or left out by an update.
    fn opt<T: FromDatum>(&self, column: &'static str) -> Result<Option<T>, RowError> {
        let Some(d) = self
            .cols
            .get(column)
            .filter(|d| !matches!(d, Datum::Null | Datum::Unavailable))
        else {
            return Ok(None);
        };
        T::from_datum(d).map(Some).ok_or(RowError::Type {
            table: self.table,
            column,
            found: d.describe(),
            expected: T::EXPECTED,
        })
    }

    fn req<T: FromDatum>(&self, column: &'static str) -> Result<T, RowError> {
        self.opt(column)?.ok_or(RowError::Missing {
            table: self.table,
            column,
        })
    }
}

impl Row {
    pub fn from_columns(table: Table, cols: &Columns) -> Result<Row, RowError> {
        let g = Get { table, cols };
        Ok(match table {
            Table::Tenants => Row::Tenant(TenantRow {
                tenant_id: g.req("tenant_id")?,
                tenant_name: g.req("tenant_name")?,
                is_active: g.req("is_active")?,
            }),
            Table::Attributes => Row::Attribute(AttributeRow {
                attribute_id: g.req("attribute_id")?,
                tenant_id: g.req("tenant_id")?,
                attribute_name: g.req("attribute_name")?,
                data_type: g.req("data_type")?,
                is_hot: g.req("is_hot")?,
            }),
            Table::Entities => Row::Entity(EntityRow {
                tenant_id: g.req("tenant_id")?,
                entity_id: g.req("entity_id")?,
                entity_type: g.req("entity_type")?,
                is_deleted: g.opt("is_deleted")?.unwrap_or(false),
            }),
            Table::Values => Row::Value(ValueRow {
                tenant_id: g.req("tenant_id")?,
                entity_id: g.req("entity_id")?,
                attribute_id: g.req("attribute_id")?,
                value: g.opt("value")?,
                value_int: g.opt("value_int")?,
                value_decimal: g.opt("value_decimal")?,
                value_bool: g.opt("value_bool")?,
                value_timestamp: g.opt("value_timestamp")?,
                ingested_at: g.req("ingested_at")?,
            }),
            Table::Projection => Row::Projection(ProjectionRow {
                tenant_id: g.req("tenant_id")?,
                entity_id: g.req("entity_id")?,
                hot_attrs: g.opt("hot_attrs")?,
                hot_attrs_ts: g.opt("hot_attrs_ts")?,
                updated_at: g.req("updated_at")?,
            }),
        })
    }
}

impl Key {
    pub fn from_columns(table: Table, cols: &Columns) -> Result<Key, RowError> {
        let g = Get { table, cols };
        Ok(match table {
            Table::Tenants => Key::Tenant {
                tenant_id: g.req("tenant_id")?,
            },
            Table::Attributes => Key::Attribute {
                attribute_id: g.req("attribute_id")?,
            },
            Table::Entities => Key::Entity {
                tenant_id: g.req("tenant_id")?,
                entity_id: g.req("entity_id")?,
            },
            Table::Values => Key::Value {
                tenant_id: g.req("tenant_id")?,
                entity_id: g.req("entity_id")?,
                attribute_id: g.req("attribute_id")?,
                ingested_at: g.req("ingested_at")?,
            },
            Table::Projection => Key::Projection {
                tenant_id: g.req("tenant_id")?,
                entity_id: g.req("entity_id")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_map_to_their_parent() {
        for (relation, table) in [
            ("entity_values_ts", Some(Table::Values)),
            ("entity_values_ts_2026_11", Some(Table::Values)),
            ("entity_values_ts_2026", None),
            ("entity_values_ts_20x6_11", None),
            ("entities_p3", Some(Table::Entities)),
            ("entities_default", Some(Table::Entities)),
            ("entities_px", None),
            ("entity_jsonb_p63", Some(Table::Projection)),
            ("entity_jsonb", Some(Table::Projection)),
            ("entity_values_ingest", None),
            ("tenants", Some(Table::Tenants)),
            ("attributes", Some(Table::Attributes)),
            ("plugins", None),
        ] {
            assert_eq!(Table::of_relation(relation), table, "{relation}");
        }
        assert_eq!(
            Table::of_topic("atlas.public.entity_values_ts_2026_11"),
            Some(Table::Values)
        );
        assert_eq!(Table::of_topic("atlas.public.plugins"), None);
    }

    #[test]
    fn rows_name_the_column_they_lack() {
        let mut cols = Columns::new();
        cols.insert("tenant_id", Datum::Int64(1));
        cols.insert("tenant_name", Datum::Text("acme".into()));
        assert_eq!(
            Row::from_columns(Table::Tenants, &cols),
            Err(RowError::Missing {
                table: Table::Tenants,
                column: "is_active"
            })
        );
        cols.insert("is_active", Datum::Int64(1));
        assert!(matches!(
            Row::from_columns(Table::Tenants, &cols),
            Err(RowError::Type {
                column: "is_active",
                ..
            })
        ));
        assert_eq!(
            Key::from_columns(Table::Tenants, &cols),
            Ok(Key::Tenant { tenant_id: 1 })
        );
    }
}
