//! The lag checker Lambda: an EventBridge `rate(1 minute)` schedule starts
//! it, and it measures every read path's freshness on an interval until
//! shortly before its deadline. All logic lives in `atlas_freshness`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    atlas_cloud::telemetry::init();
    let checker = atlas_app::startup::lag_checker(&atlas_app::Settings::from_env()?).await?;
    let checker = &checker;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = atlas_cloud::telemetry::deadline_instant(event.context.deadline);
        let runs = checker.run_until(deadline).await?;
        tracing::info!(?runs, "lag checker run finished");
        Ok::<_, Error>(serde_json::to_value(runs)?)
    }))
    .await
}
