use std::collections::HashMap;
use std::time::Duration;

use atlas_plugin_host::Limits;
use serde::Serialize;

/// What ingest does when a plugin fails: hits a limit, traps, or answers
/// with something that is not a batch. A plugin that answers with an
/// error of its own has decided; that always rejects the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Refuse the batch (HTTP 422 with the plugin's error); nothing staged.
    #[default]
    Reject,
    /// Stage the readings untransformed and report the failure.
    PassThrough,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Reject => "reject",
            OnFailure::PassThrough => "pass_through",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "reject" => Ok(OnFailure::Reject),
            "pass_through" => Ok(OnFailure::PassThrough),
            other => Err(format!(
                "on_failure must be reject or pass_through, not {other:?}"
            )),
        }
    }
}

/// A plugin version's limits and failure policy, fixed at upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PluginSettings {
    pub limits: Limits,
    pub on_failure: OnFailure,
}

impl PluginSettings {
    /// From an upload's query string: `fuel`, `timeout_ms`, `memory_mb`,
    /// `output_kb`, `on_failure`; anything unset keeps the default, and
    /// every limit must stay under `Limits::CEILING`.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, String> {
        const KNOWN: [&str; 5] = ["fuel", "timeout_ms", "memory_mb", "output_kb", "on_failure"];
        if let Some(k) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("unknown parameter {k:?}; use {}", KNOWN.join(", ")));
        }
        let number = |key: &str| -> Result<Option<u64>, String> {
            query
                .get(key)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("{key} must be a whole number, not {v:?}"))
                })
                .transpose()
        };
        let d = Limits::default();
        let limits = Limits {
            fuel: number("fuel")?.unwrap_or(d.fuel),
            timeout: number("timeout_ms")?
                .map(Duration::from_millis)
                .unwrap_or(d.timeout),
            memory_bytes: number("memory_mb")?
                .map(|mb| mb.saturating_mul(1 << 20) as usize)
                .unwrap_or(d.memory_bytes),
            output_bytes: number("output_kb")?
                .map(|kb| kb.saturating_mul(1 << 10) as usize)
                .unwrap_or(d.output_bytes),
        };
        limits.check()?;
        let on_failure = query
            .get("on_failure")
            .map(|v| OnFailure::parse(v))
            .transpose()?
            .unwrap_or_default();
        Ok(Self { limits, on_failure })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            PluginSettings::from_query(&q(&[])),
            Ok(PluginSettings::default())
        );
        let s = PluginSettings::from_query(&q(&[
            ("fuel", "1000"),
            ("memory_mb", "4"),
            ("on_failure", "pass_through"),
        ]))
        .unwrap();
        assert_eq!(s.limits.fuel, 1000);
        assert_eq!(s.limits.memory_bytes, 4 << 20);
        assert_eq!(s.on_failure, OnFailure::PassThrough);
    }

    #[test]
    fn bad_settings_are_named() {
        for (k, v, word) in [
            ("fuel", "lots", "fuel"),
            ("memory_mb", "100000", "memory_bytes"),
            ("timeout_ms", "0", "timeout_ms"),
            ("on_failure", "ignore", "on_failure"),
            ("speed", "1", "speed"),
        ] {
            let e = PluginSettings::from_query(&q(&[(k, v)])).unwrap_err();
            assert!(e.contains(word), "{e}");
        }
    }
}
