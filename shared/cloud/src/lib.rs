//! Cloud-facing plumbing shared by every function: database credentials
//! from Secrets Manager or RDS IAM, read replicas as RDS lists them,
//! tracing setup, and the metrics port (CloudWatch Embedded Metric Format
//! on stdout in Lambda, a tracing line locally).

pub mod credentials;
pub mod metrics;
pub mod rds;
pub mod telemetry;
