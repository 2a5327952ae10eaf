//! Transform: decoded changes into what one load writes. Within a batch,
//! the same reading twice is kept once, and of several changes to one
//! dimension row or one entity's hot state only the newest is kept, so the
//! load's statements never see two rows for one key.
//!
//! Enrichment (tenant name, attribute name, type and category, entity
//! type) happens in the load, by joining the dimensions the loader keeps
//! from the same stream: a reading may arrive before its attribute's
//! change does (topics are ordered only within a partition), and the load
//! fills such readings in once the dimension arrives.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use atlas_cdc::tables::{AttributeRow, EntityRow, ProjectionRow, TenantRow, ValueRow};
use atlas_cdc::{Change, ChangeData, Key, Row};
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use rust_decimal::Decimal;

/// A change's place in the source's history: the order the newest change to
/// a key is picked by. A record without an LSN (a flattened one without
/// `add.fields`) counts as the oldest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub lsn: i64,
    pub commit_at: Option<DateTime<Utc>>,
}

impl Position {
    fn of(change: &Change) -> Position {
        Position {
            lsn: change.source.lsn.unwrap_or(0),
            commit_at: change
                .source
                .ts_ms
                .and_then(DateTime::<Utc>::from_timestamp_millis),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DimTenant {
    pub row: TenantRow,
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DimAttribute {
    pub row: AttributeRow,
    pub at: Position,
}

impl DimAttribute {
    /// The seed's attribute category.
    pub fn category(&self) -> &'static str {
        if self.row.is_hot { "hot" } else { "cold" }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DimEntity {
    pub tenant_id: i64,
    pub entity_id: i64,
    /// `None` for a deletion: the load keeps the type the warehouse holds.
    pub entity_type: Option<String>,
    pub is_deleted: bool,
    pub at: Position,
}

/// One reading of the time series, with its derived time columns (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub row: ValueRow,
    pub at: Position,
}

impl Fact {
    pub fn ingested_date(&self) -> NaiveDate {
        self.row.ingested_at.date_naive()
    }

    pub fn ingested_hour(&self) -> i16 {
        self.row.ingested_at.hour() as i16
    }

    /// 0 for Sunday to 6 for Saturday, as `EXTRACT(dow ...)` in both
    /// PostgreSQL and Redshift.
    pub fn day_of_week(&self) -> i16 {
        self.row.ingested_at.weekday().num_days_from_sunday() as i16
    }

    /// `YYYY-MM`.
    pub fn year_month(&self) -> String {
        self.row.ingested_at.format("%Y-%m").to_string()
    }

    /// The reading as a number, for the daily statistics; `None` for text,
    /// booleans and timestamps.
    pub fn number(&self) -> Option<Decimal> {
        self.row
            .value_decimal
            .or(self.row.value_int.map(Decimal::from))
    }
}

/// The newest hot state of an entity, or its deletion.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Upsert(ProjectionRow),
    Delete { tenant_id: i64, entity_id: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub state: State,
    pub at: Position,
}

type ReadingKey = (i64, i64, i64, DateTime<Utc>);

/// What one load writes, built change by change.
#[derive(Debug, Default)]
pub struct Batch {
    pub tenants: BTreeMap<i64, DimTenant>,
    pub attributes: BTreeMap<i64, DimAttribute>,
    pub entities: BTreeMap<(i64, i64), DimEntity>,
    pub facts: BTreeMap<ReadingKey, Fact>,
    pub states: BTreeMap<(i64, i64), StateChange>,
    /// Changes taken in.
    pub changes: usize,
    /// Readings this batch already held.
    pub duplicates: usize,
    /// Changes the warehouse keeps nothing of: deletes of readings, tenants
    /// and attributes (the warehouse keeps history, and its retention is
    /// its own) and truncations.
    pub ignored: usize,
    /// The newest change taken in from each source (a connector's topic
    /// prefix): the load watermarks.
    pub watermarks: BTreeMap<String, Position>,
}

impl Batch {
    /// Takes in `change`, from `source`.
    pub fn add(&mut self, source: &str, change: Change) {
        let at = Position::of(&change);
        self.changes += 1;
        self.mark(source, at);
        match change.data {
            ChangeData::Upsert(row) => self.upsert(row, at),
            ChangeData::Delete(Key::Projection {
                tenant_id,
                entity_id,
            }) => keep_newest(
                &mut self.states,
                (tenant_id, entity_id),
                StateChange {
                    state: State::Delete {
                        tenant_id,
                        entity_id,
                    },
                    at,
                },
                |s| s.at,
            ),
            // The entity row is gone; its dimension stays for its readings,
            // marked deleted, with the type it last had.
            ChangeData::Delete(Key::Entity {
                tenant_id,
                entity_id,
            }) => self.entity(tenant_id, entity_id, None, true, at),
            ChangeData::Delete(_) | ChangeData::Truncate => self.ignored += 1,
        }
    }

    /// The connector's heartbeat: at `ts_ms` it had sent every change
    /// before, so the warehouse is that fresh once this batch is loaded.
    pub fn heartbeat(&mut self, source: &str, ts_ms: i64) {
        let at = Position {
            lsn: 0,
            commit_at: DateTime::<Utc>::from_timestamp_millis(ts_ms),
        };
        self.mark(source, at);
    }

    /// Moves `source`'s watermark forward: the newest LSN and the newest
    /// commit time, each on its own (a heartbeat has a time, no LSN).
    fn mark(&mut self, source: &str, at: Position) {
        let mark = self.watermarks.entry(source.to_owned()).or_default();
        mark.lsn = mark.lsn.max(at.lsn);
        mark.commit_at = mark.commit_at.max(at.commit_at);
    }

    fn upsert(&mut self, row: Row, at: Position) {
        match row {
            Row::Tenant(row) => keep_newest(
                &mut self.tenants,
                row.tenant_id,
                DimTenant { row, at },
                |d| d.at,
            ),
            Row::Attribute(row) => keep_newest(
                &mut self.attributes,
                row.attribute_id,
                DimAttribute { row, at },
                |d| d.at,
            ),
            Row::Entity(EntityRow {
                tenant_id,
                entity_id,
                entity_type,
                is_deleted,
            }) => self.entity(tenant_id, entity_id, Some(entity_type), is_deleted, at),
            Row::Value(row) => {
                let key = (
                    row.tenant_id,
                    row.entity_id,
                    row.attribute_id,
                    row.ingested_at,
                );
                match self.facts.entry(key) {
                    Entry::Occupied(_) => self.duplicates += 1,
                    Entry::Vacant(slot) => {
                        slot.insert(Fact { row, at });
                    }
                }
            }
            Row::Projection(row) => {
                let key = (row.tenant_id, row.entity_id);
                let mut row = row;
                // An update that left a TOASTed document out keeps the one
                // an earlier change of this batch carried.
                if let Some(StateChange {
                    state: State::Upsert(prev),
                    at: prev_at,
                }) = self.states.get(&key)
                    && *prev_at <= at
                {
                    row.hot_attrs = row.hot_attrs.or_else(|| prev.hot_attrs.clone());
                    row.hot_attrs_ts = row.hot_attrs_ts.or_else(|| prev.hot_attrs_ts.clone());
                }
                keep_newest(
                    &mut self.states,
                    key,
                    StateChange {
                        state: State::Upsert(row),
                        at,
                    },
                    |s| s.at,
                )
            }
        }
    }

    fn entity(
        &mut self,
        tenant_id: i64,
        entity_id: i64,
        entity_type: Option<String>,
        is_deleted: bool,
        at: Position,
    ) {
        let dim = DimEntity {
            tenant_id,
            entity_id,
            entity_type,
            is_deleted,
            at,
        };
        keep_newest(&mut self.entities, (tenant_id, entity_id), dim, |d| d.at)
    }

    /// The hot states this batch sets.
    pub fn state_upserts(&self) -> impl Iterator<Item = (&ProjectionRow, Position)> {
        self.states.values().filter_map(|s| match &s.state {
            State::Upsert(row) => Some((row, s.at)),
            State::Delete { .. } => None,
        })
    }

    pub fn state_deletes(&self) -> impl Iterator<Item = (i64, i64, Position)> {
        self.states.values().filter_map(|s| match s.state {
            State::Delete {
                tenant_id,
                entity_id,
            } => Some((tenant_id, entity_id, s.at)),
            State::Upsert(_) => None,
        })
    }

    /// Nothing to load: no change and no heartbeat.
    pub fn is_empty(&self) -> bool {
        self.changes == 0 && self.watermarks.is_empty()
    }
}

/// Keeps `value` under `key` unless what is there is newer. Equal
/// positions (no LSN on either) let the later change win: the stream's
/// order within a partition.
fn keep_newest<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: V, at: impl Fn(&V) -> Position) {
    match map.get(&key) {
        Some(old) if at(old) > at(&value) => {}
        _ => {
            map.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_cdc::encoding::Document;
    use atlas_cdc::{Op, Source, Table};

    fn change(lsn: i64, data: ChangeData) -> Change {
        Change {
            table: Table::Values,
            op: Some(Op::Create),
            source: Source {
                lsn: Some(lsn),
                tx_id: None,
                ts_ms: Some(1_764_000_000_000 + lsn),
                snapshot: false,
            },
            data,
        }
    }

    fn reading(value_int: i64, at: &str) -> ChangeData {
        ChangeData::Upsert(Row::Value(ValueRow {
            tenant_id: 1,
            entity_id: 2,
            attribute_id: 3,
            value: None,
            value_int: Some(value_int),
            value_decimal: None,
            value_bool: None,
            value_timestamp: None,
            ingested_at: at.parse().unwrap(),
        }))
    }

    fn state(hot: Option<Document>, updated_at: &str) -> ChangeData {
        ChangeData::Upsert(Row::Projection(ProjectionRow {
            tenant_id: 1,
            entity_id: 2,
            hot_attrs: hot.clone(),
            hot_attrs_ts: hot,
            updated_at: updated_at.parse().unwrap(),
        }))
    }

    #[test]
    fn a_reading_twice_is_kept_once_with_its_derived_columns() {
        let mut b = Batch::default();
        b.add("atlas", change(10, reading(7, "2026-11-29T23:30:00Z")));
        b.add("atlas", change(10, reading(7, "2026-11-29T23:30:00Z")));
        b.add("atlas", change(11, reading(8, "2026-11-30T00:30:00Z")));
        assert_eq!((b.changes, b.facts.len(), b.duplicates), (3, 2, 1));
        let f = b.facts.values().next().unwrap();
        assert_eq!(f.ingested_date().to_string(), "2026-11-29");
        assert_eq!(f.ingested_hour(), 23);
        assert_eq!(f.day_of_week(), 0, "2026-11-29 is a Sunday");
        assert_eq!(f.year_month(), "2026-11");
        assert_eq!(f.number(), Some(Decimal::from(7)));
        assert_eq!(b.watermarks["atlas"].lsn, 11);
    }

    #[test]
    fn the_newest_state_wins_and_keeps_a_document_an_update_left_out() {
        let mut b = Batch::default();
        let doc = Document::parse(r#"{"status": "online"}"#).unwrap();
        b.add(
            "atlas",
            change(20, state(Some(doc.clone()), "2026-11-30T00:00:01Z")),
        );
        b.add("atlas", change(30, state(None, "2026-11-30T00:00:02Z")));
        // An older change arriving late changes nothing.
        b.add(
            "atlas",
            change(
                5,
                state(Some(Document::parse("{}").unwrap()), "2026-11-30T00:00:00Z"),
            ),
        );
        let (row, at) = b.state_upserts().next().unwrap();
        assert_eq!(at.lsn, 30);
        assert_eq!(row.hot_attrs, Some(doc));
        b.add(
            "atlas",
            change(
                40,
                ChangeData::Delete(Key::Projection {
                    tenant_id: 1,
                    entity_id: 2,
                }),
            ),
        );
        assert_eq!(b.state_upserts().count(), 0);
        assert_eq!(b.state_deletes().collect::<Vec<_>>().len(), 1);
    }

    #[test]
    fn deletes_of_history_are_ignored_and_a_deleted_entity_is_marked() {
        let mut b = Batch::default();
        b.add(
            "atlas",
            change(
                1,
                ChangeData::Upsert(Row::Entity(EntityRow {
                    tenant_id: 1,
                    entity_id: 2,
                    entity_type: "sensor".into(),
                    is_deleted: false,
                })),
            ),
        );
        b.add(
            "atlas",
            change(
                2,
                ChangeData::Delete(Key::Entity {
                    tenant_id: 1,
                    entity_id: 2,
                }),
            ),
        );
        b.add("atlas", change(3, ChangeData::Truncate));
        b.add(
            "atlas",
            change(
                4,
                ChangeData::Delete(Key::Value {
                    tenant_id: 1,
                    entity_id: 2,
                    attribute_id: 3,
                    ingested_at: "2026-11-30T00:00:00Z".parse().unwrap(),
                }),
            ),
        );
        let e = &b.entities[&(1, 2)];
        assert!(e.is_deleted);
        assert_eq!(e.entity_type, None, "the load keeps the type it has");
        assert_eq!(b.ignored, 2);
    }
}
