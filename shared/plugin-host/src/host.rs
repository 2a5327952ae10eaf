use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use wasmtime::{
    Caller, Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, ValType,
};

use atlas_core::RawReading;

use crate::{Abi, Decoded, Limits, PluginError};

/// How often the epoch ticks; timeouts are rounded up to whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Plugins get a small stack: deep recursion should trap, not take the
/// host's stack with it.
const MAX_WASM_STACK: usize = 256 << 10;
/// At most this many log lines per call, each cut to `LOG_LINE_BYTES`.
const LOG_LINES_PER_CALL: u32 = 20;
const LOG_LINE_BYTES: usize = 512;
/// A freed slot's first bytes are zeroed in place rather than returned to
/// the kernel, so the next call does not fault them back in: a plugin's
/// stack and small heap live there.
const KEEP_RESIDENT: usize = 1 << 20;
/// Instances alive at once across the container (one per running call).
const POOL_INSTANCES: u32 = 64;

/// Per-call state inside the store.
struct CallState {
    memory_cap: usize,
    memory_hit: bool,
    logs_left: u32,
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            // memory.grow returns -1 to the guest; if it then traps we
            // report the memory limit rather than the guest's reaction.
            self.memory_hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }
}

/// The compiler and runtime for plugins; one per container, shared.
pub struct Host {
    engine: Engine,
    linker: Linker<CallState>,
}

/// A checked, compiled plugin, ready to instantiate cheaply per call.
pub struct Plugin {
    module: Module,
    pre: InstancePre<CallState>,
    abi: Abi,
}

/// A call's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub fuel_used: u64,
    /// Time spent creating the instance (store, memory, start function).
    pub instantiate: Duration,
}

impl Host {
    pub fn new() -> Result<Arc<Self>, PluginError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_memories(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES)
            .total_tables(POOL_INSTANCES)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(Limits::CEILING.memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| PluginError::Host(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap("atlas", "log", host_log)
            .map_err(|e| PluginError::Host(e.to_string()))?;
        let host = Arc::new(Self { engine, linker });
        spawn_ticker(Arc::downgrade(&host));
        Ok(host)
    }

    /// Compiles and checks a module: only allowed imports, the ABI's
    /// exports with the right types, the right ABI version.
    pub fn compile(&self, wasm: &[u8]) -> Result<Plugin, PluginError> {
        // wasmparser's own message for this dumps both headers as byte lists.
        if !wasm.starts_with(b"\0asm") {
            return Err(PluginError::Invalid(
                "it does not start with the WebAssembly magic bytes (\\0asm)".into(),
            ));
        }
        let module =
            Module::new(&self.engine, wasm).map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
        self.prepare(module)
    }

    /// Loads a module from its precompiled artifact (`Plugin::precompiled`),
    /// which skips compilation entirely. If the artifact was made by an
    /// incompatible engine (another wasmtime version or CPU), the `.wasm`
    /// is compiled instead.
    pub fn load(&self, artifact: Option<&[u8]>, wasm: &[u8]) -> Result<Plugin, PluginError> {
        match artifact.and_then(|a| self.from_artifact(a)) {
            Some(plugin) => plugin,
            None => self.compile(wasm),
        }
    }

    /// The plugin in a precompiled artifact, or `None` when this engine
    /// cannot use it and the `.wasm` must be compiled.
    ///
    /// The artifact is native code run unchecked: callers pass only bytes
    /// whose SHA-256 matches what the registry recorded when it made them.
    pub fn from_artifact(&self, artifact: &[u8]) -> Option<Result<Plugin, PluginError>> {
        Engine::detect_precompiled(artifact)?;
        // SAFETY: the caller has checked the bytes against the hash the
        // registry recorded when this host's `Plugin::precompiled` made
        // them; wasmtime checks the engine's compatibility before use.
        match unsafe { Module::deserialize(&self.engine, artifact) } {
            Ok(module) => Some(self.prepare(module)),
            Err(e) => {
                tracing::info!(error = %e, "precompiled plugin is incompatible; compiling");
                None
            }
        }
    }

    fn prepare(&self, module: Module) -> Result<Plugin, PluginError> {
        // No ambient authority: atlas.log is the only import there is.
        if let Some(import) = module
            .imports()
            .find(|i| (i.module(), i.name()) != ("atlas", "log"))
        {
            return Err(PluginError::ForbiddenImport {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
            });
        }
        check_export(&module, "memory", "a memory", |t| {
            matches!(t, ExternType::Memory(_))
        })?;
        check_func(&module, "atlas_abi_version", &[], &[ValType::I32])?;
        check_func(&module, "atlas_alloc", &[ValType::I32], &[ValType::I32])?;
        check_func(
            &module,
            "atlas_transform",
            &[ValType::I32, ValType::I32],
            &[ValType::I64],
        )?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
        let found = abi_version(self, &pre)?;
        let abi = Abi::from_version(found).ok_or(PluginError::AbiVersion { found })?;
        Ok(Plugin { module, pre, abi })
    }
}

impl Plugin {
    /// The precompiled artifact to store beside the `.wasm`.
    pub fn precompiled(&self) -> Result<Vec<u8>, PluginError> {
        self.module
            .serialize()
            .map_err(|e| PluginError::Host(e.to_string()))
    }

    /// The payload this plugin speaks.
    pub fn abi(&self) -> Abi {
        self.abi
    }

    /// Runs the plugin on `readings` in its ABI's payload: `call` between
    /// the encoding and the decoding.
    pub fn transform(
        &self,
        host: &Host,
        readings: &[RawReading],
        limits: &Limits,
    ) -> Result<(Decoded, Output), PluginError> {
        let out = self.call(host, &self.abi.encode(readings), limits)?;
        Ok((self.abi.decode(&out.bytes)?, out))
    }

    /// Runs one batch: a fresh instance (cheap with the pooling allocator
    /// and `InstancePre`), the input copied in, the output copied out.
    pub fn call(&self, host: &Host, input: &[u8], limits: &Limits) -> Result<Output, PluginError> {
        let started = Instant::now();
        let mut store = host.store(limits);
        let classify = |e: wasmtime::Error, store: &Store<CallState>| classify(e, store, limits);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store))?;
        let instantiate = started.elapsed();
        let memory =
            instance
                .get_memory(&mut store, "memory")
                .ok_or(PluginError::MissingExport {
                    name: "memory",
                    expected: "a memory",
                })?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "atlas_alloc")
            .map_err(|e| PluginError::Host(e.to_string()))?;
        let transform = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "atlas_transform")
            .map_err(|e| PluginError::Host(e.to_string()))?;

        let len = i32::try_from(input.len()).map_err(|_| {
            PluginError::Host(format!("input of {} bytes is too large", input.len()))
        })?;
        let ptr = alloc
            .call(&mut store, len)
            .map_err(|e| classify(e, &store))?;
        memory
            .write(&mut store, ptr as u32 as usize, input)
            .map_err(|_| PluginError::OutputOutOfBounds {
                ptr: ptr as u32,
                len: len as u32,
                memory: memory.data_size(&store),
            })?;
        let packed = transform
            .call(&mut store, (ptr, len))
            .map_err(|e| classify(e, &store))?;
        let (out_ptr, out_len) = ((packed as u64 >> 32) as u32, packed as u64 as u32);
        if out_len as usize > limits.output_bytes {
            return Err(PluginError::OutputTooLarge {
                len: u64::from(out_len),
                max: limits.output_bytes,
            });
        }
        let data = memory.data(&store);
        let end = out_ptr as usize + out_len as usize;
        let bytes = data
            .get(out_ptr as usize..end)
            .ok_or(PluginError::OutputOutOfBounds {
                ptr: out_ptr,
                len: out_len,
                memory: data.len(),
            })?
            .to_vec();
        let fuel_used = limits.fuel - store.get_fuel().unwrap_or(0);
        Ok(Output {
            bytes,
            fuel_used,
            instantiate,
        })
    }
}

fn abi_version(host: &Host, pre: &InstancePre<CallState>) -> Result<i32, PluginError> {
    let limits = Limits::default();
    let mut store = host.store(&limits);
    let instance = pre
        .instantiate(&mut store)
        .map_err(|e| classify(e, &store, &limits))?;
    let f = instance
        .get_typed_func::<(), i32>(&mut store, "atlas_abi_version")
        .map_err(|e| PluginError::Host(e.to_string()))?;
    f.call(&mut store, ())
        .map_err(|e| classify(e, &store, &limits))
}

impl Host {
    fn store(&self, limits: &Limits) -> Store<CallState> {
        let mut store = Store::new(
            &self.engine,
            CallState {
                memory_cap: limits.memory_bytes,
                memory_hit: false,
                logs_left: LOG_LINES_PER_CALL,
            },
        );
        store.limiter(|s| s);
        // Fuel is always on in this engine, so setting it cannot fail.
        let _ = store.set_fuel(limits.fuel);
        let ticks = limits
            .timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }
}

/// Turns a wasmtime error into the limit it hit, when it hit one.
fn classify(e: wasmtime::Error, store: &Store<CallState>, limits: &Limits) -> PluginError {
    if store.data().memory_hit {
        return PluginError::MemoryLimit {
            bytes: limits.memory_bytes,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginError::OutOfFuel {
            budget: limits.fuel,
        },
        Some(Trap::Interrupt) => PluginError::Timeout {
            ms: limits.timeout.as_millis(),
        },
        Some(Trap::StackOverflow) => PluginError::StackOverflow,
        Some(trap) => PluginError::Trap(trap.to_string()),
        None => PluginError::Trap(format!("{e:#}")),
    }
}

fn check_export(
    module: &Module,
    name: &'static str,
    expected: &'static str,
    ok: impl Fn(&ExternType) -> bool,
) -> Result<(), PluginError> {
    match module.get_export(name) {
        Some(t) if ok(&t) => Ok(()),
        _ => Err(PluginError::MissingExport { name, expected }),
    }
}

fn check_func(
    module: &Module,
    name: &'static str,
    params: &[ValType],
    results: &[ValType],
) -> Result<(), PluginError> {
    let expected = match name {
        "atlas_abi_version" => "func () -> i32",
        "atlas_alloc" => "func (i32) -> i32",
        _ => "func (i32, i32) -> i64",
    };
    check_export(module, name, expected, |t| match t {
        ExternType::Func(f) => {
            f.params().zip(params).all(|(a, b)| ValType::eq(&a, b))
                && f.params().len() == params.len()
                && f.results().zip(results).all(|(a, b)| ValType::eq(&a, b))
                && f.results().len() == results.len()
        }
        _ => false,
    })
}

/// `atlas.log(ptr, len)`: a UTF-8 line from the plugin, rate-limited per call.
fn host_log(mut caller: Caller<'_, CallState>, ptr: i32, len: i32) {
    if caller.data().logs_left == 0 {
        return;
    }
    caller.data_mut().logs_left -= 1;
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return;
    };
    let data = memory.data(&caller);
    let start = ptr as u32 as usize;
    let end = start.saturating_add((len as u32 as usize).min(LOG_LINE_BYTES));
    if let Some(bytes) = data.get(start..end) {
        tracing::info!(target: "atlas::plugin", line = %String::from_utf8_lossy(bytes), "plugin log");
    }
}

/// Advances the engine's epoch so deadlines fire; stops with the host.
fn spawn_ticker(host: Weak<Host>) {
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            let mut next = Instant::now();
            while let Some(h) = host.upgrade() {
                h.engine.increment_epoch();
                drop(h);
                next += EPOCH_TICK;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
        .expect("spawn the plugin epoch thread");
}
