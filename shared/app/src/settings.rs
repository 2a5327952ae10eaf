//! Every `ATLAS_*` setting (and `DATABASE_URL`), read and checked here and
//! nowhere else. The capability crates take plain config structs; only this
//! module knows where their values come from. Each variable is read once,
//! so settings two parts share (the accept window, the catalog TTL) cannot
//! drift apart.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use atlas_cache::CacheConfig;
use atlas_cloud::credentials::Credentials;
use atlas_core::AcceptWindow;
use atlas_ingest::IngestConfig;
use atlas_objects::Location;
use atlas_query::QueryConfig;
use atlas_query::routing::RoutingConfig;
use atlas_query::search::CursorKey;
use atlas_store::flush::FlushConfig;
use atlas_store::heartbeat::HeartbeatConfig;
use atlas_store::{DbConfig, DbRole};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required")]
    Missing { name: &'static str },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Every function's settings. A part a function does not use may be unset
/// (`None`); the function's root in `startup` says what it requires.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Set by Lambda (`AWS_LAMBDA_FUNCTION_NAME`): secrets a fleet must
    /// share are then required instead of made up per process.
    pub in_lambda: bool,
    /// `DATABASE_URL` with `ATLAS_DB_POOL_SIZE`, `ATLAS_DB_CA_BUNDLE` and
    /// the credentials (`ATLAS_DB_SECRET_ID` or `ATLAS_DB_IAM_AUTH`).
    pub database: DbSettings,
    /// `ATLAS_REPLICA_URLS`: comma separated, the primary's other settings.
    pub replica_urls: Vec<String>,
    /// `ATLAS_RDS_PRIMARY_ID`: the primary's RDS instance identifier; its
    /// read replicas, as RDS lists them, replace `ATLAS_REPLICA_URLS`.
    pub rds_primary_id: Option<String>,
    /// `ATLAS_OBJECT_STORE`: `s3://bucket[/prefix]` or a directory.
    pub objects: Option<Location>,
    /// `ATLAS_REDIS_URL` (none: no cache), `ATLAS_CACHE_TTL_SECS`,
    /// `ATLAS_REDIS_TIMEOUT_MS`, `ATLAS_CACHE_NAMESPACE`.
    pub cache: Option<CacheConfig>,
    pub ingest: IngestConfig,
    pub query: QueryConfig,
    pub flush: FlushConfig,
    pub heartbeat: HeartbeatConfig,
    /// How the heartbeat function's sender delivers webhooks.
    pub webhooks: atlas_webhooks::DeliveryConfig,
    pub lag_checker: atlas_freshness::CheckerConfig,
    /// `ATLAS_WAREHOUSE_URL`: a PostgreSQL URL (the local warehouse) or
    /// `redshift://<workgroup-or-cluster>/<database>`.
    pub warehouse: Option<atlas_warehouse::Target>,
    /// `ATLAS_WAREHOUSE_COPY_ROLE`: the IAM role Redshift assumes to COPY
    /// the loader's stage files from the object store; Redshift loads only.
    pub warehouse_copy_role: Option<String>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From any source of variables; an empty value counts as unset.
    pub fn from_vars(source: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Vars(source);
        let in_lambda = env.text("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let window = env.window()?;
        let catalog_ttl = env.millis("ATLAS_CATALOG_TTL_MS", Duration::from_secs(5))?;
        let webhooks = env.webhooks()?;
        Ok(Self {
            in_lambda,
            database: env.database()?,
            replica_urls: env
                .text("ATLAS_REPLICA_URLS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
            rds_primary_id: env.text("ATLAS_RDS_PRIMARY_ID"),
            objects: match env.text("ATLAS_OBJECT_STORE") {
                Some(raw) => Some(parse_with("ATLAS_OBJECT_STORE", raw, str::parse)?),
                None => None,
            },
            cache: env.cache()?,
            ingest: env.ingest(window, catalog_ttl)?,
            query: env.query(catalog_ttl, in_lambda, webhooks.policy)?,
            flush: env.flush(window)?,
            heartbeat: env.heartbeat()?,
            webhooks,
            lag_checker: env.lag_checker()?,
            warehouse: match env.text("ATLAS_WAREHOUSE_URL") {
                Some(raw) => Some(parse_with("ATLAS_WAREHOUSE_URL", raw, str::parse)?),
                None => None,
            },
            warehouse_copy_role: match env.text("ATLAS_WAREHOUSE_COPY_ROLE") {
                Some(raw) => Some(parse_with("ATLAS_WAREHOUSE_COPY_ROLE", raw, role_arn)?),
                None => None,
            },
        })
    }

    /// The database as `role`; `DATABASE_URL` is required.
    pub fn database(&self, role: DbRole) -> Result<DbConfig, ConfigError> {
        let url = self.database.url.as_deref().ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
        })?;
        Ok(self.database_at(url, role))
    }

    /// The database at `url` (a command-line flag's, say), with the
    /// environment's pool size, CA bundle and credentials.
    pub fn database_at(&self, url: &str, role: DbRole) -> DbConfig {
        let d = &self.database;
        DbConfig {
            url: url.to_owned(),
            role,
            credentials: d.credentials.clone(),
            max_connections: d.pool_size,
            ca_bundle: d.ca_bundle.clone(),
            generic_plans: false,
        }
    }

    /// Where plugin modules and dead letters are kept; required.
    pub fn objects(&self) -> Result<&Location, ConfigError> {
        self.objects.as_ref().ok_or(ConfigError::Missing {
            name: "ATLAS_OBJECT_STORE",
        })
    }

    /// Where the CDC-batch loader writes and analytics reads; required.
    pub fn warehouse(&self) -> Result<&atlas_warehouse::Target, ConfigError> {
        self.warehouse.as_ref().ok_or(ConfigError::Missing {
            name: "ATLAS_WAREHOUSE_URL",
        })
    }

    /// What ingest accepts; the flusher makes partitions for the same.
    pub fn window(&self) -> AcceptWindow {
        self.ingest.window
    }
}

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: Option<String>,
    pub pool_size: usize,
    /// Extra CA certificates (PEM), e.g. Amazon RDS's bundle.
    pub ca_bundle: Option<PathBuf>,
    pub credentials: Arc<Credentials>,
}

/// `raw` parsed, or an error naming the variable.
fn parse_with<T>(
    name: &'static str,
    raw: String,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    parse(&raw).map_err(|reason| ConfigError::Invalid {
        name,
        value: raw,
        reason,
    })
}

/// COPY names its role by ARN; a bare name fails only inside Redshift,
/// long after start.
fn role_arn(raw: &str) -> Result<String, String> {
    let ok = raw.starts_with("arn:")
        && raw.contains(":iam::")
        && raw
            .split_once(":role/")
            .is_some_and(|(_, name)| !name.is_empty());
    if ok && !raw.contains(['\'', ' ']) {
        Ok(raw.to_owned())
    } else {
        Err("an IAM role ARN, arn:aws:iam::<account>:role/<name>".into())
    }
}

struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    fn parsed<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.text(name) {
            Some(raw) => parse_with(name, raw, |v| v.parse().map_err(|e: T::Err| e.to_string())),
            None => Ok(default),
        }
    }

    fn millis(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.parsed(name, default.as_millis() as u64)
            .map(Duration::from_millis)
    }

    fn seconds(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.parsed(name, default.as_secs())
            .map(Duration::from_secs)
    }

    /// A value in `range`, named in the error when outside it.
    fn within<T>(
        &self,
        name: &'static str,
        value: T,
        range: std::ops::RangeInclusive<T>,
        shown: impl Fn(&T) -> String,
    ) -> Result<T, ConfigError>
    where
        T: PartialOrd,
    {
        if range.contains(&value) {
            return Ok(value);
        }
        Err(ConfigError::Invalid {
            name,
            value: shown(&value),
            reason: format!(
                "must be between {} and {}",
                shown(range.start()),
                shown(range.end())
            ),
        })
    }

    /// `ATLAS_ACCEPT_PAST_SECS` (default 30 days) and
    /// `ATLAS_ACCEPT_FUTURE_SECS` (default 1 hour).
    fn window(&self) -> Result<AcceptWindow, ConfigError> {
        let d = AcceptWindow::default();
        let past = self.seconds(
            "ATLAS_ACCEPT_PAST_SECS",
            d.past.to_std().unwrap_or_default(),
        )?;
        let future = self.seconds(
            "ATLAS_ACCEPT_FUTURE_SECS",
            d.future.to_std().unwrap_or_default(),
        )?;
        let chrono = |name, v: Duration| {
            chrono::Duration::from_std(v).map_err(|e| ConfigError::Invalid {
                name,
                value: v.as_secs().to_string(),
                reason: e.to_string(),
            })
        };
        Ok(AcceptWindow {
            past: chrono("ATLAS_ACCEPT_PAST_SECS", past)?,
            future: chrono("ATLAS_ACCEPT_FUTURE_SECS", future)?,
        })
    }

    fn database(&self) -> Result<DbSettings, ConfigError> {
        Ok(DbSettings {
            url: self.text("DATABASE_URL"),
            pool_size: self.parsed("ATLAS_DB_POOL_SIZE", DbConfig::DEFAULT_MAX_CONNECTIONS)?,
            ca_bundle: self.text("ATLAS_DB_CA_BUNDLE").map(PathBuf::from),
            credentials: Arc::new(self.credentials()?),
        })
    }

    /// The AWS clients behind the credentials follow the usual AWS
    /// settings (`AWS_REGION`, `AWS_ENDPOINT_URL*`), read by the SDK.
    fn credentials(&self) -> Result<Credentials, ConfigError> {
        let iam = match self.text("ATLAS_DB_IAM_AUTH").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "ATLAS_DB_IAM_AUTH",
                    value: other.into(),
                    reason: "use 1 (on) or 0 (off)".into(),
                });
            }
        };
        match (self.text("ATLAS_DB_SECRET_ID"), iam) {
            (Some(_), true) => Err(ConfigError::Invalid {
                name: "ATLAS_DB_IAM_AUTH",
                value: "1".into(),
                reason: "choose ATLAS_DB_SECRET_ID or IAM authentication, not both".into(),
            }),
            (Some(id), false) => Ok(Credentials::secret_id(id)),
            (None, true) => Ok(Credentials::iam_auth()),
            (None, false) => Ok(Credentials::Url),
        }
    }

    fn cache(&self) -> Result<Option<CacheConfig>, ConfigError> {
        let Some(url) = self.text("ATLAS_REDIS_URL") else {
            return Ok(None);
        };
        let d = CacheConfig::new(url);
        Ok(Some(CacheConfig {
            ttl: self.seconds("ATLAS_CACHE_TTL_SECS", d.ttl)?,
            timeout: self.millis("ATLAS_REDIS_TIMEOUT_MS", d.timeout)?,
            namespace: self
                .text("ATLAS_CACHE_NAMESPACE")
                .unwrap_or(d.namespace.clone()),
            ..d
        }))
    }

    fn ingest(
        &self,
        window: AcceptWindow,
        catalog_ttl: Duration,
    ) -> Result<IngestConfig, ConfigError> {
        let d = IngestConfig::default();
        Ok(IngestConfig {
            max_body_bytes: self.parsed("ATLAS_MAX_BODY_BYTES", d.max_body_bytes)?,
            max_readings: self.parsed("ATLAS_MAX_READINGS", d.max_readings)?,
            catalog_ttl,
            window,
            msk_plugin_budget: self.millis("ATLAS_MSK_PLUGIN_BUDGET_MS", d.msk_plugin_budget)?,
        })
    }

    fn query(
        &self,
        catalog_ttl: Duration,
        in_lambda: bool,
        webhooks: atlas_webhooks::AddressPolicy,
    ) -> Result<QueryConfig, ConfigError> {
        const CURSOR_KEY: &str = "ATLAS_CURSOR_KEY";
        let d = RoutingConfig::default();
        let routing = RoutingConfig {
            max_lag: self.seconds("ATLAS_REPLICA_MAX_LAG_SECS", d.max_lag)?,
            lag_check: self.millis("ATLAS_REPLICA_LAG_CHECK_MS", d.lag_check)?,
            retry_after: self.seconds("ATLAS_REPLICA_RETRY_SECS", d.retry_after)?,
            fallback_max: self.parsed("ATLAS_PRIMARY_FALLBACK_MAX", d.fallback_max)?,
            status_max_age: Some(self.millis(
                "ATLAS_FRESHNESS_MAX_AGE_MS",
                d.status_max_age.unwrap_or_default(),
            )?)
            .filter(|age| !age.is_zero()),
        };
        // A page's next request may reach another container, so in Lambda
        // the key must be the fleet's; elsewhere one of the process will do.
        let cursor_key = match self.text(CURSOR_KEY) {
            Some(secret) => {
                CursorKey::new(secret.as_bytes()).map_err(|reason| ConfigError::Invalid {
                    name: CURSOR_KEY,
                    value: "(a secret, not shown)".into(),
                    reason,
                })?
            }
            None if in_lambda => return Err(ConfigError::Missing { name: CURSOR_KEY }),
            None => CursorKey::random(),
        };
        let d = QueryConfig::with_key(cursor_key);
        Ok(QueryConfig {
            history_max_range: self.seconds("ATLAS_HISTORY_MAX_RANGE_SECS", d.history_max_range)?,
            analytics_max_range: self
                .seconds("ATLAS_ANALYTICS_MAX_RANGE_SECS", d.analytics_max_range)?,
            warehouse_max_range: self
                .seconds("ATLAS_WAREHOUSE_MAX_RANGE_SECS", d.warehouse_max_range)?,
            catalog_ttl,
            routing,
            webhooks,
            ..d
        })
    }

    fn flush(&self, window: AcceptWindow) -> Result<FlushConfig, ConfigError> {
        let d = FlushConfig::default();
        let ms = |d: &Duration| d.as_millis().to_string();
        let idle = self.millis("ATLAS_FLUSH_INTERVAL_MS", d.idle_interval)?;
        let idle = self.within(
            "ATLAS_FLUSH_INTERVAL_MS",
            idle,
            Duration::from_millis(100)..=Duration::from_millis(1000),
            ms,
        )?;
        let batch = self.parsed("ATLAS_FLUSH_BATCH", d.batch_size)?;
        let batch = self.within("ATLAS_FLUSH_BATCH", batch, 1..=1_000_000, i64::to_string)?;
        let drain_mb = self.parsed("ATLAS_FLUSH_DRAIN_MB", d.drain_max_bytes >> 20)?;
        let drain_mb = self.within("ATLAS_FLUSH_DRAIN_MB", drain_mb, 1..=1024, i64::to_string)?;
        Ok(FlushConfig {
            batch_size: batch,
            drain_max_bytes: drain_mb << 20,
            idle_interval: idle,
            stop_margin: self.millis("ATLAS_FLUSH_STOP_MARGIN_MS", d.stop_margin)?,
            max_run: match self.parsed("ATLAS_FLUSH_MAX_RUN_MS", 0u64)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            recluster_headroom: d.recluster_headroom,
            window,
        })
    }

    fn lag_checker(&self) -> Result<atlas_freshness::CheckerConfig, ConfigError> {
        let d = atlas_freshness::CheckerConfig::default();
        let interval = self.millis("ATLAS_LAG_CHECK_INTERVAL_MS", d.interval)?;
        Ok(atlas_freshness::CheckerConfig {
            interval: self.within(
                "ATLAS_LAG_CHECK_INTERVAL_MS",
                interval,
                Duration::from_secs(1)..=Duration::from_secs(60),
                |d| d.as_millis().to_string(),
            )?,
            stop_margin: self.millis("ATLAS_LAG_CHECK_STOP_MARGIN_MS", d.stop_margin)?,
            cdc_slot: self.text("ATLAS_CDC_SLOT"),
            heartbeat_stale: self.seconds("ATLAS_HEARTBEAT_STALE_SECS", d.heartbeat_stale)?,
            divergence_sample: {
                let n = self.parsed("ATLAS_DIVERGENCE_SAMPLE", d.divergence_sample)?;
                self.within("ATLAS_DIVERGENCE_SAMPLE", n, 0..=10_000, |n| n.to_string())?
            },
        })
    }

    fn heartbeat(&self) -> Result<HeartbeatConfig, ConfigError> {
        let d = HeartbeatConfig::default();
        let interval = self.millis("ATLAS_HEARTBEAT_INTERVAL_MS", d.interval)?;
        let interval = self.within(
            "ATLAS_HEARTBEAT_INTERVAL_MS",
            interval,
            Duration::from_millis(100)..=Duration::from_millis(60_000),
            |d| d.as_millis().to_string(),
        )?;
        let source = self
            .text("ATLAS_HEARTBEAT_SOURCE")
            .unwrap_or(d.source.clone());
        if source.len() > 50 {
            return Err(ConfigError::Invalid {
                name: "ATLAS_HEARTBEAT_SOURCE",
                value: source,
                reason: "must be 1 to 50 characters".into(),
            });
        }
        Ok(HeartbeatConfig {
            interval,
            retention: self.seconds("ATLAS_HEARTBEAT_RETENTION_SECS", d.retention)?,
            stop_margin: self.millis("ATLAS_HEARTBEAT_STOP_MARGIN_MS", d.stop_margin)?,
            source,
        })
    }

    fn webhooks(&self) -> Result<atlas_webhooks::DeliveryConfig, ConfigError> {
        let d = atlas_webhooks::DeliveryConfig::default();
        let secs = |d: &Duration| d.as_secs().to_string();
        let timeout = self.seconds("ATLAS_WEBHOOK_TIMEOUT_SECS", d.timeout)?;
        let timeout = self.within(
            "ATLAS_WEBHOOK_TIMEOUT_SECS",
            timeout,
            Duration::from_secs(1)..=Duration::from_secs(30),
            secs,
        )?;
        let attempts = self.parsed("ATLAS_WEBHOOK_MAX_ATTEMPTS", d.max_attempts)?;
        let attempts = self.within(
            "ATLAS_WEBHOOK_MAX_ATTEMPTS",
            attempts,
            1..=30,
            i32::to_string,
        )?;
        let base = self.seconds("ATLAS_WEBHOOK_RETRY_BASE_SECS", d.retry_base)?;
        let base = self.within(
            "ATLAS_WEBHOOK_RETRY_BASE_SECS",
            base,
            Duration::from_secs(1)..=Duration::from_secs(3600),
            secs,
        )?;
        Ok(atlas_webhooks::DeliveryConfig {
            policy: atlas_webhooks::AddressPolicy {
                allow_loopback: self.parsed("ATLAS_WEBHOOK_ALLOW_LOOPBACK", false)?,
            },
            timeout,
            max_attempts: attempts,
            retry_base: base,
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(|name| vars.get(name).cloned())
    }

    fn invalid_name(e: ConfigError) -> &'static str {
        match e {
            ConfigError::Invalid { name, .. } => name,
            other => panic!("expected an invalid setting, got {other}"),
        }
    }

    #[test]
    fn an_empty_environment_gives_the_documented_defaults() {
        let s = settings(&[]).unwrap();
        assert!(!s.in_lambda);
        assert!(s.database.url.is_none() && s.objects.is_none() && s.cache.is_none());
        assert!(s.replica_urls.is_empty());
        assert_eq!(
            s.ingest.max_body_bytes,
            IngestConfig::default().max_body_bytes
        );
        assert_eq!(s.flush.batch_size, FlushConfig::default().batch_size);
        assert_eq!(s.heartbeat, HeartbeatConfig::default());
        assert!(matches!(
            s.database(DbRole::App),
            Err(ConfigError::Missing {
                name: "DATABASE_URL"
            })
        ));
        assert!(matches!(
            s.objects(),
            Err(ConfigError::Missing {
                name: "ATLAS_OBJECT_STORE"
            })
        ));
    }

    #[test]
    fn settings_two_parts_share_are_read_once_for_both() {
        let s = settings(&[
            ("ATLAS_CATALOG_TTL_MS", "1234"),
            ("ATLAS_ACCEPT_PAST_SECS", "3600"),
            ("ATLAS_ACCEPT_FUTURE_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(s.ingest.catalog_ttl, Duration::from_millis(1234));
        assert_eq!(s.query.catalog_ttl, s.ingest.catalog_ttl);
        assert_eq!(s.window().past, chrono::Duration::hours(1));
        assert_eq!(s.flush.window, s.window());
    }

    #[test]
    fn the_database_takes_its_role_from_the_root_and_the_rest_from_the_environment() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://u@db.example/atlas"),
            ("ATLAS_DB_POOL_SIZE", "3"),
            ("ATLAS_DB_CA_BUNDLE", "/etc/rds.pem"),
            ("ATLAS_DB_SECRET_ID", "atlas/ingest"),
            (
                "ATLAS_REPLICA_URLS",
                " postgres://r1/atlas, ,postgres://r2/atlas",
            ),
        ])
        .unwrap();
        let db = s.database(DbRole::Worker).unwrap();
        assert_eq!(db.url, "postgres://u@db.example/atlas");
        assert_eq!(db.role, DbRole::Worker);
        assert_eq!(db.max_connections, 3);
        assert!(matches!(*db.credentials, Credentials::Secret { .. }));
        assert_eq!(
            db.ca_bundle.as_deref(),
            Some(std::path::Path::new("/etc/rds.pem"))
        );
        let flagged = s.database_at("postgres://other/atlas", DbRole::AsLogin);
        assert_eq!(flagged.ca_bundle, db.ca_bundle);
        assert_eq!(
            s.replica_urls,
            ["postgres://r1/atlas", "postgres://r2/atlas"]
        );
    }

    #[test]
    fn a_bad_value_is_refused_with_its_name() {
        for (name, value) in [
            ("ATLAS_FLUSH_INTERVAL_MS", "50"),
            ("ATLAS_FLUSH_BATCH", "0"),
            ("ATLAS_FLUSH_DRAIN_MB", "2048"),
            ("ATLAS_HEARTBEAT_INTERVAL_MS", "99999"),
            ("ATLAS_MAX_READINGS", "many"),
            ("ATLAS_DB_IAM_AUTH", "yes"),
            ("ATLAS_OBJECT_STORE", "ftp://bucket"),
            ("ATLAS_HEARTBEAT_SOURCE", &"x".repeat(51)),
            ("ATLAS_WAREHOUSE_COPY_ROLE", "atlas-copy"),
            ("ATLAS_WAREHOUSE_COPY_ROLE", "arn:aws:iam::1:role/x' --"),
            ("ATLAS_WAREHOUSE_URL", "redshift://analytics"),
            ("ATLAS_LAG_CHECK_INTERVAL_MS", "500"),
        ] {
            let e = settings(&[(name, value)]).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
            assert_eq!(invalid_name(e), name);
        }
    }

    #[test]
    fn a_secret_and_iam_authentication_together_are_refused() {
        let e = settings(&[
            ("DATABASE_URL", "postgres://u@db/atlas"),
            ("ATLAS_DB_SECRET_ID", "atlas/ingest"),
            ("ATLAS_DB_IAM_AUTH", "1"),
        ])
        .unwrap_err();
        assert_eq!(invalid_name(e), "ATLAS_DB_IAM_AUTH");
    }

    #[test]
    fn in_lambda_the_cursor_key_is_required_and_never_printed() {
        let e = settings(&[("AWS_LAMBDA_FUNCTION_NAME", "atlas-query")]).unwrap_err();
        assert!(matches!(
            e,
            ConfigError::Missing {
                name: "ATLAS_CURSOR_KEY"
            }
        ));
        let short = "too-short-to-sign-with";
        let e = settings(&[("ATLAS_CURSOR_KEY", short)]).unwrap_err();
        assert!(!e.to_string().contains(short), "{e}");
        let key = "k".repeat(32);
        let s = settings(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "atlas-query"),
            ("ATLAS_CURSOR_KEY", &key),
        ])
        .unwrap();
        assert!(s.in_lambda);
    }
}
