//! Promotion and demotion of hot attributes, and the divergence check.
//!
//! `request` (the query API, as the tenant) flips `attributes.is_hot` and
//! records a change in `hot_changes`; `work_batch` (the flusher, between
//! flushes) works the oldest open change off one batch of entities at a
//! time. A promotion merges each entity's latest reading into
//! `entity_jsonb` through `atlas_hot_merge`, so a newer value the flusher
//! wrote meanwhile wins; a demotion removes the key. The cursor is
//! committed with each batch, so the work resumes after a crash.
//!
//! `divergent` is the seed's "monitor divergence": entities whose projected
//! value differs from the latest reading in `entity_values_ts`.

use atlas_core::{AttributeName, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Pool, StoreError, Transaction};

/// One promotion or demotion and how far it has got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HotChange {
    /// `promote` or `demote`.
    pub kind: String,
    /// `pending`, `running`, `done` or `superseded`.
    pub state: String,
    pub entities_done: i64,
    /// The tenant's entities when the work began; `None` until it has.
    pub entities_total: Option<i64>,
    /// Entities whose projection the change rewrote.
    pub entities_changed: i64,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Joined to `attributes a`: the attribute's latest change, or NULLs.
/// Its columns are read back by `latest_change`.
pub const LATEST_CHANGE: &str = "LEFT JOIN LATERAL ( \
    SELECT kind, state, entities_done, entities_total, rows_changed, created_at, finished_at \
    FROM hot_changes h WHERE h.tenant_id = a.tenant_id AND h.attribute_id = a.attribute_id \
    ORDER BY change_id DESC LIMIT 1) c ON true";

/// The change `LATEST_CHANGE` joined, from the row's columns `first..`.
pub fn latest_change(r: &tokio_postgres::Row, first: usize) -> Option<HotChange> {
    Some(HotChange {
        kind: r.get::<_, Option<String>>(first)?,
        state: r.get(first + 1),
        entities_done: r.get(first + 2),
        entities_total: r.get(first + 3),
        entities_changed: r.get(first + 4),
        created_at: r.get(first + 5),
        finished_at: r.get(first + 6),
    })
}

/// The namespace of the per-tenant advisory locks (two-key form, with
/// `atlas_projection_lock_key(tenant)` as the second key) that flush batches
/// and background work hold shared and hotness changes exclusively ("ATHT"
/// in ASCII).
pub const PROJECTION_LOCK: i32 = 0x4154_4854;

/// What `request` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// No such attribute in the tenant's catalog.
    Missing,
    /// It already was that; nothing changes.
    Unchanged,
    /// Flipped, and the background work is queued.
    Queued,
}

/// Makes `name` hot or cold for `tenant`, in the caller's tenant-scoped
/// transaction. An unfinished change of the same attribute is superseded.
pub async fn request(
    tx: &Transaction<'_>,
    tenant: TenantId,
    name: &AttributeName,
    hot: bool,
) -> Result<Requested, StoreError> {
    // Waits for the flush batches and background work in flight that hold
    // this tenant's rows (a batch lasts well under a second): none may
    // commit a projection decided on the old hotness after the background
    // work has started. Other tenants' batches never wait for it.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, atlas_projection_lock_key($2))",
        &[&PROJECTION_LOCK, &tenant.get()],
    )
    .await?;
    let row = tx
        .query_opt(
            "SELECT attribute_id, is_hot FROM attributes WHERE tenant_id = $1 AND attribute_name = $2 \
             FOR UPDATE",
            &[&tenant.get(), &name.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Requested::Missing);
    };
    let (attribute_id, is_hot): (i64, bool) = (row.get(0), row.get(1));
    if is_hot == hot {
        return Ok(Requested::Unchanged);
    }
    tx.execute(
        "UPDATE attributes SET is_hot = $3 WHERE tenant_id = $1 AND attribute_id = $2",
        &[&tenant.get(), &attribute_id, &hot],
    )
    .await?;
    tx.execute(
        "UPDATE hot_changes SET state = 'superseded', updated_at = now(), finished_at = now() \
         WHERE tenant_id = $1 AND attribute_id = $2 AND state IN ('pending', 'running')",
        &[&tenant.get(), &attribute_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO hot_changes (tenant_id, attribute_id, kind) VALUES ($1, $2, $3)",
        &[
            &tenant.get(),
            &attribute_id,
            &if hot { "promote" } else { "demote" },
        ],
    )
    .await?;
    Ok(Requested::Queued)
}

/// What one batch of background work did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Worked {
    /// `(tenant_id, entity_id)` of each entity whose projection changed.
    pub changed: Vec<(i64, i64)>,
    /// The change finished with this batch.
    pub finished: bool,
}

/// The latest reading of the attribute per entity of the batch, merged in.
const PROMOTE: &str = r#"
WITH ents AS (
    SELECT entity_id FROM entities
    WHERE tenant_id = $1 AND entity_id > $3
    ORDER BY entity_id LIMIT $4
), latest AS (
    SELECT e.entity_id, l.ingested_at, l.v
    FROM ents e
    CROSS JOIN LATERAL (
        SELECT ingested_at,
               coalesce(to_jsonb(value_int), to_jsonb(value_decimal), to_jsonb(value_bool),
                        to_jsonb(value_timestamp), to_jsonb(value)) AS v
        FROM entity_values_ts
        WHERE tenant_id = $1 AND entity_id = e.entity_id AND attribute_id = $2
        ORDER BY ingested_at DESC LIMIT 1
    ) l
), up AS (
    INSERT INTO entity_jsonb AS ej (tenant_id, entity_id, hot_attrs, hot_attrs_ts, updated_at)
    SELECT $1, entity_id, jsonb_build_object($5::text, v),
           jsonb_build_object($5::text, (extract(epoch FROM ingested_at) * 1000000)::bigint),
           ingested_at
    FROM latest
    ORDER BY entity_id
    ON CONFLICT (tenant_id, entity_id) DO UPDATE SET
        hot_attrs = atlas_hot_merge(ej.hot_attrs, ej.hot_attrs_ts, EXCLUDED.hot_attrs, EXCLUDED.hot_attrs_ts),
        hot_attrs_ts = atlas_hot_merge(ej.hot_attrs_ts, ej.hot_attrs_ts, EXCLUDED.hot_attrs_ts, EXCLUDED.hot_attrs_ts),
        updated_at = greatest(ej.updated_at, EXCLUDED.updated_at)
    RETURNING entity_id
)
SELECT (SELECT count(*) FROM ents), (SELECT max(entity_id) FROM ents),
       coalesce((SELECT array_agg(entity_id) FROM up), '{}')
"#;

/// The key removed from each entity of the batch that has it.
const DEMOTE: &str = r#"
WITH ents AS (
    SELECT entity_id FROM entities
    WHERE tenant_id = $1 AND entity_id > $2
    ORDER BY entity_id LIMIT $3
), down AS (
    UPDATE entity_jsonb ej
    SET hot_attrs = hot_attrs - $4::text, hot_attrs_ts = hot_attrs_ts - $4::text
    FROM ents
    WHERE ej.tenant_id = $1 AND ej.entity_id = ents.entity_id AND ej.hot_attrs ? $4::text
    RETURNING ej.entity_id
)
SELECT (SELECT count(*) FROM ents), (SELECT max(entity_id) FROM ents),
       coalesce((SELECT array_agg(entity_id) FROM down), '{}')
"#;

/// Works the oldest open change off by up to `batch` entities, as the
/// worker role. `None` when no change is open.
pub async fn work_batch(pool: &Pool, batch: i64) -> Result<Option<Worked>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The tenant's projection lock comes before the change's row, in the
    // order a PATCH takes them, so the two never wait on each other in a
    // circle; the next open change is peeked at to learn whose it is.
    let Some(next) = tx
        .query_opt(
            "SELECT tenant_id FROM hot_changes WHERE state IN ('pending', 'running') \
             ORDER BY change_id LIMIT 1",
            &[],
        )
        .await?
    else {
        return Ok(None);
    };
    let tenant: i64 = next.get(0);
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1, atlas_projection_lock_key($2))",
        &[&PROJECTION_LOCK, &tenant],
    )
    .await?;
    // SKIP LOCKED: two flushers work on two changes, or one waits its turn.
    let claim = tx
        .prepare_cached(
            "SELECT c.change_id, c.tenant_id, c.attribute_id, a.attribute_name, c.kind, \
                    c.cursor_entity, c.entities_total \
             FROM hot_changes c JOIN attributes a USING (tenant_id, attribute_id) \
             WHERE c.state IN ('pending', 'running') AND c.tenant_id = $1 \
             ORDER BY c.change_id LIMIT 1 FOR UPDATE OF c SKIP LOCKED",
        )
        .await?;
    let Some(job) = tx.query_opt(&claim, &[&tenant]).await? else {
        return Ok(None);
    };
    let (change_id, tenant, attribute_id): (i64, i64, i64) = (job.get(0), job.get(1), job.get(2));
    let (name, kind): (String, String) = (job.get(3), job.get(4));
    let cursor: i64 = job.get::<_, Option<i64>>(5).unwrap_or(-1);
    if job.get::<_, Option<i64>>(6).is_none() {
        tx.execute(
            "UPDATE hot_changes SET entities_total = \
                 (SELECT count(*) FROM entities WHERE tenant_id = $2), state = 'running' \
             WHERE change_id = $1",
            &[&change_id, &tenant],
        )
        .await?;
    }
    let row = if kind == "promote" {
        let stmt = tx.prepare_cached(PROMOTE).await?;
        tx.query_one(&stmt, &[&tenant, &attribute_id, &cursor, &batch, &name])
            .await?
    } else {
        let stmt = tx.prepare_cached(DEMOTE).await?;
        tx.query_one(&stmt, &[&tenant, &cursor, &batch, &name])
            .await?
    };
    let (scanned, last): (i64, Option<i64>) = (row.get(0), row.get(1));
    let changed: Vec<i64> = row.get(2);
    let finished = scanned < batch;
    tx.execute(
        "UPDATE hot_changes SET cursor_entity = coalesce($2, cursor_entity), \
             entities_done = entities_done + $3, rows_changed = rows_changed + $4, \
             state = CASE WHEN $5 THEN 'done' ELSE 'running' END, updated_at = now(), \
             finished_at = CASE WHEN $5 THEN now() END \
         WHERE change_id = $1",
        &[
            &change_id,
            &last,
            &scanned,
            &(changed.len() as i64),
            &finished,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Worked {
        changed: changed.into_iter().map(|e| (tenant, e)).collect(),
        finished,
    }))
}

/// An entity whose projection disagrees with its latest reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    pub tenant_id: i64,
    pub entity_id: i64,
    pub attribute: String,
    /// The latest value in `entity_values_ts` (null: no reading, or the
    /// attribute is cold and should not be projected).
    pub latest: Option<serde_json::Value>,
    /// What `entity_jsonb` holds (null: the key is missing).
    pub projected: Option<serde_json::Value>,
}

/// Entities of `tenant` whose projection of `attribute` differs from its
/// latest reading: for a hot attribute, a missing or different value; for
/// a cold one, any value at all. At most `limit`, by entity id. As the
/// worker role, outside any tenant.
pub async fn divergent(
    pool: &Pool,
    tenant: TenantId,
    attribute: &AttributeName,
    limit: i64,
) -> Result<Vec<Divergence>, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            r#"
WITH attr AS (
    SELECT attribute_id, is_hot FROM attributes WHERE tenant_id = $1 AND attribute_name = $2
), latest AS (
    SELECT DISTINCT ON (ts.entity_id) ts.entity_id,
           coalesce(to_jsonb(value_int), to_jsonb(value_decimal), to_jsonb(value_bool),
                    to_jsonb(value_timestamp), to_jsonb(value)) AS v
    FROM entity_values_ts ts JOIN attr USING (attribute_id)
    WHERE ts.tenant_id = $1 AND attr.is_hot
    ORDER BY ts.entity_id, ts.ingested_at DESC
), projected AS (
    SELECT entity_id, hot_attrs -> $2::text AS v
    FROM entity_jsonb WHERE tenant_id = $1 AND hot_attrs ? $2::text
)
SELECT coalesce(l.entity_id, p.entity_id) AS entity_id, l.v, p.v
FROM latest l FULL JOIN projected p USING (entity_id)
WHERE l.v IS DISTINCT FROM p.v
ORDER BY 1 LIMIT $3
"#,
        )
        .await?;
    let rows = client
        .query(&stmt, &[&tenant.get(), &attribute.as_str(), &limit])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Divergence {
            tenant_id: tenant.get(),
            entity_id: r.get(0),
            attribute: attribute.to_string(),
            latest: r.get(1),
            projected: r.get(2),
        })
        .collect())
}

/// `divergent` for every attribute of `tenant`, hot or cold, at most
/// `limit` per attribute.
pub async fn divergent_all(
    pool: &Pool,
    tenant: TenantId,
    limit: i64,
) -> Result<Vec<Divergence>, StoreError> {
    let names: Vec<String> = pool
        .get()
        .await?
        .query(
            "SELECT attribute_name FROM attributes WHERE tenant_id = $1 ORDER BY 1",
            &[&tenant.get()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut all = Vec::new();
    for name in names {
        let name = AttributeName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        all.extend(divergent(pool, tenant, &name, limit).await?);
    }
    Ok(all)
}
