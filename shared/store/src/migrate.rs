use atlas_core::AcceptWindow;

use crate::{DbConfig, StoreError};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Applies pending migrations (versioned and checksummed by refinery; a
/// second run does nothing) and makes sure the time-series partitions for
/// the accept window exist. Runs as the URL's login, which becomes owner,
/// over TLS by the same rules (and CA bundle) as the pools.
pub async fn migrate(db: &DbConfig, window: &AcceptWindow) -> Result<usize, StoreError> {
    let mut client = crate::pool::connect(&db.url, db.ca_bundle.as_deref()).await?;
    let report = embedded::migrations::runner()
        .run_async(&mut client)
        .await?;
    ensure_partitions(&client, window).await?;
    Ok(report.applied_migrations().len())
}

/// Creates monthly partitions from the window's start through the month
/// after its end, so a reading is never refused for lack of a partition.
pub async fn ensure_partitions(
    client: &impl tokio_postgres::GenericClient,
    window: &AcceptWindow,
) -> Result<i32, StoreError> {
    let row = client
        .query_one(
            "SELECT atlas_ensure_ts_partitions(now() - make_interval(secs => $1), \
                                               now() + make_interval(secs => $2) + interval '1 month')",
            &[&(window.past.num_seconds() as f64), &(window.future.num_seconds() as f64)],
        )
        .await?;
    Ok(row.get(0))
}
