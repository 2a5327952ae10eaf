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
/// loops that work until shortly before it want an `Instant`. The
/// cargo-lambda emulator passes its timeout (e.g. 600000) instead of an
/// epoch time; anything before 2001 is read that way, as a budget.
pub fn deadline_instant(deadline_ms: u64) -> std::time::Instant {
    const YEAR_2001_MS: u64 = 978_307_200_000;
    let remaining = if deadline_ms < YEAR_2001_MS {
        deadline_ms
    } else {
        deadline_ms.saturating_sub(chrono::Utc::now().timestamp_millis().max(0) as u64)
    };
    std::time::Instant::now() + std::time::Duration::from_millis(remaining)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::deadline_instant;

    #[test]
    fn deadlines_are_epoch_times_or_emulator_budgets() {
        let in_a_minute = chrono::Utc::now().timestamp_millis() as u64 + 60_000;
        let left = deadline_instant(in_a_minute).saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        let left = deadline_instant(20_000).saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(19) && left <= Duration::from_secs(20),
            "{left:?}"
        );
        assert!(
            deadline_instant(1_000_000_000_000) <= Instant::now(),
            "a past deadline leaves no time"
        );
    }
}
