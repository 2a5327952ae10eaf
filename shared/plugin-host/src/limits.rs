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
