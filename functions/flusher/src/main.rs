//! The flusher Lambda: an EventBridge `rate(1 minute)` schedule starts it,
//! and it flushes staging in a loop until shortly before its deadline.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    atlas_cloud::telemetry::init();
    let flusher = atlas_app::startup::flusher(&atlas_app::Settings::from_env()?)?;
    let flusher = &flusher;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = atlas_cloud::telemetry::deadline_instant(event.context.deadline);
        let budget_ms = deadline
            .saturating_duration_since(std::time::Instant::now())
            .as_millis() as u64;
        tracing::info!(budget_ms, "flush run starting");
        let totals = flusher.run_until(deadline).await?;
        tracing::info!(?totals, "flush run finished");
        Ok::<_, Error>(serde_json::to_value(totals)?)
    }))
    .await
}
