//! The query API Lambda behind API Gateway: entity reads with their
//! freshness, and the plugin registry. All logic lives in `atlas-query`.

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    atlas_cloud::telemetry::init();
    let api = atlas_app::startup::query_api(&atlas_app::Settings::from_env()?).await?;
    let api = &api;
    run(service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(atlas_query::http::handle(api, req).await)
    }))
    .await
}
