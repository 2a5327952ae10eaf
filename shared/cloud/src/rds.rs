//! The read replicas of an RDS instance, as RDS itself lists them, so a
//! replica added or removed in RDS is seen without a redeploy.

/// One replica's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaEndpoint {
    /// The DB instance identifier: the replica's name in metrics and in
    /// `freshness_status`.
    pub id: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
#[error("RDS replica discovery: {0}")]
pub struct DiscoveryError(String);

fn sdk_error<E: std::error::Error + Send + Sync + 'static>(
    e: aws_sdk_rds::error::SdkError<E>,
) -> DiscoveryError {
    DiscoveryError(aws_sdk_rds::error::DisplayErrorContext(e).to_string())
}

/// `primary`'s read replicas (`DescribeDBInstances`), in identifier order.
/// One still being created has no endpoint yet and is left out until it
/// has.
pub async fn read_replicas(
    client: &aws_sdk_rds::Client,
    primary: &str,
) -> Result<Vec<ReplicaEndpoint>, DiscoveryError> {
    let instance = describe(client, primary)
        .await?
        .ok_or_else(|| DiscoveryError(format!("no DB instance {primary}")))?;
    let mut ids = instance.read_replica_db_instance_identifiers().to_vec();
    ids.sort();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let endpoint = describe(client, &id)
            .await?
            .and_then(|i| i.endpoint().cloned())
            .and_then(|e| Some((e.address()?.to_owned(), e.port()?)));
        match endpoint {
            Some((host, port)) => {
                let port = u16::try_from(port)
                    .map_err(|_| DiscoveryError(format!("{id}: port {port}")))?;
                out.push(ReplicaEndpoint { id, host, port });
            }
            None => tracing::info!(replica = %id, "replica has no endpoint yet; skipped"),
        }
    }
    Ok(out)
}

async fn describe(
    client: &aws_sdk_rds::Client,
    id: &str,
) -> Result<Option<aws_sdk_rds::types::DbInstance>, DiscoveryError> {
    let out = client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .map_err(sdk_error)?;
    Ok(out.db_instances().first().cloned())
}
