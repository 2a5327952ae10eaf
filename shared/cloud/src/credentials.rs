//! Database credentials the AWS way, chosen by the settings:
//! - `ATLAS_DB_SECRET_ID`: a Secrets Manager secret in the shape RDS manages
//!   (`username`, `password`, `host`, `port`, `dbname`), read once per
//!   container and again after an authentication failure, so a rotation
//!   needs no redeploy;
//! - `ATLAS_DB_IAM_AUTH=1`: an RDS IAM auth token for each new connection,
//!   signed locally by aws-sdk-rds (no network call), over TLS only;
//! - neither: the password in `DATABASE_URL`, for local use.
//!
//! Secrets never reach a log: `DbSecret` prints without its password.

use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config as TokenConfig};
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};

/// A secret as RDS writes it for a managed password; only the password is
/// required, the rest overrides the URL's.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct DbSecret {
    pub username: Option<String>,
    pub password: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
}

impl fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSecret")
            .field("username", &self.username)
            .field("password", &"***")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("Secrets Manager secret {id}: {message}")]
    Secret { id: String, message: String },
    #[error("RDS IAM auth token: {0}")]
    Token(String),
}

/// Where a connection's credentials come from. The AWS configuration is
/// loaded on first use, so building a pool stays synchronous and fast.
pub enum Credentials {
    /// The URL's own (or none).
    Url,
    Secret {
        id: String,
        sdk: OnceCell<aws_config::SdkConfig>,
        cached: Mutex<Option<DbSecret>>,
    },
    Iam {
        sdk: OnceCell<aws_config::SdkConfig>,
        /// Tokens live 15 minutes; one is reused for 10.
        cached: Mutex<Option<(Instant, String)>>,
    },
}

async fn loaded(sdk: &OnceCell<aws_config::SdkConfig>) -> &aws_config::SdkConfig {
    sdk.get_or_init(aws_config::load_from_env).await
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Url => f.write_str("Credentials::Url"),
            Credentials::Secret { id, .. } => write!(f, "Credentials::Secret({id})"),
            Credentials::Iam { .. } => f.write_str("Credentials::Iam"),
        }
    }
}

/// How long an IAM token is reused; RDS accepts one for 15 minutes.
const TOKEN_REUSE: Duration = Duration::from_secs(600);

impl Credentials {
    /// The secret `id`, read with the usual AWS settings (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL*`), loaded on first use.
    pub fn secret_id(id: String) -> Self {
        Self::Secret {
            id,
            sdk: OnceCell::new(),
            cached: Mutex::new(None),
        }
    }

    /// IAM auth tokens signed with the usual AWS settings, loaded on first use.
    pub fn iam_auth() -> Self {
        Self::Iam {
            sdk: OnceCell::new(),
            cached: Mutex::new(None),
        }
    }

    /// IAM auth tokens signed with `sdk`'s credentials and region.
    pub fn iam(sdk: aws_config::SdkConfig) -> Self {
        Self::Iam {
            sdk: OnceCell::new_with(Some(sdk)),
            cached: Mutex::new(None),
        }
    }

    /// The secret `id`, read with `sdk`'s settings.
    pub fn secret(id: String, sdk: aws_config::SdkConfig) -> Self {
        Self::Secret {
            id,
            sdk: OnceCell::new_with(Some(sdk)),
            cached: Mutex::new(None),
        }
    }

    pub fn is_iam(&self) -> bool {
        matches!(self, Credentials::Iam { .. })
    }

    /// The secret, from this container's copy unless `fresh` (after an
    /// authentication failure: the password may have been rotated).
    pub async fn db_secret(&self, fresh: bool) -> Result<Option<DbSecret>, CredentialError> {
        let Credentials::Secret { id, sdk, cached } = self else {
            return Ok(None);
        };
        let mut cached = cached.lock().await;
        if !fresh && let Some(s) = cached.as_ref() {
            return Ok(Some(s.clone()));
        }
        let fail = |message: String| CredentialError::Secret {
            id: id.clone(),
            message,
        };
        let out = aws_sdk_secretsmanager::Client::new(loaded(sdk).await)
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| fail(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()))?;
        let text = out
            .secret_string()
            .ok_or_else(|| fail("the secret has no string value".into()))?;
        // serde's message could quote the value; say only what is wrong.
        let secret: DbSecret = serde_json::from_str(text).map_err(|e| {
            fail(format!(
                "the secret is not RDS's JSON shape (username, password, host, port, dbname): \
                 error at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        *cached = Some(secret.clone());
        Ok(Some(secret))
    }

    /// An IAM auth token for `user` at `host:port`, reused for 10 minutes
    /// unless `fresh`.
    pub async fn iam_token(
        &self,
        host: &str,
        port: u16,
        user: &str,
        fresh: bool,
    ) -> Result<Option<String>, CredentialError> {
        let Credentials::Iam { sdk, cached } = self else {
            return Ok(None);
        };
        let mut cached = cached.lock().await;
        if !fresh
            && let Some((at, token)) = cached.as_ref()
            && at.elapsed() < TOKEN_REUSE
        {
            return Ok(Some(token.clone()));
        }
        let token = iam_token(loaded(sdk).await, host, port, user).await?;
        *cached = Some((Instant::now(), token.clone()));
        Ok(Some(token))
    }
}

/// Signs an RDS IAM auth token: `host:port/?Action=connect&DBUser=user&...`
/// presigned with SigV4 for the `rds-db` service, valid 15 minutes.
pub async fn iam_token(
    sdk: &aws_config::SdkConfig,
    host: &str,
    port: u16,
    user: &str,
) -> Result<String, CredentialError> {
    let mut config = TokenConfig::builder()
        .hostname(host)
        .port(u64::from(port))
        .username(user);
    if let Some(region) = sdk.region() {
        config = config.region(region.clone());
    }
    let config = config
        .build()
        .map_err(|e| CredentialError::Token(e.to_string()))?;
    AuthTokenGenerator::new(config)
        .auth_token(sdk)
        .await
        .map(|t| t.as_str().to_owned())
        .map_err(|e| CredentialError::Token(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_password() {
        let s: DbSecret = serde_json::from_str(
            r#"{"username": "atlas_ingest", "password": "hunter2", "host": "db", "port": 5432,
                "dbname": "atlas", "engine": "postgres"}"#,
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("atlas_ingest"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn iam_tokens_have_the_form_rds_expects() {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .credentials_provider(aws_sdk_rds::config::Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .region(aws_config::Region::new("eu-west-1"))
            .load()
            .await;
        let token = iam_token(
            &sdk,
            "db.example.eu-west-1.rds.amazonaws.com",
            5432,
            "atlas_ingest",
        )
        .await
        .unwrap();
        let (target, query) = token.split_once("/?").unwrap();
        assert_eq!(target, "db.example.eu-west-1.rds.amazonaws.com:5432");
        let pairs: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("Action"), Some("connect"));
        assert_eq!(get("DBUser"), Some("atlas_ingest"));
        assert_eq!(get("X-Amz-Expires"), Some("900"));
        assert_eq!(get("X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        let credential = get("X-Amz-Credential").unwrap();
        assert!(credential.starts_with("AKIDEXAMPLE%2F"), "{credential}");
        assert!(
            credential.ends_with("%2Feu-west-1%2Frds-db%2Faws4_request"),
            "{credential}"
        );
        assert_eq!(get("X-Amz-Signature").map(str::len), Some(64));
    }
}
