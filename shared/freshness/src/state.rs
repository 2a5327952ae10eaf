//! The seed's freshness states, by how many seconds data is behind.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Under 1 s: "Real-time".
    Green,
    /// 1 to 10 s: "Near real-time".
    Yellow,
    /// 10 to 60 s: "Delayed".
    Orange,
    /// Over 60 s, or not known: "Stale".
    Red,
}

impl State {
    /// The state of data `lag_seconds` behind; unknown lag is red.
    pub fn of(lag_seconds: Option<f64>) -> Self {
        match lag_seconds {
            Some(s) if s < 1.0 => State::Green,
            Some(s) if s <= 10.0 => State::Yellow,
            Some(s) if s <= 60.0 => State::Orange,
            _ => State::Red,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Green => "green",
            State::Yellow => "yellow",
            State::Orange => "orange",
            State::Red => "red",
        }
    }

    /// The seed's wording for a badge.
    pub fn label(self) -> &'static str {
        match self {
            State::Green => "Real-time",
            State::Yellow => "Near real-time",
            State::Orange => "Delayed",
            State::Red => "Stale",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [State::Green, State::Yellow, State::Orange, State::Red]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_thresholds() {
        for (lag, state) in [
            (Some(0.0), State::Green),
            (Some(0.999), State::Green),
            (Some(1.0), State::Yellow),
            (Some(10.0), State::Yellow),
            (Some(10.5), State::Orange),
            (Some(60.0), State::Orange),
            (Some(60.1), State::Red),
            (None, State::Red),
        ] {
            assert_eq!(State::of(lag), state, "{lag:?}");
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        assert_eq!(State::parse("blue"), None);
    }
}
