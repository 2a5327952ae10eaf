//! Cloud-facing plumbing shared by every function: database credentials
//! from Secrets Manager or RDS IAM, tracing setup, and the metrics port (CloudWatch Embedded
//! Metric Format on stdout in Lambda, a tracing line locally).

pub mod credentials;
pub mod metrics;
pub mod telemetry;
