//! The tap itself: a logical replication slot on the `atlas_cdc`
//! publication, read over SQL, its changes turned into the Debezium records
//! the connector would write and handed on as MSK events.
//!
//! The slot is only peeked at. Its position moves past a transaction once
//! the sink says the events holding it are loaded, so a crash of the tap
//! or of the loader in between means those changes come again, and the
//! loader's idempotence makes that harmless.

use std::time::Duration;

use atlas_cdc::emit::{self, At};
use atlas_cdc::encoding::{Datum, Document, Kind};
use atlas_cdc::tables::Columns;
use atlas_cdc::{Op, Table};
use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use tokio_postgres::types::PgLsn;

use crate::pgoutput::{self, Cell, Message, PG_EPOCH_MICROS, Relations};

#[derive(Debug, Clone)]
pub struct TapConfig {
    pub slot: String,
    pub publication: String,
    /// Debezium's `topic.prefix`: topics are `<prefix>.public.<table>`.
    pub topic_prefix: String,
    /// Most records in one MSK event (Lambda delivers up to 10,000).
    pub batch_size: usize,
    /// Most changes read from the slot at once (whole transactions are
    /// always read whole).
    pub read_limit: i32,
    /// The pause when the slot has nothing new.
    pub interval: Duration,
    /// How long changes may wait for more to fill an event (an MSK event
    /// source's batching window): many small loads cost more than a few
    /// large ones.
    pub window: Duration,
    /// While the slot has nothing new, a heartbeat this often tells the
    /// loader how fresh the warehouse is (as the connector's
    /// `heartbeat.interval.ms` does).
    pub heartbeat: Duration,
}

impl Default for TapConfig {
    fn default() -> Self {
        Self {
            slot: "atlas_cdc".into(),
            publication: "atlas_cdc".into(),
            topic_prefix: "atlas".into(),
            batch_size: 10_000,
            read_limit: 50_000,
            interval: Duration::from_millis(500),
            window: Duration::from_millis(500),
            heartbeat: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Protocol(#[from] pgoutput::ProtocolError),
    #[error("the snapshot could not be loaded ({0}); the slot was dropped to take it again")]
    Snapshot(String),
    #[error("{table}.{column}: {value:?} is not {expected}")]
    Value {
        table: Table,
        column: String,
        value: String,
        expected: &'static str,
    },
}

/// What one read of the slot found.
#[derive(Debug, Default)]
pub struct Read {
    /// The records, in MSK events of at most `batch_size` each.
    pub events: Vec<KafkaEvent>,
    /// For each event, its changes' commit times (ms since the epoch): how
    /// old they are when the event is loaded.
    pub commits: Vec<Vec<i64>>,
    pub changes: usize,
    /// Where the slot may move once all `events` are loaded; `None` when
    /// the read found no transaction.
    pub upto: Option<PgLsn>,
    /// The newest commit read.
    pub newest_commit: Option<DateTime<Utc>>,
}

pub struct Tap {
    client: Client,
    cfg: TapConfig,
    /// The slot was made by this tap: the rows from before it are not in
    /// it, and go first as a snapshot.
    created: bool,
}

impl Tap {
    /// Takes `client` (a login with the REPLICATION attribute, or the
    /// owner locally) for the tap alone, and creates the slot if it is
    /// missing; rows from before then come from [`Tap::snapshot`].
    pub async fn new(client: Client, cfg: TapConfig) -> Result<Self, TapError> {
        // Timestamps come as text in the session's zone and style.
        client
            .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
            .await?;
        let created = client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput') \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                &[&cfg.slot],
            )
            .await?
            == 1;
        Ok(Self {
            client,
            cfg,
            created,
        })
    }

    /// Whether the slot is new, so [`Tap::snapshot`] must go first.
    pub fn needs_snapshot(&self) -> bool {
        self.created
    }

    /// Every row of the published tables, as the connector's initial
    /// snapshot sends them (`op` r), at the slot's starting position: a
    /// change the slot also holds comes again later, with a newer
    /// position, and the loader keeps the newer.
    pub async fn snapshot(&self) -> Result<Read, TapError> {
        let start: PgLsn = self
            .client
            .query_one(
                "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.cfg.slot],
            )
            .await?
            .get(0);
        let at = At {
            lsn: u64::from(start) as i64,
            commit_ts_ms: Utc::now().timestamp_millis(),
        };
        let mut records: Vec<Out> = Vec::new();
        let mut writer = emit::Writer::new(&self.cfg.topic_prefix);
        let mut offset = 0i64;
        for table in Table::ALL {
            let key: Vec<String> = self
                .client
                .query(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                     ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
                     WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
                    &[&table.name()],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let key: Vec<&str> = key.iter().map(String::as_str).collect();
            let columns = table.columns();
            let list: Vec<String> = columns.iter().map(|(n, _)| format!("{n}::text")).collect();
            // The table's own name, not a parameter: it is one of five
            // constants.
            let sql = format!("SELECT {} FROM {}", list.join(", "), table.name());
            for row in self.client.query(&sql, &[]).await? {
                let mut cols = Columns::new();
                for (i, (name, kind)) in columns.iter().enumerate() {
                    let cell = row
                        .get::<_, Option<String>>(i)
                        .map_or(Cell::Null, Cell::Text);
                    cols.insert(name, datum(table, name, *kind, cell)?);
                }
                let out = writer.flattened(table, Op::Read, at, &key, &cols);
                records.push((out.topic, offset, out.key, out.value, at.commit_ts_ms));
                offset += 1;
            }
        }
        let chunks = records.chunks(self.cfg.batch_size.max(1));
        Ok(Read {
            changes: records.len(),
            events: chunks.clone().map(event).collect(),
            commits: chunks.map(|c| c.iter().map(|r| r.4).collect()).collect(),
            upto: None,
            newest_commit: None,
        })
    }

    pub fn config(&self) -> &TapConfig {
        &self.cfg
    }

    /// The changes after the slot's position, without moving it.
    pub async fn read(&self) -> Result<Read, TapError> {
        let rows = self
            .client
            .query(
                "SELECT lsn, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
                 'proto_version', '1', 'publication_names', $3)",
                &[&self.cfg.slot, &self.cfg.read_limit, &self.cfg.publication],
            )
            .await?;
        let mut relations = Relations::default();
        let mut read = Read::default();
        let mut records: Vec<Out> = Vec::new();
        let mut writer = emit::Writer::new(&self.cfg.topic_prefix);
        let mut commit_ts_ms = 0i64;
        for row in rows {
            let lsn: PgLsn = row.get(0);
            let data: &[u8] = row.get(1);
            let (op, relation, cells) = match pgoutput::parse(data)? {
                Message::Begin { commit_ts, .. } => {
                    commit_ts_ms = (commit_ts + PG_EPOCH_MICROS) / 1000;
                    continue;
                }
                Message::Commit { end_lsn } => {
                    read.upto = Some(PgLsn::from(end_lsn));
                    read.newest_commit = DateTime::from_timestamp_millis(commit_ts_ms);
                    continue;
                }
                Message::Relation(r) => {
                    relations.learn(r);
                    continue;
                }
                Message::Insert { relation, new } => (Op::Create, relation, new),
                Message::Update { relation, new } => (Op::Update, relation, new),
                Message::Delete { relation, old } => (Op::Delete, relation, old),
                // The loader keeps nothing of a truncation (retention drops
                // partitions; the warehouse keeps its history).
                Message::Truncate { .. } | Message::Other(_) => continue,
            };
            let rel = relations.get(relation)?;
            let Some(table) = Table::of_relation(&rel.name) else {
                continue;
            };
            let mut cols = Columns::new();
            for (col, cell) in rel.columns.iter().zip(cells) {
                let Some((name, kind)) = table.columns().iter().find(|(n, _)| *n == col.name)
                else {
                    continue;
                };
                cols.insert(name, datum(table, name, *kind, cell)?);
            }
            let key: Vec<&str> = rel
                .columns
                .iter()
                .filter(|c| c.key)
                .map(|c| c.name.as_str())
                .collect();
            let at = At {
                lsn: u64::from(lsn) as i64,
                commit_ts_ms,
            };
            let out = writer.flattened(table, op, at, &key, &cols);
            records.push((out.topic, at.lsn, out.key, out.value, commit_ts_ms));
            read.changes += 1;
        }
        // The server stops at a commit, so every change read belongs to a
        // transaction `upto` covers.
        for chunk in records.chunks(self.cfg.batch_size.max(1)) {
            read.events.push(event(chunk));
            read.commits.push(chunk.iter().map(|r| r.4).collect());
        }
        Ok(read)
    }

    /// The next batch: what [`Tap::read`] finds, given until its oldest
    /// change is `window` old to fill an event when it finds less than
    /// that. A backlog goes at once (and is not read twice).
    pub async fn next(&self) -> Result<Read, TapError> {
        let read = self.read().await?;
        if read.changes == 0 || read.changes >= self.cfg.batch_size {
            return Ok(read);
        }
        let oldest = read.commits.iter().flatten().min().copied().unwrap_or(0);
        let waited = Utc::now().timestamp_millis() - oldest;
        let window = self.cfg.window.as_millis() as i64;
        if waited >= window {
            return Ok(read);
        }
        tokio::time::sleep(Duration::from_millis((window - waited) as u64)).await;
        self.read().await
    }

    /// A heartbeat as of `read_started`, when a read that began then found
    /// nothing: everything committed before was loaded. It is dated a
    /// second earlier, since a commit that did not wait for its WAL
    /// (`synchronous_commit = off`) may reach the slot up to a few
    /// `wal_writer_delay`s late.
    pub fn heartbeat(&self, read_started: DateTime<Utc>) -> KafkaEvent {
        let ts = (read_started - chrono::Duration::seconds(1)).timestamp_millis();
        let out = emit::heartbeat(&self.cfg.topic_prefix, ts);
        event(&[(
            out.topic,
            ts,
            out.key.to_string(),
            out.value.to_string(),
            ts,
        )])
    }

    /// Moves the slot past everything up to `upto`: call it only once the
    /// sink has the changes safe.
    pub async fn confirm(&self, upto: PgLsn) -> Result<(), TapError> {
        self.client
            .execute(
                "SELECT pg_replication_slot_advance($1, $2)",
                &[&self.cfg.slot, &upto],
            )
            .await?;
        Ok(())
    }

    /// Drops the slot; the database stops keeping WAL for it.
    pub async fn drop_slot(&self) -> Result<(), TapError> {
        self.client
            .execute("SELECT pg_drop_replication_slot($1)", &[&self.cfg.slot])
            .await?;
        Ok(())
    }
}

/// A record for an event: topic, offset, key, value (JSON text), commit
/// time.
type Out = (String, i64, String, String, i64);

/// An MSK event as Lambda delivers one: records by `topic-partition`, the
/// LSN as the offset (each change has its own, and a re-read repeats it).
fn event(records: &[Out]) -> KafkaEvent {
    let now = Utc::now().timestamp_millis();
    let mut event = KafkaEvent::default();
    event.event_source = Some("aws:kafka".into());
    event.event_source_arn = Some("arn:aws:kafka:local:000000000000:cluster/atlas-dev/tap".into());
    event.bootstrap_servers = Some("tap.local:9092".into());
    for (topic, offset, key, value, _) in records {
        let mut rec = KafkaRecord::default();
        rec.topic = Some(topic.clone());
        rec.offset = *offset;
        rec.timestamp =
            MillisecondTimestamp(DateTime::from_timestamp_millis(now).expect("now is a time"));
        rec.timestamp_type = Some("CREATE_TIME".into());
        rec.key = Some(STANDARD.encode(key));
        rec.value = Some(STANDARD.encode(value));
        event
            .records
            .entry(format!("{topic}-0"))
            .or_default()
            .push(rec);
    }
    event
}

/// A text value of a column of `kind`, as the server prints it with
/// TimeZone UTC and DateStyle ISO.
fn datum(table: Table, column: &str, kind: Kind, cell: Cell) -> Result<Datum, TapError> {
    let text = match cell {
        Cell::Null => return Ok(Datum::Null),
        Cell::Unchanged => return Ok(Datum::Unavailable),
        Cell::Text(t) => t,
    };
    let bad = |expected| TapError::Value {
        table,
        column: column.to_owned(),
        value: text.clone(),
        expected,
    };
    Ok(match kind {
        Kind::Int64 => Datum::Int64(text.parse().map_err(|_| bad("an int64"))?),
        // The output function writes t/f; a cast to text, true/false.
        Kind::Bool => match text.as_str() {
            "t" | "true" => Datum::Bool(true),
            "f" | "false" => Datum::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        Kind::Text => Datum::Text(text),
        Kind::Timestamp => Datum::Timestamp(
            DateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f%#z")
                .map_err(|_| bad("a timestamp"))?
                .with_timezone(&Utc),
        ),
        Kind::Decimal { .. } => Datum::Decimal(text.parse().map_err(|_| bad("a decimal"))?),
        Kind::Json => Datum::Json(Document::parse(&text).map_err(|_| bad("JSON"))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_becomes_typed_values() {
        let t = Table::Values;
        let ts = datum(
            t,
            "ingested_at",
            Kind::Timestamp,
            Cell::Text("2026-11-24 10:15:30.123456+00".into()),
        )
        .unwrap();
        assert_eq!(
            ts,
            Datum::Timestamp("2026-11-24T10:15:30.123456Z".parse().unwrap())
        );
        let whole = datum(
            t,
            "ingested_at",
            Kind::Timestamp,
            Cell::Text("2026-11-24 10:15:30+00".into()),
        );
        assert!(whole.is_ok());
        assert_eq!(
            datum(
                t,
                "value_decimal",
                Kind::Decimal { scale: 5 },
                Cell::Text("123456789012345.67891".into())
            )
            .unwrap(),
            Datum::Decimal("123456789012345.67891".parse().unwrap())
        );
        assert_eq!(
            datum(t, "value_bool", Kind::Bool, Cell::Text("t".into())).unwrap(),
            Datum::Bool(true)
        );
        assert_eq!(
            datum(t, "value", Kind::Text, Cell::Unchanged).unwrap(),
            Datum::Unavailable
        );
        assert!(matches!(
            datum(t, "value_int", Kind::Int64, Cell::Text("x".into())),
            Err(TapError::Value { .. })
        ));
    }
}
