//! The CDC-batch loader Lambda: an MSK event source on the Debezium
//! topics. All logic lives in `atlas-warehouse`.

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    atlas_cloud::telemetry::init();
    let loader = atlas_app::startup::cdc_loader(&atlas_app::Settings::from_env()?).await?;
    let loader = &loader;
    run(service_fn(
        move |event: LambdaEvent<KafkaEvent>| async move {
            let report = loader.handle(&event.payload).await?;
            tracing::info!(?report, "CDC batch loaded");
            Ok::<_, Error>(report)
        },
    ))
    .await
}
