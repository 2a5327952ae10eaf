//! The local warehouse: a PostgreSQL database of its own, with the same
//! tables as Redshift (`sql/postgres.sql`) and the same load statements
//! ([`crate::load`]). The stage tables are temporary, one set per
//! connection, emptied by every commit; the batch reaches them as one
//! array per column.

use atlas_store::{Pool, StoreError, Transaction};
use tokio_postgres::types::{Json, ToSql};

use chrono::{DateTime, NaiveDate, Utc};

use crate::batch::{Batch, State};
use crate::load::{Counts, DAILY_STAGE, Dialect, Loaded, STEPS, Stage};
use crate::reads::{self, DailyRow, StatsQuery, StatsRow};
use crate::schema;

pub struct PgWarehouse {
    pool: Pool,
}

impl PgWarehouse {
    /// `pool` logs in as the warehouse database's owner.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Creates whatever is missing, so it is safe on every start. Two
    /// loaders starting at once take turns: concurrent `CREATE TABLE IF NOT
    /// EXISTS` of one table can fail in PostgreSQL.
    pub async fn apply_schema(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        take_turns(&tx, "atlas_warehouse_schema").await?;
        tx.batch_execute(schema::POSTGRES).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Loads `batch` in one transaction: all of it or, on any error,
    /// nothing. Loads take turns, so a reading delivered to two loads at
    /// once is still inserted once.
    pub async fn load(&self, batch: &Batch) -> Result<Loaded, StoreError> {
        let mut client = self.pool.get().await?;
        let loaded = load_in(&mut client, batch).await;
        if loaded.is_err() {
            // The connection may be the reason (a killed backend, a
            // timeout mid-statement): the retry gets a new one.
            drop(deadpool_postgres::Object::take(client));
        }
        loaded
    }
}

/// The load itself, on `client`.
async fn load_in(
    client: &mut deadpool_postgres::Object,
    batch: &Batch,
) -> Result<Loaded, StoreError> {
    let tx = client.transaction().await?;
    take_turns(&tx, "atlas_warehouse_load").await?;
    let mut ddl = String::new();
    for stage in Stage::ALL {
        ddl.push_str(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS;",
            stage.table(),
            Dialect::Postgres.stage_columns(stage)
        ));
    }
    ddl.push_str(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS;",
        DAILY_STAGE.0, DAILY_STAGE.1
    ));
    tx.batch_execute(&ddl).await?;

    let mut filled = Vec::new();
    for stage in Stage::ALL {
        if stage_rows(&tx, stage, batch).await? > 0 {
            filled.push(stage);
        }
    }
    let mut loaded = Loaded {
        duplicates: batch.duplicates as u64,
        ..Loaded::default()
    };
    for step in STEPS.iter().filter(|s| filled.contains(&s.stage)) {
        let stmt = tx
            .prepare_cached(&Dialect::Postgres.render(step.sql))
            .await?;
        let n = tx.execute(&stmt, &[]).await?;
        match step.counts {
            Counts::Nothing => {}
            Counts::Duplicates => loaded.duplicates += n,
            Counts::Loaded => loaded.loaded += n,
        }
    }
    tx.commit().await?;
    Ok(loaded)
}

/// The reads (see [`crate::reads`]).
impl PgWarehouse {
    /// The attribute's type, if the tenant has it.
    pub async fn attribute_type(
        &self,
        tenant_id: i64,
        attribute: &str,
    ) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(reads::ATTRIBUTE).await?;
        Ok(client
            .query_opt(&stmt, &[&tenant_id, &attribute])
            .await?
            .map(|r| r.get(0)))
    }

    pub async fn stats(&self, q: &StatsQuery<'_>) -> Result<Vec<StatsRow>, StoreError> {
        let client = self.pool.get().await?;
        let (first, last) = days(q.from, q.to);
        let rows = match q.group_by {
            None => {
                let stmt = client.prepare_cached(&reads::stats_sql()).await?;
                client
                    .query(
                        &stmt,
                        &[&q.tenant_id, &q.attribute, &q.from, &q.to, &first, &last],
                    )
                    .await?
            }
            Some(g) => {
                let stmt = client.prepare_cached(&reads::grouped_stats_sql()).await?;
                client
                    .query(
                        &stmt,
                        &[
                            &q.tenant_id,
                            &q.attribute,
                            &q.from,
                            &q.to,
                            &first,
                            &last,
                            &g,
                            &q.limit,
                        ],
                    )
                    .await?
            }
        };
        Ok(rows
            .iter()
            .map(|r| StatsRow {
                group: r.get(0),
                count: r.get(1),
                entities: r.get(2),
                avg: r.get(3),
                min: r.get(4),
                max: r.get(5),
                p50: r.get(6),
                p95: r.get(7),
            })
            .collect())
    }

    pub async fn daily(
        &self,
        tenant_id: i64,
        attribute: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyRow>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(reads::DAILY).await?;
        Ok(client
            .query(&stmt, &[&tenant_id, &attribute, &from, &to])
            .await?
            .iter()
            .map(|r| DailyRow {
                day: r.get(0),
                count: r.get(1),
                entities: r.get(2),
                avg: r.get(3),
                min: r.get(4),
                max: r.get(5),
            })
            .collect())
    }

    /// `None` too before the first load has created the tables: a warehouse
    /// without them holds nothing yet, which is not an outage.
    pub async fn data_as_of(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.pool.get().await?;
        let read = async {
            let stmt = client.prepare_cached(reads::DATA_AS_OF).await?;
            client.query_one(&stmt, &[]).await
        };
        match read.await {
            Ok(row) => Ok(row.get(0)),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The days `[from, to)` touches, for the day columns the tables are
/// sorted and indexed on.
pub(crate) fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let last = (to - chrono::Duration::microseconds(1)).max(from);
    (from.date_naive(), last.date_naive())
}

/// Waits for other transactions doing `what` (this database's advisory
/// locks are the warehouse's own).
async fn take_turns(tx: &Transaction<'_>, what: &str) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&what])
        .await?;
    Ok(())
}

/// `stage`'s rows, one array per column, in column order.
async fn insert(
    tx: &Transaction<'_>,
    stage: Stage,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let cols = stage.columns();
    assert_eq!(
        params.len(),
        cols.len(),
        "one array per column of {stage:?}"
    );
    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let arrays: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{}[]", i + 1, Dialect::Postgres.render(ty)))
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({})",
        stage.table(),
        names.join(", "),
        arrays.join(", ")
    );
    let stmt = tx.prepare_cached(&sql).await?;
    Ok(tx.execute(&stmt, params).await?)
}

/// Fills `stage` from `batch`; returns the rows written.
async fn stage_rows(tx: &Transaction<'_>, stage: Stage, batch: &Batch) -> Result<u64, StoreError> {
    match stage {
        Stage::Tenants => {
            let t = batch.tenants.values();
            if t.len() == 0 {
                return Ok(0);
            }
            let id: Vec<i64> = t.clone().map(|d| d.row.tenant_id).collect();
            let name: Vec<&str> = t.clone().map(|d| d.row.tenant_name.as_str()).collect();
            let active: Vec<bool> = t.clone().map(|d| d.row.is_active).collect();
            let lsn: Vec<i64> = t.map(|d| d.at.lsn).collect();
            insert(tx, stage, &[&id, &name, &active, &lsn]).await
        }
        Stage::Attributes => {
            let a = batch.attributes.values();
            if a.len() == 0 {
                return Ok(0);
            }
            let id: Vec<i64> = a.clone().map(|d| d.row.attribute_id).collect();
            let tenant: Vec<i64> = a.clone().map(|d| d.row.tenant_id).collect();
            let name: Vec<&str> = a.clone().map(|d| d.row.attribute_name.as_str()).collect();
            let ty: Vec<&str> = a.clone().map(|d| d.row.data_type.as_str()).collect();
            let category: Vec<&str> = a.clone().map(|d| d.category()).collect();
            let lsn: Vec<i64> = a.map(|d| d.at.lsn).collect();
            insert(tx, stage, &[&id, &tenant, &name, &ty, &category, &lsn]).await
        }
        Stage::Entities => {
            let e = batch.entities.values();
            if e.len() == 0 {
                return Ok(0);
            }
            let tenant: Vec<i64> = e.clone().map(|d| d.tenant_id).collect();
            let id: Vec<i64> = e.clone().map(|d| d.entity_id).collect();
            let ty: Vec<Option<&str>> = e.clone().map(|d| d.entity_type.as_deref()).collect();
            let deleted: Vec<bool> = e.clone().map(|d| d.is_deleted).collect();
            let lsn: Vec<i64> = e.map(|d| d.at.lsn).collect();
            insert(tx, stage, &[&tenant, &id, &ty, &deleted, &lsn]).await
        }
        Stage::Telemetry => {
            let f = batch.facts.values();
            if f.len() == 0 {
                return Ok(0);
            }
            let tenant: Vec<i64> = f.clone().map(|x| x.row.tenant_id).collect();
            let entity: Vec<i64> = f.clone().map(|x| x.row.entity_id).collect();
            let attribute: Vec<i64> = f.clone().map(|x| x.row.attribute_id).collect();
            let at: Vec<_> = f.clone().map(|x| x.row.ingested_at).collect();
            let value: Vec<Option<&str>> = f.clone().map(|x| x.row.value.as_deref()).collect();
            let int: Vec<_> = f.clone().map(|x| x.row.value_int).collect();
            let dec: Vec<_> = f.clone().map(|x| x.row.value_decimal).collect();
            let boolean: Vec<_> = f.clone().map(|x| x.row.value_bool).collect();
            let ts: Vec<_> = f.clone().map(|x| x.row.value_timestamp).collect();
            let date: Vec<_> = f.clone().map(|x| x.ingested_date()).collect();
            let hour: Vec<i16> = f.clone().map(|x| x.ingested_hour()).collect();
            let dow: Vec<i16> = f.clone().map(|x| x.day_of_week()).collect();
            let month: Vec<String> = f.clone().map(|x| x.year_month()).collect();
            let lsn: Vec<i64> = f.clone().map(|x| x.at.lsn).collect();
            let commit: Vec<_> = f.map(|x| x.at.commit_at).collect();
            insert(
                tx,
                stage,
                &[
                    &tenant, &entity, &attribute, &at, &value, &int, &dec, &boolean, &ts, &date,
                    &hour, &dow, &month, &lsn, &commit,
                ],
            )
            .await
        }
        Stage::CurrentState => {
            let s = batch.states.values();
            if s.len() == 0 {
                return Ok(0);
            }
            let (mut tenant, mut entity, mut hot, mut hot_ts, mut updated, mut deleted) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for change in s.clone() {
                match &change.state {
                    State::Upsert(row) => {
                        tenant.push(row.tenant_id);
                        entity.push(row.entity_id);
                        hot.push(row.hot_attrs.as_ref().map(|d| Json(d.raw())));
                        hot_ts.push(row.hot_attrs_ts.as_ref().map(|d| Json(d.raw())));
                        updated.push(Some(row.updated_at));
                        deleted.push(false);
                    }
                    State::Delete {
                        tenant_id,
                        entity_id,
                    } => {
                        tenant.push(*tenant_id);
                        entity.push(*entity_id);
                        hot.push(None);
                        hot_ts.push(None);
                        updated.push(None);
                        deleted.push(true);
                    }
                }
            }
            let lsn: Vec<i64> = s.map(|x| x.at.lsn).collect();
            insert(
                tx,
                stage,
                &[&tenant, &entity, &hot, &hot_ts, &updated, &deleted, &lsn],
            )
            .await
        }
        Stage::Watermarks => {
            let marks: Vec<_> = batch
                .watermarks
                .iter()
                .filter_map(|(source, at)| Some((source.as_str(), at.lsn, at.commit_at?)))
                .collect();
            if marks.is_empty() {
                return Ok(0);
            }
            let source: Vec<&str> = marks.iter().map(|m| m.0).collect();
            let lsn: Vec<i64> = marks.iter().map(|m| m.1).collect();
            let commit: Vec<_> = marks.iter().map(|m| m.2).collect();
            insert(tx, stage, &[&source, &lsn, &commit]).await
        }
    }
}
