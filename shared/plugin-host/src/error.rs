/// Everything that can go wrong with a plugin, each naming what was hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("the module is not valid WebAssembly: {0}")]
    Invalid(String),
    #[error(
        "the module imports {module}.{name}, which the host does not provide (only atlas.log is allowed)"
    )]
    ForbiddenImport { module: String, name: String },
    #[error("the module does not export {name} ({expected})")]
    MissingExport {
        name: &'static str,
        expected: &'static str,
    },
    #[error("the module speaks ABI version {found}; this host speaks 1 and 2")]
    AbiVersion { found: i32 },
    #[error("fuel limit: the plugin used its whole budget of {budget} fuel")]
    OutOfFuel { budget: u64 },
    #[error("time limit: the plugin ran longer than {ms} ms")]
    Timeout { ms: u128 },
    #[error("memory limit: the plugin tried to grow its memory past {bytes} bytes")]
    MemoryLimit { bytes: usize },
    #[error("stack limit: the plugin recursed too deeply")]
    StackOverflow,
    #[error("output limit: the plugin returned {len} bytes; the limit is {max}")]
    OutputTooLarge { len: u64, max: usize },
    #[error("the plugin returned a buffer at {ptr}+{len} outside its {memory}-byte memory")]
    OutputOutOfBounds { ptr: u32, len: u32, memory: usize },
    #[error("the plugin trapped: {0}")]
    Trap(String),
    #[error("the module is {bytes} bytes; the limit is {max}")]
    TooLarge { bytes: usize, max: usize },
    #[error("the plugin's output is not a valid batch: {0}")]
    MalformedOutput(String),
    #[error("plugin host error: {0}")]
    Host(String),
}

impl PluginError {
    /// A stable, machine-readable name for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Invalid(_) => "invalid_module",
            PluginError::ForbiddenImport { .. } => "forbidden_import",
            PluginError::MissingExport { .. } => "missing_export",
            PluginError::AbiVersion { .. } => "abi_version",
            PluginError::OutOfFuel { .. } => "fuel_limit",
            PluginError::Timeout { .. } => "time_limit",
            PluginError::MemoryLimit { .. } => "memory_limit",
            PluginError::StackOverflow => "stack_limit",
            PluginError::OutputTooLarge { .. } => "output_limit",
            PluginError::OutputOutOfBounds { .. } => "output_out_of_bounds",
            PluginError::Trap(_) => "trap",
            PluginError::TooLarge { .. } => "module_too_large",
            PluginError::MalformedOutput(_) => "malformed_output",
            PluginError::Host(_) => "host_error",
        }
    }
}
