//! The ingest Lambda: API Gateway `POST /v1/telemetry` and the MSK raw
//! telemetry topic. All logic lives in `atlas-ingest`.

use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    atlas_cloud::telemetry::init();
    let svc = atlas_app::startup::ingest(&atlas_app::Settings::from_env()?).await?;
    let svc = &svc;
    run(service_fn(move |event| {
        atlas_ingest::lambda::handle(svc, event)
    }))
    .await
}
