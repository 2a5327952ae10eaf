//! Reading typed settings from the environment with errors that name the
//! variable, so a misconfigured function fails at init with a clear line.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required")]
    Missing { name: &'static str },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing { name })
}

/// An optional variable parsed with `FromStr`, or `default` when unset.
pub fn parsed<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            value: v.clone(),
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

/// A duration given in milliseconds.
pub fn millis(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    parsed(name, default.as_millis() as u64).map(Duration::from_millis)
}

/// A duration given in seconds.
pub fn seconds(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    parsed(name, default.as_secs()).map(Duration::from_secs)
}
