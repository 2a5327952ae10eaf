use std::collections::HashMap;
use std::sync::Arc;

use atlas_core::{AttributeName, DataType, RawReading, RejectReason, TenantId, TypedReading};
use atlas_plugins::{Applied, PluginRun, TransformError, Transforms};
use atlas_store::{
    AttributeDef, Catalog, Pool, StoreError, TenantCatalog, Transaction, progress, stage,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::IngestConfig;
use atlas_msk::DeadLetters;

/// What became of a batch: like Timestream's RejectedRecords, one entry per
/// refused reading, by its index in the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
    /// The tenant's transform plugin, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub reason: String,
    /// `"plugin_output"` when `index` counts the readings the tenant's
    /// plugin returned rather than those of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<&'static str>,
}

/// Why nothing of a tenant's batch was staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The tenant does not exist or is inactive.
    UnknownTenant,
    /// Its plugin refused the batch, or failed under the `reject` policy.
    Plugin { run: PluginRun, message: String },
    /// Its active plugin's module is missing, corrupt or no longer loads.
    PluginUnavailable(String),
    /// PostgreSQL refused a value in it (a data exception that parsing did
    /// not foresee); the same batch can never succeed.
    Unstorable(String),
}

impl Refused {
    /// The refusal in words, for an answer, a log line or a dead letter.
    pub fn describe(&self) -> String {
        match self {
            Refused::UnknownTenant => "the tenant does not exist or is inactive".into(),
            Refused::Plugin { run, message } => format!(
                "plugin {} v{} rejected the batch: {message}",
                run.name, run.version
            ),
            Refused::PluginUnavailable(m) => m.clone(),
            Refused::Unstorable(m) => format!("the database cannot store a value: {m}"),
        }
    }
}

/// Atlas could not take (all of) the batch now; retry it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error("dead-letter store: {0}")]
    DeadLetter(#[from] atlas_objects::ObjectError),
    #[error("a record cannot succeed and no dead-letter store is configured to keep it")]
    NoDeadLetterStore,
    /// What was done is committed with the progress of each partition; the
    /// retry of the same batch goes on from there.
    #[error(
        "{deferred} records left for the retry: the plugin budget of {budget:?} per invocation ran out"
    )]
    Deferred {
        deferred: usize,
        budget: std::time::Duration,
    },
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
    transforms: Option<Transforms>,
    dead_letters: Option<DeadLetters>,
}

impl IngestService {
    /// `pool` must act as the application role: staging takes its tenant
    /// from the transaction and Row-Level Security guards the catalog.
    pub fn new(pool: Pool, config: IngestConfig) -> Self {
        let catalog = Catalog::new(pool.clone(), config.catalog_ttl);
        Self {
            pool,
            catalog,
            config,
            transforms: None,
            dead_letters: None,
        }
    }

    /// Where MSK records that can never succeed are kept. Without it, such
    /// a record fails the invocation rather than vanish.
    pub fn with_dead_letters(mut self, letters: DeadLetters) -> Self {
        self.dead_letters = Some(letters);
        self
    }

    pub fn dead_letters(&self) -> Option<&DeadLetters> {
        self.dead_letters.as_ref()
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs each tenant's active plugin on its batches before typing them.
    pub fn with_transforms(mut self, transforms: Transforms) -> Self {
        self.transforms = Some(transforms);
        self
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Transforms, types and stages several tenants' batches in one
    /// transaction: they commit together or not at all. A refused batch
    /// stages nothing and does not hold up the others.
    pub async fn ingest(
        &self,
        batches: Vec<TenantBatch>,
    ) -> Result<Vec<Result<Outcome, Refused>>, IngestError> {
        let now = Utc::now();
        let mut plans = Vec::with_capacity(batches.len());
        for batch in batches {
            plans.push(self.plan(batch, now).await?);
        }
        Ok(self.commit(plans, None).await?)
    }

    /// Stages planned batches in one transaction, with `progress` if given.
    /// When PostgreSQL refuses a value (a data exception), each batch is
    /// tried in a transaction of its own, so that only the batch holding
    /// it is refused, as `Refused::Unstorable`; `progress` then commits on
    /// its own after them. Any other failure stages nothing.
    pub async fn commit(
        &self,
        mut plans: Vec<Result<Plan, Refused>>,
        progress: Option<&Progress>,
    ) -> Result<Vec<Result<Outcome, Refused>>, StoreError> {
        let has_work = plans
            .iter()
            .flatten()
            .any(|p| !p.pending.is_empty() || !p.typed.is_empty());
        if !has_work && progress.is_none() {
            return Ok(plans.into_iter().map(|p| p.map(Plan::outcome)).collect());
        }
        let mut all: Vec<&mut Plan> = plans.iter_mut().flatten().collect();
        match self.stage_plans(&mut all, progress).await {
            Ok(()) => {}
            Err(e) if e.is_data_exception() => {
                tracing::warn!(error = %e.db_message(), "a value was refused; staging batch by batch");
                for slot in plans.iter_mut() {
                    let Ok(plan) = slot else { continue };
                    match self.stage_plans(&mut [plan], None).await {
                        Ok(()) => {}
                        Err(e) if e.is_data_exception() => {
                            *slot = Err(Refused::Unstorable(e.db_message()))
                        }
                        Err(e) => return Err(e),
                    }
                }
                if let Some(progress) = progress {
                    self.stage_plans(&mut [], Some(progress)).await?;
                }
            }
            Err(e) => return Err(e),
        }
        Ok(plans.into_iter().map(|p| p.map(Plan::outcome)).collect())
    }

    async fn stage_plans(
        &self,
        plans: &mut [&mut Plan],
        progress: Option<&Progress>,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut registered = false;
        for plan in plans.iter_mut() {
            registered |= plan.register_pending(&tx).await?;
        }
        let groups: Vec<(TenantId, &[TypedReading])> = plans
            .iter()
            .map(|p| (p.tenant, p.typed.as_slice()))
            .collect();
        stage(&tx, &groups).await?;
        if let Some(p) = progress {
            progress::save(&*tx, &p.reset, &p.marks).await?;
        }
        tx.commit().await?;
        if registered {
            for plan in plans.iter() {
                self.catalog.invalidate(plan.tenant);
            }
        }
        Ok(())
    }

    /// Runs the tenant's plugin, then checks everything that needs no
    /// write: envelope, window, catalog lookup and value type. Unknown
    /// attributes of a tenant that allows auto-registration are left
    /// pending for the transaction.
    pub async fn plan(
        &self,
        batch: TenantBatch,
        now: DateTime<Utc>,
    ) -> Result<Result<Plan, Refused>, IngestError> {
        let Some(catalog) = self.catalog.get(batch.tenant).await? else {
            return Ok(Err(Refused::UnknownTenant));
        };
        let mut plan = Plan {
            tenant: batch.tenant,
            catalog,
            typed: Vec::new(),
            pending: Vec::new(),
            rejected: Vec::new(),
            plugin: None,
        };
        let mut indices = Vec::with_capacity(batch.readings.len());
        let mut readings = Vec::with_capacity(batch.readings.len());
        for (index, r) in batch.readings.into_iter().enumerate() {
            match r {
                Ok(raw) => {
                    indices.push(index);
                    readings.push(raw);
                }
                Err(m) => plan.reject(index, None, RejectReason::Malformed(m)),
            }
        }
        let mut of = None;
        if let Some(transforms) = &self.transforms
            && !readings.is_empty()
        {
            let applied = match transforms
                .apply(batch.tenant, &readings, self.config.max_readings)
                .await
            {
                Ok(applied) => applied,
                Err(e) if e.is_tenants_own() => {
                    tracing::error!(tenant = %batch.tenant, error = %e, "the tenant's plugin cannot run");
                    return Ok(Err(Refused::PluginUnavailable(format!(
                        "the tenant's active plugin cannot run: {e}; activate another version or delete the plugin"
                    ))));
                }
                Err(e) => return Err(e.into()),
            };
            match applied {
                None => {}
                Some(Applied::Transformed { run, readings: out }) => {
                    plan.plugin = Some(run);
                    indices = (0..out.len()).collect();
                    readings = out;
                    of = Some("plugin_output");
                }
                Some(Applied::PassedThrough { run }) => plan.plugin = Some(run),
                Some(Applied::Rejected { run, message }) => {
                    return Ok(Err(Refused::Plugin { run, message }));
                }
            }
        }

        let window = &self.config.window;
        let parsed: Vec<_> = readings
            .into_iter()
            .map(|raw| {
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
        if unknown(&plan.catalog) {
            match self.catalog.reload_for_unknown(batch.tenant).await? {
                Some(fresh) => plan.catalog = fresh,
                None => return Ok(Err(Refused::UnknownTenant)),
            }
        }

        for (index, p) in indices.into_iter().zip(parsed) {
            match p {
                Err(reason) => plan.reject(index, of, reason),
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
                                Err(reason) => plan.reject(index, of, reason),
                            }
                        }
                        None if plan.catalog.auto_register => plan.pending.push(Pending {
                            index,
                            of,
                            entity,
                            etype,
                            attr,
                            ts,
                            value,
                        }),
                        None => {
                            plan.reject(index, of, RejectReason::UnknownAttribute(attr.to_string()))
                        }
                    }
                }
            }
        }
        Ok(Ok(plan))
    }
}

struct Pending {
    index: usize,
    of: Option<&'static str>,
    entity: atlas_core::EntityId,
    etype: Option<atlas_core::EntityType>,
    attr: AttributeName,
    ts: DateTime<Utc>,
    value: serde_json::Value,
}

/// The MSK partitions whose stored marks are forgotten (`reset`) and, for
/// those a batch leaves unfinished, where the retry picks up (`marks`);
/// committed with the staged readings.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub reset: Vec<progress::Partition>,
    pub marks: Vec<(progress::Partition, progress::Mark)>,
}

/// A tenant's batch, transformed and typed, ready to commit.
pub struct Plan {
    tenant: TenantId,
    catalog: Arc<TenantCatalog>,
    typed: Vec<TypedReading>,
    pending: Vec<Pending>,
    rejected: Vec<Rejection>,
    plugin: Option<PluginRun>,
}

impl Plan {
    fn reject(&mut self, index: usize, of: Option<&'static str>, reason: RejectReason) {
        self.rejected.push(Rejection {
            index,
            reason: reason.to_string(),
            of,
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
                            p.of,
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
                Err(reason) => self.reject(p.index, p.of, reason),
            }
        }
        Ok(!defs.is_empty())
    }

    fn outcome(mut self) -> Outcome {
        self.rejected.sort_by_key(|r| (r.of.is_some(), r.index));
        Outcome {
            accepted: self.typed.len(),
            rejected: self.rejected,
            plugin: self.plugin,
        }
    }
}
