use std::time::Duration;

/// Per-call limits, configurable per tenant. The defaults suit a batch of a
/// few thousand readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly, WebAssembly instructions) for instantiation and the call.
    pub fuel: u64,
    /// Wall-clock bound, enforced by epoch interruption.
    pub timeout: Duration,
    /// Largest linear memory the plugin may grow to.
    pub memory_bytes: usize,
    /// Largest output it may return.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 200_000_000,
            timeout: Duration::from_millis(500),
            memory_bytes: 32 << 20,
            output_bytes: 8 << 20,
        }
    }
}

impl Limits {
    /// The most any tenant's limits may ask for. Ingest runs inside a
    /// Lambda invocation, so no batch may take seconds of it.
    pub const CEILING: Limits = Limits {
        fuel: 2_000_000_000,
        timeout: Duration::from_secs(5),
        memory_bytes: 256 << 20,
        output_bytes: 32 << 20,
    };

    /// Names the first limit above the ceiling or at zero.
    pub fn check(&self) -> Result<(), String> {
        let c = Self::CEILING;
        let checks = [
            ("fuel", self.fuel as u128, c.fuel as u128),
            (
                "timeout_ms",
                self.timeout.as_millis(),
                c.timeout.as_millis(),
            ),
            (
                "memory_bytes",
                self.memory_bytes as u128,
                c.memory_bytes as u128,
            ),
            (
                "output_bytes",
                self.output_bytes as u128,
                c.output_bytes as u128,
            ),
        ];
        for (name, got, max) in checks {
            if got == 0 || got > max {
                return Err(format!("{name} must be between 1 and {max}, not {got}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_under_the_ceiling_and_excess_is_named() {
        assert_eq!(Limits::default().check(), Ok(()));
        assert_eq!(Limits::CEILING.check(), Ok(()));
        let greedy = Limits {
            memory_bytes: 1 << 30,
            ..Limits::default()
        };
        assert!(greedy.check().unwrap_err().starts_with("memory_bytes"));
        let zero = Limits {
            fuel: 0,
            ..Limits::default()
        };
        assert!(zero.check().unwrap_err().starts_with("fuel"));
    }
}
