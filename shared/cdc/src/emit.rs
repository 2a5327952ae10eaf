//! The other direction: a row change written as the Debezium connector
//! configured in `infra/debezium/connector.json` writes it. That is the
//! JSON converter with schemas, `ExtractNewRecordState` with
//! `add.fields=op,table,lsn,source.ts_ms` and deletes rewritten
//! (`__deleted`), numerics `precise`. The local change tap emits these, so
//! the loader reads locally exactly what it reads from MSK.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

use crate::debezium::Op;
use crate::encoding::{Datum, Kind, UNAVAILABLE};
use crate::tables::{Columns, Table};

/// One Kafka record: its topic, key and value (both JSON with schema).
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub topic: String,
    pub key: Value,
    pub value: Value,
}

/// Where in the source a change was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub lsn: i64,
    /// The transaction's commit time, ms since the epoch.
    pub commit_ts_ms: i64,
}

/// `row` of `table`, changed by `op` (`Create`, `Update`, `Read` or
/// `Delete`; a delete's row holds what the replica identity kept), as the
/// connector under topic prefix `prefix` writes it. `key` names the
/// primary key's columns.
pub fn flattened(
    prefix: &str,
    table: Table,
    op: Op,
    at: At,
    key: &[&str],
    row: &Columns,
) -> Emitted {
    let text = Writer::new(prefix).flattened(table, op, at, key, row);
    Emitted {
        topic: text.topic,
        key: serde_json::from_str(&text.key).expect("the writer writes JSON"),
        value: serde_json::from_str(&text.value).expect("the writer writes JSON"),
    }
}

/// A record as the bytes Kafka holds: key and value as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct EmittedText {
    pub topic: String,
    pub key: String,
    pub value: String,
}

/// Writes records of one connector, keeping each table's schemas as text:
/// a schema is most of a record, and the same for all of a table's.
pub struct Writer {
    prefix: String,
    /// (key schema, value schema) by table and key columns.
    schemas: HashMap<(Table, Vec<String>), (String, String)>,
}

impl Writer {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            schemas: HashMap::new(),
        }
    }

    pub fn topic(&self, table: Table) -> String {
        format!("{}.public.{table}", self.prefix)
    }

    /// See [`flattened`].
    pub fn flattened(
        &mut self,
        table: Table,
        op: Op,
        at: At,
        key: &[&str],
        row: &Columns,
    ) -> EmittedText {
        let columns = table.columns();
        let topic = self.topic(table);
        let (key_schema, value_schema) = self
            .schemas
            .entry((table, key.iter().map(|k| (*k).to_owned()).collect()))
            .or_insert_with(|| schemas(&topic, columns, key));
        let cell = |name: &str, kind: Kind| value(row.get(name).unwrap_or(&Datum::Null), kind);
        let mut payload: Map<String, Value> = columns
            .iter()
            .map(|(name, kind)| ((*name).to_owned(), cell(name, *kind)))
            .collect();
        let op_code = match op {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        };
        payload.insert("__op".into(), json!(op_code));
        payload.insert("__table".into(), json!(table.name()));
        payload.insert("__lsn".into(), json!(at.lsn));
        payload.insert("__source_ts_ms".into(), json!(at.commit_ts_ms));
        payload.insert("__deleted".into(), json!((op == Op::Delete).to_string()));
        let key_payload: Map<String, Value> = columns
            .iter()
            .filter(|(name, _)| key.contains(name))
            .map(|(name, kind)| ((*name).to_owned(), cell(name, *kind)))
            .collect();
        EmittedText {
            key: format!(
                r#"{{"schema":{key_schema},"payload":{}}}"#,
                Value::Object(key_payload)
            ),
            value: format!(
                r#"{{"schema":{value_schema},"payload":{}}}"#,
                Value::Object(payload)
            ),
            topic,
        }
    }
}

/// A table's key and value schemas, as JSON text.
fn schemas(topic: &str, columns: &[(&'static str, Kind)], key: &[&str]) -> (String, String) {
    let key_fields: Vec<Value> = columns
        .iter()
        .filter(|(name, _)| key.contains(name))
        .map(|(name, kind)| field(name, *kind, false))
        .collect();
    let mut fields: Vec<Value> = columns
        .iter()
        .map(|(name, kind)| field(name, *kind, !key.contains(name)))
        .collect();
    for (name, ty) in [
        ("__op", "string"),
        ("__table", "string"),
        ("__lsn", "int64"),
        ("__source_ts_ms", "int64"),
        ("__deleted", "string"),
    ] {
        fields.push(json!({"type": ty, "optional": true, "field": name}));
    }
    let key = json!({"type": "struct", "optional": false, "name": format!("{topic}.Key"),
                     "fields": key_fields});
    let value = json!({"type": "struct", "optional": false, "name": format!("{topic}.Value"),
                       "fields": fields});
    (key.to_string(), value.to_string())
}

/// A heartbeat of the connector under `prefix` at `ts_ms`: every change
/// committed before it has been sent.
pub fn heartbeat(prefix: &str, ts_ms: i64) -> Emitted {
    let schema = json!({"type": "struct", "optional": false,
        "name": "io.debezium.connector.common.Heartbeat",
        "fields": [{"type": "int64", "optional": false, "field": "ts_ms"}]});
    Emitted {
        topic: format!("__debezium-heartbeat.{prefix}"),
        key: json!({"schema": {"type": "struct", "optional": false,
            "name": "io.debezium.connector.common.ServerNameKey",
            "fields": [{"type": "string", "optional": false, "field": "serverName"}]},
            "payload": {"serverName": prefix}}),
        value: json!({"schema": schema, "payload": {"ts_ms": ts_ms}}),
    }
}

/// A column's schema as the JSON converter writes it.
fn field(name: &str, kind: Kind, optional: bool) -> Value {
    let mut f = match kind {
        Kind::Int64 => json!({"type": "int64"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Text => json!({"type": "string"}),
        Kind::Timestamp => {
            json!({"type": "string", "name": "io.debezium.time.ZonedTimestamp", "version": 1})
        }
        Kind::Decimal { scale } => json!({
            "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
            "parameters": {"scale": scale.to_string(), "connect.decimal.precision": "20"},
        }),
        Kind::Json => json!({"type": "string", "name": "io.debezium.data.Json", "version": 1}),
    };
    f["optional"] = json!(optional);
    f["field"] = json!(name);
    f
}

/// A value as the JSON converter writes it for a column of `kind`.
pub fn value(d: &Datum, kind: Kind) -> Value {
    match d {
        Datum::Null => Value::Null,
        Datum::Unavailable => json!(UNAVAILABLE),
        Datum::Int64(v) => json!(v),
        Datum::Bool(v) => json!(v),
        Datum::Text(v) => json!(v),
        Datum::Timestamp(t) => json!(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        Datum::Json(d) => json!(d.text()),
        Datum::Decimal(v) => {
            let scale = match kind {
                Kind::Decimal { scale } => scale,
                _ => v.scale(),
            };
            let mut v = *v;
            v.rescale(scale);
            json!(STANDARD.encode(twos_complement(v.mantissa())))
        }
    }
}

/// The shortest big-endian two's-complement bytes of `n`, as Java's
/// `BigInteger.toByteArray` (what Kafka Connect's Decimal writes).
fn twos_complement(n: i128) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twos_complement_is_as_short_as_java_writes_it() {
        assert_eq!(twos_complement(0), [0x00]);
        assert_eq!(twos_complement(127), [0x7f]);
        assert_eq!(twos_complement(128), [0x00, 0x80]);
        assert_eq!(twos_complement(-1), [0xff]);
        assert_eq!(twos_complement(-128), [0x80]);
        assert_eq!(twos_complement(-129), [0xff, 0x7f]);
    }
}
