//! The ingest function receives two kinds of event: API Gateway HTTP API
//! requests and MSK batches. `lambda_http::run` only takes the first, so
//! this dispatches on the event's shape and answers each in its own format.

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

use crate::IngestService;

pub async fn handle(svc: &IngestService, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let deadline = (event.context.deadline > 0)
        .then(|| atlas_cloud::telemetry::deadline_instant(event.context.deadline));
    let payload = event.payload;
    let source = payload
        .get("eventSource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if source == "aws:kafka" || source == "SelfManagedKafka" {
        let kafka: KafkaEvent = serde_json::from_value(payload)?;
        let report = crate::msk::handle(svc, kafka, deadline).await?;
        tracing::info!(?report, "MSK batch ingested");
        return Ok(serde_json::to_value(report)?);
    }
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(payload)?;
    let response = crate::http::handle(svc, request.into()).await;
    Ok(serde_json::to_value(atlas_http::to_apigw_response(
        response,
    ))?)
}
