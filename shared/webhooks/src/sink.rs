//! The CDC loader's second sink: each batch's changes of `entity_jsonb`
//! become `entity.updated` deliveries, one per matching webhook, written
//! to PostgreSQL before the warehouse load.
//!
//! Debezium sends an update without its old row, so the sink keeps what it
//! last saw of each entity of a tenant with webhooks
//! (`webhook_entity_state`) and reports `{attr: {old, new}}` against that.
//! Within one batch the loader keeps only an entity's newest state, so
//! several changes in one batch are one event from the state before the
//! batch to the state after it. A change at or before the position the
//! state reflects (a batch delivered again) makes nothing, and event ids
//! come from the webhook and the change, so the same change is never two
//! deliveries.

use std::collections::{BTreeMap, HashMap};

use atlas_store::{Pool, StoreError};
use atlas_warehouse::batch::{Batch, State};
use aws_lc_rs::digest;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// One entity's new hot state, from the change stream.
#[derive(Debug, Clone, PartialEq)]
pub struct HotChange {
    pub tenant_id: i64,
    pub entity_id: i64,
    pub hot_attrs: Map<String, Value>,
    /// The newest reading's time in it: when the change occurred.
    pub updated_at: DateTime<Utc>,
    /// The change's position in the source (0 when the record had none).
    pub lsn: i64,
}

impl HotChange {
    /// The batch's new hot states. A state whose document the record left
    /// out (an unchanged TOASTed value) says nothing to compare, and a
    /// deleted projection is no `entity.updated`.
    pub fn of(batch: &Batch) -> Vec<HotChange> {
        batch
            .states
            .values()
            .filter_map(|s| match &s.state {
                State::Upsert(row) => {
                    let doc = row.hot_attrs.as_ref()?;
                    let hot_attrs = serde_json::from_str(doc.text()).ok()?;
                    Some(HotChange {
                        tenant_id: row.tenant_id,
                        entity_id: row.entity_id,
                        hot_attrs,
                        updated_at: row.updated_at,
                        lsn: s.at.lsn,
                    })
                }
                State::Delete { .. } => None,
            })
            .collect()
    }
}

/// `{attr: {old, new}}` for every attribute whose value differs, of those
/// `only` names (all when `None`); a key that vanished has `new: null`.
pub fn changes(
    old: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
    only: Option<&[String]>,
) -> Map<String, Value> {
    let empty = Map::new();
    let old = old.unwrap_or(&empty);
    let wanted = |k: &String| only.is_none_or(|names| names.contains(k));
    let mut out = Map::new();
    for key in new
        .keys()
        .chain(old.keys().filter(|k| !new.contains_key(*k)))
    {
        let (before, after) = (old.get(key), new.get(key));
        if before != after && wanted(key) && !out.contains_key(key) {
            out.insert(
                key.clone(),
                json!({"old": before.cloned().unwrap_or(Value::Null),
                       "new": after.cloned().unwrap_or(Value::Null)}),
            );
        }
    }
    out
}

/// The event id of `change` for `webhook`: the same change, the same id.
fn event_id(webhook: &str, change: &HotChange) -> String {
    let key = format!(
        "{webhook}:{}:{}:{}:{}",
        change.tenant_id,
        change.entity_id,
        change.lsn,
        change.updated_at.timestamp_micros()
    );
    let hash = digest::digest(&digest::SHA256, key.as_bytes());
    let hex: String = hash.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("evt_{hex}")
}

/// What one batch made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Enqueued {
    /// Changes of tenants with webhooks.
    pub changes: usize,
    pub deliveries: u64,
}

/// Writes deliveries, as `atlas_worker`.
#[derive(Clone)]
pub struct Sink {
    pool: Pool,
}

struct Hook {
    id: String,
    attributes: Option<Vec<String>>,
}

impl Sink {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Turns `changes` into deliveries, in one transaction with the
    /// entities' new states.
    pub async fn enqueue(&self, changes: &[HotChange]) -> Result<Enqueued, StoreError> {
        if changes.is_empty() {
            return Ok(Enqueued::default());
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut tenants: Vec<i64> = changes.iter().map(|c| c.tenant_id).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut hooks: HashMap<i64, Vec<Hook>> = HashMap::new();
        for row in tx
            .query(
                "SELECT tenant_id, webhook_id, attributes FROM webhooks \
                 WHERE tenant_id = ANY($1) AND 'entity.updated' = ANY(events) \
                 ORDER BY tenant_id, created_at, webhook_id",
                &[&tenants],
            )
            .await?
        {
            hooks.entry(row.get(0)).or_default().push(Hook {
                id: row.get(1),
                attributes: row.get(2),
            });
        }
        // In key order, so two sinks lock states in one order.
        let mut watched: Vec<&HotChange> = changes
            .iter()
            .filter(|c| hooks.contains_key(&c.tenant_id))
            .collect();
        watched.sort_by_key(|c| (c.tenant_id, c.entity_id));
        let mut done = Enqueued {
            changes: watched.len(),
            ..Enqueued::default()
        };
        if watched.is_empty() {
            return Ok(done);
        }
        let (ts, es): (Vec<i64>, Vec<i64>) =
            watched.iter().map(|c| (c.tenant_id, c.entity_id)).unzip();
        let mut known: BTreeMap<(i64, i64), (Map<String, Value>, i64)> = BTreeMap::new();
        for row in tx
            .query(
                "SELECT s.tenant_id, s.entity_id, s.hot_attrs, s.lsn FROM webhook_entity_state s \
                 JOIN unnest($1::bigint[], $2::bigint[]) k(t, e) \
                   ON s.tenant_id = k.t AND s.entity_id = k.e \
                 ORDER BY s.tenant_id, s.entity_id FOR UPDATE OF s",
                &[&ts, &es],
            )
            .await?
        {
            let doc: Value = row.get(2);
            let map = match doc {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            known.insert((row.get(0), row.get(1)), (map, row.get(3)));
        }
        let processed_at = Utc::now();
        let (mut d_tenant, mut d_hook, mut d_event, mut d_entity, mut d_body, mut d_lag) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut s_tenant, mut s_entity, mut s_doc, mut s_lsn) = (vec![], vec![], vec![], vec![]);
        for change in watched {
            let before = known.get(&(change.tenant_id, change.entity_id));
            if let Some((_, lsn)) = before
                && change.lsn > 0
                && change.lsn <= *lsn
            {
                continue;
            }
            let lag = (processed_at - change.updated_at).as_seconds_f64().max(0.0);
            for hook in &hooks[&change.tenant_id] {
                let diff = changes_of(before.map(|(m, _)| m), change, hook);
                if diff.is_empty() {
                    continue;
                }
                let id = event_id(&hook.id, change);
                d_body.push(json!({
                    "event_type": "entity.updated",
                    "event_id": id,
                    "webhook_id": hook.id,
                    "tenant_id": change.tenant_id,
                    "entity_id": change.entity_id,
                    "changes": diff,
                    "occurred_at": change.updated_at,
                    "processed_at": processed_at,
                    "lag_seconds": (lag * 1000.0).round() / 1000.0,
                }));
                d_tenant.push(change.tenant_id);
                d_hook.push(hook.id.clone());
                d_event.push(id);
                d_entity.push(change.entity_id);
                d_lag.push(lag);
            }
            s_tenant.push(change.tenant_id);
            s_entity.push(change.entity_id);
            s_doc.push(Value::Object(change.hot_attrs.clone()));
            s_lsn.push(change.lsn);
        }
        if !d_event.is_empty() {
            // unnest keeps the arrays' order, and identity values follow
            // it: deliveries of one entity are numbered as they happened.
            done.deliveries = tx
                .execute(
                    "INSERT INTO webhook_deliveries \
                       (tenant_id, webhook_id, event_id, entity_id, body, lag_seconds) \
                     SELECT t, w, ev, e, b, l \
                     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], \
                                 $5::jsonb[], $6::float8[]) WITH ORDINALITY \
                          AS d(t, w, ev, e, b, l, n) \
                     ORDER BY n \
                     ON CONFLICT (webhook_id, event_id) DO NOTHING",
                    &[&d_tenant, &d_hook, &d_event, &d_entity, &d_body, &d_lag],
                )
                .await?;
        }
        if !s_tenant.is_empty() {
            tx.execute(
                "INSERT INTO webhook_entity_state (tenant_id, entity_id, hot_attrs, lsn) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::jsonb[], $4::bigint[]) \
                 ON CONFLICT (tenant_id, entity_id) DO UPDATE \
                 SET hot_attrs = EXCLUDED.hot_attrs, lsn = EXCLUDED.lsn",
                &[&s_tenant, &s_entity, &s_doc, &s_lsn],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }
}

fn changes_of(
    old: Option<&Map<String, Value>>,
    change: &HotChange,
    hook: &Hook,
) -> Map<String, Value> {
    changes(old, &change.hot_attrs, hook.attributes.as_deref())
}

#[async_trait::async_trait]
impl atlas_warehouse::loader::StateSink for Sink {
    async fn take(&self, batch: &Batch) -> Result<(), String> {
        let done = self
            .enqueue(&HotChange::of(batch))
            .await
            .map_err(|e| e.to_string())?;
        if done.deliveries > 0 {
            tracing::debug!(?done, "webhook deliveries enqueued");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn changes_are_the_attributes_whose_values_differ() {
        let old = map(json!({"temperature": 20.5, "status": "online", "gone": 1}));
        let new = map(json!({"temperature": 21.0, "status": "online", "fresh": true}));
        assert_eq!(
            Value::Object(changes(Some(&old), &new, None)),
            json!({
                "temperature": {"old": 20.5, "new": 21.0},
                "fresh": {"old": null, "new": true},
                "gone": {"old": 1, "new": null},
            })
        );
        let only = vec!["status".to_owned(), "temperature".to_owned()];
        assert_eq!(
            Value::Object(changes(Some(&old), &new, Some(&only))),
            json!({"temperature": {"old": 20.5, "new": 21.0}})
        );
        assert!(changes(Some(&new), &new, None).is_empty());
        // An entity first seen: everything is new.
        assert_eq!(changes(None, &new, None).len(), 3);
    }

    #[test]
    fn event_ids_follow_the_webhook_and_the_change() {
        let c = HotChange {
            tenant_id: 1,
            entity_id: 7,
            hot_attrs: Map::new(),
            updated_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            lsn: 42,
        };
        let same = event_id("wh_a", &c);
        assert_eq!(same, event_id("wh_a", &c.clone()));
        assert_ne!(same, event_id("wh_b", &c));
        assert_ne!(same, event_id("wh_a", &HotChange { lsn: 43, ..c }));
        assert!(same.starts_with("evt_") && same.len() == 36);
    }
}
