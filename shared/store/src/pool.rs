use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use atlas_cloud::credentials::Credentials;
use deadpool_postgres::{Connect, Manager, ManagerConfig, RecyclingMethod};
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

pub type Pool = deadpool_postgres::Pool;

/// Which database role a pool acts as. In the cloud each function logs in
/// as its own login, a member of its role (migration V9), and nothing is
/// switched. Locally one login (often a superuser) serves all; the pool
/// then switches to the role on each new connection, so that Row-Level
/// Security applies exactly as it does in the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    /// Connect as the URL's user, unchanged (migrations, admin).
    AsLogin,
    /// `atlas_app`: tenant-scoped, subject to RLS.
    App,
    /// `atlas_worker`: the cross-tenant pipelines.
    Worker,
}

impl DbRole {
    fn name(self) -> Option<&'static str> {
        match self {
            DbRole::AsLogin => None,
            DbRole::App => Some("atlas_app"),
            DbRole::Worker => Some("atlas_worker"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: String,
    pub role: DbRole,
    /// Where the login's password comes from: the URL, a Secrets Manager
    /// secret or an RDS IAM token (`ATLAS_DB_SECRET_ID`, `ATLAS_DB_IAM_AUTH`).
    pub credentials: Arc<Credentials>,
    pub max_connections: usize,
    /// Extra CA certificates (PEM), e.g. Amazon RDS's bundle, which the
    /// public web roots do not contain.
    pub ca_bundle: Option<PathBuf>,
    /// Plan prepared statements once per connection, never per execution.
    /// For the query API: planning a search over the partitioned tables
    /// costs ~4 ms, executing it ~1 ms, and PostgreSQL's own choice keeps
    /// re-planning because a generic plan's estimate looks costlier.
    pub generic_plans: bool,
}

impl DbConfig {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 8;

    pub fn new(url: impl Into<String>, role: DbRole) -> Self {
        Self {
            url: url.into(),
            role,
            credentials: Arc::new(Credentials::Url),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            ca_bundle: None,
            generic_plans: false,
        }
    }

    /// Builds the pool without connecting: Lambda init stays fast and a
    /// database outage surfaces per request, not as a crash loop.
    ///
    /// No startup options are sent: RDS Proxy refuses them ("RDS Proxy
    /// currently doesn't support command-line options").
    pub fn pool(&self) -> Result<Pool, StoreError> {
        let pg = parse_url(&self.url)?;
        let mc = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let credentials = self.credentials.clone();
        let mgr = match tls_for(&pg, self.ca_bundle.as_deref())? {
            Some(tls) => Manager::from_connect(pg, Connector { tls, credentials }, mc),
            None if credentials.is_iam() => {
                return Err(StoreError::Url(
                    "IAM authentication sends a token as the password, so it needs TLS: \
                     connect to the RDS endpoint, not a local or sslmode=disable URL"
                        .into(),
                ));
            }
            None => Manager::from_connect(
                pg,
                Connector {
                    tls: NoTls,
                    credentials,
                },
                mc,
            ),
        };
        // Most recently used first: a function serving one request at a
        // time keeps reusing one warm connection and its backend, instead
        // of turning through every connection a background task ever opened.
        let mut builder = Pool::builder(mgr)
            .max_size(self.max_connections)
            .queue_mode(deadpool_postgres::QueueMode::Lifo);
        if let Some(role) = self.role.name() {
            let generic_plans = self.generic_plans;
            builder = builder.post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
                Box::pin(async move {
                    act_as(client, role, generic_plans)
                        .await
                        .map_err(deadpool_postgres::HookError::Backend)
                })
            }));
        }
        Ok(builder.build()?)
    }
}

/// A function's own login, a member of `role`, already acts as it, with the
/// settings migration V9 put on it: nothing is sent. Any other login (a
/// superuser locally, or one shared login) switches with `SET ROLE` and sets
/// generic plans itself; behind RDS Proxy those SETs pin the session to one
/// backend, which only such logins pay for.
async fn act_as(
    client: &Client,
    role: &'static str,
    generic_plans: bool,
) -> Result<(), tokio_postgres::Error> {
    let switch: bool = client
        .query_one(
            "SELECT r.rolsuper OR NOT pg_has_role(current_user, $1, 'USAGE') \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[&role],
        )
        .await?
        .get(0);
    if switch {
        // `role` is one of DbRole's constants, never input.
        let mut sql = format!("SET ROLE {role}");
        if generic_plans {
            sql.push_str("; SET plan_cache_mode = force_generic_plan");
        }
        client.batch_execute(&sql).await?;
    }
    Ok(())
}

/// Connects with the credentials of the moment: the secret's user and
/// password, or a fresh IAM token. When the server refuses them, they are
/// fetched again once (a rotated secret) before the refusal stands.
struct Connector<T> {
    tls: T,
    credentials: Arc<Credentials>,
}

impl<T> Connect for Connector<T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(Client, JoinHandle<()>), tokio_postgres::Error>> {
        let pg = pg.clone();
        Box::pin(async move {
            match self.attempt(&pg, false).await {
                Err(e) if refused_login(&e) && !matches!(*self.credentials, Credentials::Url) => {
                    tracing::info!(credentials = ?self.credentials, "the database refused the login; fetching the credentials again");
                    self.attempt(&pg, true).await
                }
                other => other,
            }
        })
    }
}

impl<T> Connector<T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    async fn attempt(
        &self,
        pg: &tokio_postgres::Config,
        fresh: bool,
    ) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
        let mut pg = pg.clone();
        // A credential that cannot be had is logged, and the connection
        // tried without it: the server's refusal is the error callers see.
        match self.credentials.db_secret(fresh).await {
            Ok(Some(secret)) => {
                if let Some(user) = &secret.username {
                    pg.user(user);
                }
                pg.password(secret.password);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "no database secret"),
        }
        if self.credentials.is_iam() {
            let host = match pg.get_hosts().first() {
                Some(Host::Tcp(h)) => h.clone(),
                _ => String::new(),
            };
            let port = pg.get_ports().first().copied().unwrap_or(5432);
            let user = pg.get_user().unwrap_or_default().to_owned();
            match self.credentials.iam_token(&host, port, &user, fresh).await {
                Ok(Some(token)) => {
                    pg.password(token);
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "no RDS IAM auth token"),
            }
        }
        let (client, connection) = pg.connect(self.tls.clone()).await?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "database connection closed");
            }
        });
        Ok((client, task))
    }
}

/// The server refused this login: a wrong password, or a role that does
/// not (or no longer) exist.
fn refused_login(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::INVALID_PASSWORD) | Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    )
}

/// One connection as the URL's login, with the same TLS rules as the pools.
pub(crate) async fn connect(url: &str, ca_bundle: Option<&Path>) -> Result<Client, StoreError> {
    let pg = parse_url(url)?;
    let client = match tls_for(&pg, ca_bundle)? {
        Some(tls) => {
            let (client, conn) = pg.connect(tls).await?;
            tokio::spawn(conn);
            client
        }
        None => {
            let (client, conn) = pg.connect(NoTls).await?;
            tokio::spawn(conn);
            client
        }
    };
    Ok(client)
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg =
        tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Url(e.to_string()))?;
    if pg.get_application_name().is_none() {
        pg.application_name("atlas");
    }
    // An unreachable server (a stopped replica, a lost route) must fail a
    // request, not hang it until the Lambda times out.
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(std::time::Duration::from_secs(3));
    }
    Ok(pg)
}

/// TLS for every host off this machine, verified against the web roots
/// plus `ca_bundle`; plain TCP on loopback and Unix sockets, where the
/// local server's self-signed certificate would fail verification anyway.
/// `sslmode=disable` turns TLS off explicitly.
fn tls_for(
    pg: &tokio_postgres::Config,
    ca_bundle: Option<&Path>,
) -> Result<Option<MakeRustlsConnect>, StoreError> {
    let local = pg.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => is_loopback(name),
        Host::Unix(_) => true,
    });
    if local || pg.get_ssl_mode() == SslMode::Disable {
        if !local {
            tracing::warn!("sslmode=disable: connecting to a remote database without TLS");
        }
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_bundle {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| StoreError::Url(format!("CA bundle {}: {e}", path.display())))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(StoreError::Url(format!(
                "CA bundle {} holds no certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Url(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// A connection string fit for logs: any password replaced by `***`, in
/// the URL's user info, a `password=` query parameter or a key=value string.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    // The user info ends at the last '@' before the host; a password may
    // itself hold '@', '/' or '?' (unencoded, as people do write them), and
    // the host never holds '@'. Should a query parameter hold one, more is
    // hidden than needed, never less.
    if let Some(scheme) = out.find("://") {
        let rest = scheme + 3;
        if let Some(at) = out[rest..].rfind('@').map(|i| rest + i)
            && let Some(colon) = out[rest..at].find(':').map(|i| rest + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    let mut search = 0;
    while let Some(i) = out[search..].find("password=").map(|i| search + i) {
        let start = i + "password=".len();
        let end = out[start..]
            .find(['&', ' '])
            .map_or(out.len(), |e| start + e);
        out.replace_range(start..end, "***");
        search = start + 3;
    }
    out
}

/// `url` with its database name replaced; for tools that create databases.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// `url` with its host and port swapped, the rest (login, database,
/// options) kept: a replica's URL from the primary's. The login ends at
/// the last '@', as in `redact_url`, so a password holding '/', '?' or '@'
/// stays whole.
pub fn with_host(url: &str, host: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (login, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let tail = after.find(['/', '?']).map_or("", |i| &after[i..]);
    match login {
        Some(login) => format!("{scheme}://{login}@{host}:{port}{tail}"),
        None => format!("{scheme}://{host}:{port}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_host_swaps_only_host_and_port() {
        assert_eq!(
            with_host(
                "postgres://u:p@w@primary:5432/atlas?sslmode=require",
                "r1.rds",
                6432
            ),
            "postgres://u:p@w@r1.rds:6432/atlas?sslmode=require"
        );
        assert_eq!(
            with_host("postgresql://primary/atlas", "r1", 5432),
            "postgresql://r1:5432/atlas"
        );
        assert_eq!(
            with_host("postgres://u@primary", "r1", 1),
            "postgres://u@r1:1"
        );
    }

    #[test]
    fn with_database_swaps_only_the_name() {
        assert_eq!(
            with_database("postgres://u@h:1/a", "b"),
            "postgres://u@h:1/b"
        );
        assert_eq!(
            with_database("postgres://u@h/a?sslmode=require", "b"),
            "postgres://u@h/b?sslmode=require"
        );
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_url("postgres://u:s3cr@t@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        for password in ["p/ss", "p?ss", "p@ss", "a/b?c@d"] {
            let shown = redact_url(&format!(
                "postgres://u:{password}@h:5432/db?sslmode=require"
            ));
            assert_eq!(shown, "postgres://u:***@h:5432/db?sslmode=require");
        }
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=x&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
    }

    #[test]
    fn tls_is_used_for_every_remote_host() {
        let tls = |url: &str| tls_for(&parse_url(url).unwrap(), None).unwrap().is_some();
        assert!(tls("postgres://u@db.example.com/atlas"));
        assert!(tls("postgres://u@10.0.0.5:5432/atlas?sslmode=require"));
        assert!(!tls("postgres://u@127.0.0.1/atlas"));
        assert!(!tls("postgres://u@localhost/atlas"));
        assert!(!tls("host=/var/run/postgresql user=u dbname=atlas"));
        assert!(!tls("postgres://u@db.example.com/atlas?sslmode=disable"));
    }

    #[test]
    fn a_bad_ca_bundle_is_a_clear_error() {
        let pg = parse_url("postgres://u@db.example.com/atlas").unwrap();
        let err = tls_for(&pg, Some(Path::new("/nonexistent/rds-ca.pem")))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/rds-ca.pem"), "{err}");
    }
}
