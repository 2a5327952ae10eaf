use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use crate::{ObjectError, ObjectStore, check_key};

/// A bucket (and key prefix) in S3, or in anything that speaks its API.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// Region, credentials and endpoint come from the environment as for
    /// any AWS SDK. With an endpoint override (moto, MinIO) buckets are
    /// addressed by path: such servers do not resolve `bucket.host` names.
    pub async fn connect(bucket: &str, prefix: &str) -> Self {
        let shared = aws_config::load_from_env().await;
        let overridden = shared.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(overridden)
            .build();
        Self {
            client: Client::from_conf(config),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    /// For local stacks and tests; in AWS, Terraform owns the bucket.
    pub async fn create_bucket_if_missing(&self) -> Result<(), ObjectError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: impl std::error::Error) -> ObjectError {
        // The SDK's Display is only the error kind; the source chain says why.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ObjectError::Backend {
            store: format!("s3://{}/{}", self.bucket, self.prefix),
            message,
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        check_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        check_key(key)?;
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .send()
            .await;
        match resp {
            Ok(out) => {
                let body = out.body.collect().await.map_err(|e| self.error(e))?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }
}
