//! One place that sets up tracing for every binary.

use tracing_subscriber::EnvFilter;

/// JSON lines in Lambda (CloudWatch Logs Insights parses them), human text
/// elsewhere. `RUST_LOG` overrides the default `info` level.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if in_lambda() {
        builder
            .json()
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests, the CLI calling library code) is harmless.
    drop(result);
}

/// True inside the Lambda execution environment.
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// Lambda gives an invocation's deadline as milliseconds since the epoch;
/// loops that work until shortly before it want an `Instant`.
pub fn deadline_instant(deadline_epoch_ms: u64) -> std::time::Instant {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    std::time::Instant::now()
        + std::time::Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}
