//! The object store port: immutable blobs under string keys. Plugins keep
//! their modules here, ingest its MSK dead letters (and the CDC loader
//! will stage its batches here).
//!
//! Two adapters: S3 through aws-sdk-s3, whose endpoint follows
//! `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_S3` so moto can stand in, and a
//! local directory for `atlas dev`. `ATLAS_OBJECT_STORE` picks one:
//! `s3://bucket[/prefix]` or a directory path.

mod local;
mod s3;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

pub use local::LocalDir;
pub use s3::S3Store;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid object key {0:?}")]
    BadKey(String),
    #[error("object store {store}: {message}")]
    Backend { store: String, message: String },
}

/// Blobs by key. Writes replace whole objects; readers never see half of one.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError>;
    /// `None` when there is no such object.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError>;
}

/// Where the objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    S3 { bucket: String, prefix: String },
    Dir(PathBuf),
}

impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("an s3:// location needs a bucket: s3://bucket[/prefix]".into());
            }
            let prefix = prefix.trim_matches('/');
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
            });
        }
        if s.contains("://") {
            return Err("use s3://bucket[/prefix] or a directory path".into());
        }
        if s.is_empty() {
            return Err("empty location".into());
        }
        Ok(Location::Dir(PathBuf::from(s)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Location::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

impl Location {
    /// Connects the adapter for this location. The S3 client reads its
    /// region, credentials and endpoint from the usual AWS configuration.
    pub async fn open(&self) -> Result<Arc<dyn ObjectStore>, ObjectError> {
        Ok(match self {
            Location::S3 { bucket, prefix } => Arc::new(S3Store::connect(bucket, prefix).await),
            Location::Dir(d) => Arc::new(LocalDir::new(d.clone())),
        })
    }

    /// The root keys are joined to, as other AWS services name it
    /// (`s3://bucket/prefix/`); `None` for a local directory.
    pub fn s3_root(&self) -> Option<String> {
        match self {
            Location::S3 { bucket, prefix } => Some(format!("s3://{bucket}/{prefix}")),
            Location::Dir(_) => None,
        }
    }
}

/// Keys are ours, never a caller's, but a key that could climb out of a
/// local directory or form an odd S3 path is refused anyway.
fn check_key(key: &str) -> Result<(), ObjectError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ObjectError::BadKey(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            "s3://b".parse(),
            Ok(Location::S3 {
                bucket: "b".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            "s3://b/atlas/plugins/".parse(),
            Ok(Location::S3 {
                bucket: "b".into(),
                prefix: "atlas/plugins/".into()
            })
        );
        assert_eq!("/var/x".parse(), Ok(Location::Dir("/var/x".into())));
        let root = |s: &str| s.parse::<Location>().unwrap().s3_root();
        assert_eq!(root("s3://b"), Some("s3://b/".into()));
        assert_eq!(root("s3://b/atlas//"), Some("s3://b/atlas/".into()));
        assert_eq!(root("/var/x"), None);
        assert!("s3://".parse::<Location>().is_err());
        assert!("gs://b".parse::<Location>().is_err());
        assert!("".parse::<Location>().is_err());
    }

    #[test]
    fn keys_cannot_escape() {
        assert!(check_key("plugins/ab12.wasm").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a b", "a\\b"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
