//! The query API Lambda behind API Gateway. So far it serves the plugin
//! registry (`/v1/plugins`); all logic lives in `atlas-plugins`.

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    atlas_cloud::telemetry::init();
    let registry = atlas_plugins::Registry::from_env().await?;
    let registry = &registry;
    run(service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(atlas_plugins::http::handle(registry, req).await)
    }))
    .await
}
