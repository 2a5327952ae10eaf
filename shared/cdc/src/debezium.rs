//! One Kafka record from the Debezium PostgreSQL connector, in any of the
//! forms it really takes:
//!
//! - the full envelope: `before`, `after`, `source` (`lsn`, `txId`,
//!   `ts_ms`, `table`, `snapshot`), `op` (`c`, `u`, `d`, `r`, `t`);
//! - the `ExtractNewRecordState` form: the row's own columns, with
//!   whatever `add.fields` added (`__op`, `__table`, `__lsn`,
//!   `__source_ts_ms`...) and `__deleted` when deletes are rewritten;
//! - either inside the JSON converter's `{"schema": ..., "payload": ...}`
//!   (`schemas.enable=true`) or bare;
//! - a tombstone (no value) after a delete, a heartbeat
//!   (`__debezium-heartbeat.<prefix>`), or a transaction boundary
//!   (`<prefix>.transaction`).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::encoding::{self, DecimalMode, FieldSchema, shape};
use crate::tables::{Columns, Key, Row, RowError, Table};

/// What the decoder needs to know of the connector's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `decimal.handling.mode`, for records without a schema.
    pub decimal_mode: DecimalMode,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Change(Change),
    /// The null value Kafka compaction needs after a delete; the delete
    /// itself came as the record before.
    Tombstone,
    Heartbeat {
        ts_ms: Option<i64>,
    },
    Transaction(Boundary),
}

/// A row change of one of the published tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: Table,
    /// `None` for a flattened record without `__op`: an insert or update,
    /// told apart by nothing in it.
    pub op: Option<Op>,
    pub source: Source,
    pub data: ChangeData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeData {
    /// The row as it is now (insert, update or snapshot read).
    Upsert(Row),
    Delete(Key),
    Truncate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    /// A snapshot read.
    Read,
    Truncate,
}

impl Op {
    fn parse(raw: &str) -> Result<Op, DecodeError> {
        Ok(match raw {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            other => return Err(DecodeError::Op(other.to_owned())),
        })
    }
}

/// Where in the source's history a change happened. Fields the record did
/// not carry (a flattened record without `add.fields`) are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub lsn: Option<i64>,
    pub tx_id: Option<i64>,
    /// Commit time at the source, ms since the epoch.
    pub ts_ms: Option<i64>,
    pub snapshot: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    pub status: TxStatus,
    /// `txId:lsn`, as Debezium writes it.
    pub id: String,
    /// Changes in the transaction, on `END`.
    pub event_count: Option<u64>,
    pub ts_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Begin,
    End,
}

/// Why a record cannot be decoded: it can never succeed, so it is a dead
/// letter, and the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("value is not JSON: {0}")]
    Json(String),
    #[error("not a Debezium record: {0}")]
    Shape(String),
    #[error("table {0:?} is not one the loader takes")]
    UnknownTable(String),
    #[error("unknown op {0:?}")]
    Op(String),
    #[error("{table}.{column}: {reason}")]
    Field {
        table: Table,
        column: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Row(#[from] RowError),
}

/// Decodes one record's value (`None`: a tombstone) from `topic`.
pub fn decode(topic: &str, value: Option<&[u8]>, opts: &Options) -> Result<Record, DecodeError> {
    let Some(bytes) = value.filter(|b| !b.is_empty()) else {
        return Ok(Record::Tombstone);
    };
    let (schema, payload) = match serde_json::from_slice::<Wrapped<'_>>(bytes) {
        Ok(w) => (schema_of(w.schema.get()), w.payload),
        Err(_) => {
            let json: Value =
                serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
            let (schema, payload) = unwrap(json);
            (schema.map(std::rc::Rc::new), payload)
        }
    };
    let payload = match payload {
        Value::Null => return Ok(Record::Tombstone),
        Value::Object(o) => o,
        other => {
            return Err(DecodeError::Shape(format!(
                "the payload is {}, not an object",
                shape(&other)
            )));
        }
    };
    if topic.starts_with("__debezium-heartbeat") {
        return Ok(Record::Heartbeat {
            ts_ms: payload.get("ts_ms").and_then(Value::as_i64),
        });
    }
    if let Some(status) = payload.get("status").and_then(Value::as_str)
        && (topic.ends_with(".transaction") || payload.contains_key("data_collections"))
    {
        return boundary(status, &payload).map(Record::Transaction);
    }
    if payload.contains_key("op") && payload.contains_key("source") {
        envelope(topic, schema.as_deref(), &payload, opts).map(Record::Change)
    } else {
        flattened(topic, schema.as_deref(), &payload, opts).map(Record::Change)
    }
}

/// The JSON converter's wrapper, its schema left as text: the schema is
/// most of a record and the same for every record of a table, so it is
/// parsed once (see [`schema_of`]).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped<'a> {
    #[serde(borrow)]
    schema: &'a serde_json::value::RawValue,
    payload: Value,
}

/// The schema written as `text`, parsed once per thread while it keeps
/// coming (a connector has a few per table; the cache is bounded anyway).
fn schema_of(text: &str) -> Option<std::rc::Rc<Value>> {
    const MAX_SCHEMAS: usize = 64;
    thread_local! {
        static SCHEMAS: std::cell::RefCell<HashMap<String, std::rc::Rc<Value>>> =
            std::cell::RefCell::new(HashMap::new());
    }
    SCHEMAS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(s) = cache.get(text) {
            return Some(s.clone());
        }
        let parsed: Value = serde_json::from_str(text)
            .ok()
            .filter(|s: &Value| !s.is_null())?;
        if cache.len() >= MAX_SCHEMAS {
            cache.clear();
        }
        let parsed = std::rc::Rc::new(parsed);
        cache.insert(text.to_owned(), parsed.clone());
        Some(parsed)
    })
}

/// Splits the JSON converter's wrapper off, when there is one.
fn unwrap(json: Value) -> (Option<Value>, Value) {
    match json {
        Value::Object(mut o)
            if o.len() == 2 && o.contains_key("schema") && o.contains_key("payload") =>
        {
            let payload = o.remove("payload").unwrap_or_default();
            (o.remove("schema").filter(|s| !s.is_null()), payload)
        }
        other => (None, other),
    }
}

fn boundary(status: &str, p: &Map<String, Value>) -> Result<Boundary, DecodeError> {
    Ok(Boundary {
        status: match status {
            "BEGIN" => TxStatus::Begin,
            "END" => TxStatus::End,
            other => {
                return Err(DecodeError::Shape(format!(
                    "transaction status {other:?}: expected BEGIN or END"
                )));
            }
        },
        id: p
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| DecodeError::Shape("a transaction record without an id".into()))?
            .to_owned(),
        event_count: p.get("event_count").and_then(Value::as_u64),
        ts_ms: p.get("ts_ms").and_then(Value::as_i64),
    })
}

fn table_of(topic: &str, relation: Option<&str>) -> Result<Table, DecodeError> {
    match relation {
        Some(r) => Table::of_relation(r).ok_or_else(|| DecodeError::UnknownTable(r.to_owned())),
        None => Table::of_topic(topic).ok_or_else(|| DecodeError::UnknownTable(topic.to_owned())),
    }
}

fn envelope(
    topic: &str,
    schema: Option<&Value>,
    p: &Map<String, Value>,
    opts: &Options,
) -> Result<Change, DecodeError> {
    let op = Op::parse(
        p.get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| DecodeError::Shape("op is not a string".into()))?,
    )?;
    let src = match p.get("source") {
        Some(Value::Object(s)) => s,
        _ => return Err(DecodeError::Shape("source is not an object".into())),
    };
    let table = table_of(topic, src.get("table").and_then(Value::as_str))?;
    let source = Source {
        lsn: src.get("lsn").and_then(Value::as_i64),
        tx_id: src.get("txId").and_then(Value::as_i64),
        ts_ms: src.get("ts_ms").and_then(Value::as_i64),
        snapshot: snapshot(src.get("snapshot")),
    };
    let side = |name: &str| -> Result<Columns, DecodeError> {
        match p.get(name) {
            Some(Value::Object(row)) => {
                columns(table, row, &field_schemas(schema, Some(name)), opts)
            }
            _ => Err(DecodeError::Shape(format!(
                "a {op:?} change without {name:?}"
            ))),
        }
    };
    let data = match op {
        Op::Create | Op::Update | Op::Read => {
            ChangeData::Upsert(Row::from_columns(table, &side("after")?)?)
        }
        Op::Delete => ChangeData::Delete(Key::from_columns(table, &side("before")?)?),
        Op::Truncate => ChangeData::Truncate,
    };
    Ok(Change {
        table,
        op: Some(op),
        source,
        data,
    })
}

fn flattened(
    topic: &str,
    schema: Option<&Value>,
    p: &Map<String, Value>,
    opts: &Options,
) -> Result<Change, DecodeError> {
    let table = table_of(topic, p.get("__table").and_then(Value::as_str))?;
    if !table
        .columns()
        .iter()
        .any(|(name, _)| p.contains_key(*name))
    {
        return Err(DecodeError::Shape(format!(
            "neither an envelope (op, source) nor a row of {table}"
        )));
    }
    let op = p
        .get("__op")
        .and_then(Value::as_str)
        .map(Op::parse)
        .transpose()?;
    // `add.fields` names a source field bare (`lsn`) or qualified
    // (`source.lsn`, written `__source_lsn`).
    let added = |name: &str| {
        p.get(&format!("__{name}"))
            .or_else(|| p.get(&format!("__source_{name}")))
    };
    let source = Source {
        lsn: added("lsn").and_then(Value::as_i64),
        tx_id: added("txId").and_then(Value::as_i64),
        ts_ms: p.get("__source_ts_ms").and_then(Value::as_i64),
        snapshot: snapshot(added("snapshot")),
    };
    let cols = columns(table, p, &field_schemas(schema, None), opts)?;
    let deleted = matches!(p.get("__deleted"), Some(Value::Bool(true)))
        || p.get("__deleted").and_then(Value::as_str) == Some("true")
        || op == Some(Op::Delete);
    let data = if deleted {
        ChangeData::Delete(Key::from_columns(table, &cols)?)
    } else {
        ChangeData::Upsert(Row::from_columns(table, &cols)?)
    };
    Ok(Change {
        table,
        op,
        source,
        data,
    })
}

/// Debezium 1.x wrote a boolean; 2.x writes `"true"`, `"last"`,
/// `"incremental"`... and `"false"` outside a snapshot.
fn snapshot(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s != "false",
        _ => false,
    }
}

/// The schemas of a row's fields: the wrapper schema's own fields for a
/// flattened record, those of its `side` (`before`/`after`) for an envelope.
fn field_schemas<'a>(
    schema: Option<&'a Value>,
    side: Option<&str>,
) -> HashMap<&'a str, FieldSchema<'a>> {
    let fields = |s: &'a Value| s.get("fields").and_then(Value::as_array);
    let row = match (schema, side) {
        (Some(s), None) => fields(s),
        (Some(s), Some(side)) => fields(s).and_then(|fs| {
            fs.iter()
                .find(|f| f.get("field").and_then(Value::as_str) == Some(side))
                .and_then(fields)
        }),
        (None, _) => None,
    };
    row.into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f.get("field")?.as_str()?;
            Some((
                name,
                FieldSchema {
                    connect_type: f.get("type").and_then(Value::as_str),
                    name: f.get("name").and_then(Value::as_str),
                    scale: f
                        .get("parameters")
                        .and_then(|p| p.get("scale"))
                        .and_then(|s| match s {
                            Value::String(s) => s.parse().ok(),
                            other => other.as_u64().and_then(|n| u32::try_from(n).ok()),
                        }),
                },
            ))
        })
        .collect()
}

/// The table's columns present in `row`, decoded. Columns the loader does
/// not know (added later to the table) are left out, not refused.
fn columns(
    table: Table,
    row: &Map<String, Value>,
    schemas: &HashMap<&str, FieldSchema<'_>>,
    opts: &Options,
) -> Result<Columns, DecodeError> {
    let mut out = Columns::new();
    for &(column, kind) in table.columns() {
        let Some(raw) = row.get(column) else { continue };
        let schema = schemas.get(column).copied().unwrap_or_default();
        let datum = encoding::decode(raw, kind, schema, opts.decimal_mode).map_err(|e| {
            DecodeError::Field {
                table,
                column,
                reason: e.0,
            }
        })?;
        out.insert(column, datum);
    }
    Ok(out)
}
