//! The sample events in `events/`, for `cargo lambda invoke`.
//!
//! Ingest refuses readings outside its accept window (30 days back by
//! default), so a sample with a fixed date goes stale. The HTTP samples
//! carry no `ts` and are stamped with the receive time. An MSK record
//! cannot do without its timestamp, which readings without `ts` take, so
//! `refresh` sets every record's timestamp to now.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a JSON event: {error}")]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },
}

/// Rewrites the record timestamps of every MSK sample in `dir` to `now`,
/// leaving the rest of each file as it is. Returns the files changed.
pub fn refresh(dir: &Path, now: DateTime<Utc>) -> Result<Vec<PathBuf>, EventsError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |error| EventsError::Io { path, error }
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut changed = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let event: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| EventsError::Json {
                path: path.clone(),
                error,
            })?;
        if event["eventSource"] != "aws:kafka" {
            continue;
        }
        let updated = set_numbers(&text, "timestamp", now.timestamp_millis());
        if updated != text {
            std::fs::write(&path, updated).map_err(io(&path))?;
            changed.push(path);
        }
    }
    Ok(changed)
}

/// Replaces the number after every `"field": ` in `text`. Done on the text
/// rather than through a JSON tree so that key order and layout survive.
fn set_numbers(text: &str, field: &str, value: i64) -> String {
    let needle = format!("\"{field}\":");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let (head, tail) = rest.split_at(at + needle.len());
        out.push_str(head);
        let spaces = tail.len() - tail.trim_start().len();
        out.push_str(&tail[..spaces]);
        let tail = &tail[spaces..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str(&value.to_string());
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_numbers_change() {
        let text =
            "{\"a\": {\"timestamp\": 17, \"x\": 1},\n \"timestamp\":9, \"timestamp\": \"s\"}";
        assert_eq!(
            set_numbers(text, "timestamp", 42),
            "{\"a\": {\"timestamp\": 42, \"x\": 1},\n \"timestamp\":42, \"timestamp\": \"s\"}"
        );
    }
}
