//! Cloud-facing plumbing shared by every function: configuration from the
//! environment, tracing setup, and the metrics port (CloudWatch Embedded
//! Metric Format on stdout in Lambda, a tracing line locally).

pub mod config;
pub mod credentials;
pub mod metrics;
pub mod telemetry;
