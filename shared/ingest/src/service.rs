use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use atlas_core::{AttributeName, DataType, RawReading, RejectReason, TenantId, TypedReading};
use atlas_store::{AttributeDef, Catalog, Pool, StoreError, TenantCatalog, Transaction, stage};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::IngestConfig;

/// What became of a batch: like Timestream's RejectedRecords, one entry per
/// refused reading, by its index in the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub reason: String,
}

/// One tenant's readings, as parsed from a request or an MSK record.
pub struct TenantBatch {
    pub tenant: TenantId,
    pub readings: Vec<Result<RawReading, String>>,
    /// The time a reading without `ts` gets: the receive time for HTTP, the
    /// record's own timestamp for MSK, which a redelivery repeats exactly.
    pub default_ts: DateTime<Utc>,
}

pub struct IngestService {
    pool: Pool,
    catalog: Catalog,
    config: IngestConfig,
}

/// How often a stream of unknown attribute names may reload a catalog.
const UNKNOWN_RELOAD_EVERY: Duration = Duration::from_secs(1);

impl IngestService {
    /// `pool` must act as the application role: staging takes its tenant
    /// from the transaction and Row-Level Security guards the catalog.
    pub fn new(pool: Pool, config: IngestConfig) -> Self {
        let catalog = Catalog::new(pool.clone(), config.catalog_ttl);
        Self {
            pool,
            catalog,
            config,
        }
    }

    /// `DATABASE_URL` (acting as `atlas_app`) plus `IngestConfig::from_env`.
    pub fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let pool = atlas_store::DbConfig::from_env(atlas_store::DbRole::App)?.pool()?;
        Ok(Self::new(pool, IngestConfig::from_env()?))
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Types and stages several tenants' batches in one transaction: they
    /// commit together or not at all. `None` marks a batch whose tenant does
    /// not exist or is inactive; nothing of it is staged.
    pub async fn ingest(
        &self,
        batches: Vec<TenantBatch>,
    ) -> Result<Vec<Option<Outcome>>, StoreError> {
        let now = Utc::now();
        let mut plans = Vec::with_capacity(batches.len());
        for batch in batches {
            plans.push(self.plan(batch, now).await?);
        }
        if plans
            .iter()
            .flatten()
            .all(|p| p.pending.is_empty() && p.typed.is_empty())
        {
            return Ok(plans.into_iter().map(|p| p.map(Plan::outcome)).collect());
        }

        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut registered = false;
        for plan in plans.iter_mut().flatten() {
            registered |= plan.register_pending(&tx).await?;
        }
        let groups: Vec<(TenantId, &[TypedReading])> = plans
            .iter()
            .flatten()
            .map(|p| (p.tenant, p.typed.as_slice()))
            .collect();
        stage(&tx, &groups).await?;
        tx.commit().await?;
        if registered {
            for plan in plans.iter().flatten() {
                self.catalog.invalidate(plan.tenant);
            }
        }
        Ok(plans.into_iter().map(|p| p.map(Plan::outcome)).collect())
    }

    /// Checks everything that needs no write: envelope, window, catalog
    /// lookup and value type. Unknown attributes of a tenant that allows
    /// auto-registration are left pending for the transaction.
    async fn plan(
        &self,
        batch: TenantBatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Plan>, StoreError> {
        let Some(mut catalog) = self.catalog.get(batch.tenant).await? else {
            return Ok(None);
        };
        let window = &self.config.window;
        let parsed: Vec<_> = batch
            .readings
            .into_iter()
            .map(|r| {
                let raw = r.map_err(RejectReason::Malformed)?;
                let (entity, etype, attr, ts) =
                    raw.parse_envelope(batch.default_ts, now, window)?;
                Ok((entity, etype, attr, ts, raw.value))
            })
            .collect();
        let unknown = |c: &TenantCatalog| {
            parsed
                .iter()
                .flatten()
                .any(|(_, _, a, _, _)| !c.attributes.contains_key(a.as_str()))
        };
        if unknown(&catalog) {
            match self
                .catalog
                .reload_if_older(batch.tenant, UNKNOWN_RELOAD_EVERY)
                .await?
            {
                Some(fresh) => catalog = fresh,
                None => return Ok(None),
            }
        }

        let mut plan = Plan {
            tenant: batch.tenant,
            catalog,
            typed: Vec::new(),
            pending: Vec::new(),
            rejected: Vec::new(),
        };
        for (index, p) in parsed.into_iter().enumerate() {
            match p {
                Err(reason) => plan.reject(index, reason),
                Ok((entity, etype, attr, ts, value)) => {
                    match plan.catalog.attributes.get(attr.as_str()) {
                        Some(def) => {
                            match TypedReading::new(
                                entity,
                                etype,
                                def.id,
                                &attr,
                                def.data_type,
                                &value,
                                ts,
                            ) {
                                Ok(t) => plan.typed.push(t),
                                Err(reason) => plan.reject(index, reason),
                            }
                        }
                        None if plan.catalog.auto_register => plan.pending.push(Pending {
                            index,
                            entity,
                            etype,
                            attr,
                            ts,
                            value,
                        }),
                        None => {
                            plan.reject(index, RejectReason::UnknownAttribute(attr.to_string()))
                        }
                    }
                }
            }
        }
        Ok(Some(plan))
    }
}

struct Pending {
    index: usize,
    entity: atlas_core::EntityId,
    etype: Option<atlas_core::EntityType>,
    attr: AttributeName,
    ts: DateTime<Utc>,
    value: serde_json::Value,
}

struct Plan {
    tenant: TenantId,
    catalog: Arc<TenantCatalog>,
    typed: Vec<TypedReading>,
    pending: Vec<Pending>,
    rejected: Vec<Rejection>,
}

impl Plan {
    fn reject(&mut self, index: usize, reason: RejectReason) {
        self.rejected.push(Rejection {
            index,
            reason: reason.to_string(),
        });
    }

    /// Registers each new attribute once, typed by its first value, then
    /// types the pending readings against it. Returns whether anything was
    /// registered.
    async fn register_pending(&mut self, tx: &Transaction<'_>) -> Result<bool, StoreError> {
        let mut defs: HashMap<String, AttributeDef> = HashMap::new();
        for p in std::mem::take(&mut self.pending) {
            let def = match defs.get(p.attr.as_str()) {
                Some(d) => *d,
                None => {
                    let Some(data_type) = DataType::infer(&p.value) else {
                        self.reject(
                            p.index,
                            RejectReason::Other(format!(
                                "cannot auto-register attribute {:?} from value {}: use a number, bool or string",
                                p.attr.as_str(),
                                p.value
                            )),
                        );
                        continue;
                    };
                    let d = TenantCatalog::register(tx, self.tenant, &p.attr, data_type).await?;
                    defs.insert(p.attr.to_string(), d);
                    d
                }
            };
            match TypedReading::new(
                p.entity,
                p.etype,
                def.id,
                &p.attr,
                def.data_type,
                &p.value,
                p.ts,
            ) {
                Ok(t) => self.typed.push(t),
                Err(reason) => self.reject(p.index, reason),
            }
        }
        Ok(!defs.is_empty())
    }

    fn outcome(mut self) -> Outcome {
        self.rejected.sort_by_key(|r| r.index);
        Outcome {
            accepted: self.typed.len(),
            rejected: self.rejected,
        }
    }
}
