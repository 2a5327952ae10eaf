//! The heartbeat Lambda: an EventBridge `rate(1 minute)` schedule starts it,
//! and it writes a heartbeat every few seconds until shortly before its
//! deadline, delivering webhooks beside it. All logic lives in
//! `atlas_store::heartbeat` and `atlas_webhooks`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    atlas_cloud::telemetry::init();
    let heartbeat = atlas_app::startup::heartbeat(&atlas_app::Settings::from_env()?)?;
    let heartbeat = &heartbeat;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = atlas_cloud::telemetry::deadline_instant(event.context.deadline);
        let run = heartbeat.run_until(deadline).await?;
        tracing::info!(?run, "heartbeat run finished");
        Ok::<_, Error>(serde_json::to_value(run)?)
    }))
    .await
}
