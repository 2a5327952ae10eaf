//! Write an Atlas transform plugin as one function over a batch of
//! readings; this crate hides the ABI (`plugins/ABI.md`): memory, buffers,
//! the payload and the exports. `plugin!` speaks ABI version 2 (binary),
//! `plugin_v1!` version 1 (JSON); the function is the same for both.
//!
//! ```ignore
//! use atlas_plugin_sdk::{plugin, Reading};
//!
//! fn transform(readings: Vec<Reading>) -> Result<Vec<Reading>, String> {
//!     Ok(readings.into_iter().filter(|r| r.attribute != "ssn").collect())
//! }
//! plugin!(transform);
//! ```
//!
//! No dependencies, and Rust 1.63 is enough, so any toolchain with a
//! wasm32 standard library builds it.

mod binary;
#[cfg(target_arch = "wasm32")]
mod bump;
mod json;
pub mod layout;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: bump::Bump = bump::Bump;

/// The ABI version `plugin!` exports: the binary payload.
pub const ABI_VERSION: i32 = 2;
/// The ABI version `plugin_v1!` exports: the JSON payload.
pub const JSON_ABI_VERSION: i32 = 1;

/// A reading's value, as JSON carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl Value {
    /// The number, whether sent as an integer or not.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// As JSON would show it (a string without quotes), for messages.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{}", i),
            Value::Float(x) => write!(f, "{}", x),
            Value::Bool(b) => write!(f, "{}", b),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// One reading, as in the ingest request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub entity_id: i64,
    pub entity_type: Option<String>,
    pub attribute: String,
    pub value: Value,
    /// RFC 3339, or `None` for "when it was received".
    pub ts: Option<String>,
}

/// The transform a plugin is written as.
pub type Transform = fn(Vec<Reading>) -> Result<Vec<Reading>, String>;

/// Decodes a JSON batch (ABI version 1), runs `f` on it and encodes its
/// answer: the whole round trip a call makes, usable natively too
/// (benchmarks, and tests that write their batches by hand).
pub fn run(input: &[u8], f: impl FnOnce(Vec<Reading>) -> Result<Vec<Reading>, String>) -> Vec<u8> {
    round_trip(
        json::decode_batch(input).and_then(f),
        input.len(),
        json::encode_batch,
        json::encode_error,
    )
}

/// `run` for a binary batch (ABI version 2).
pub fn run_binary(
    input: &[u8],
    f: impl FnOnce(Vec<Reading>) -> Result<Vec<Reading>, String>,
) -> Vec<u8> {
    round_trip(
        binary::decode_batch(input).and_then(f),
        input.len(),
        binary::encode_batch,
        binary::encode_error,
    )
}

fn round_trip(
    result: Result<Vec<Reading>, String>,
    input_len: usize,
    encode: fn(&[Reading], &mut Vec<u8>),
    error: fn(&str, &mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(input_len + 16);
    match result {
        Ok(readings) => encode(&readings, &mut out),
        Err(message) => error(&message, &mut out),
    }
    out
}

/// Sends a line to the host's log (at most 20 per call are kept).
pub fn log(line: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        #[link(wasm_import_module = "atlas")]
        extern "C" {
            #[link_name = "log"]
            fn host_log(ptr: *const u8, len: usize);
        }
        // SAFETY: the host reads `len` bytes at `ptr`, inside our memory.
        unsafe { host_log(line.as_ptr(), line.len()) }
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = line;
}

#[doc(hidden)]
pub fn __alloc(len: i32) -> i32 {
    // Each call runs in a fresh instance, so nothing is ever freed.
    let mut buf = Vec::<u8>::with_capacity(len.max(0) as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as i32
}

#[doc(hidden)]
pub fn __transform(ptr: i32, len: i32, version: i32, f: Transform) -> i64 {
    // SAFETY: the host wrote `len` bytes at `ptr`, which `__alloc` handed out.
    let input = unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    let out = if version == JSON_ABI_VERSION {
        run(input, f)
    } else {
        run_binary(input, f)
    };
    let (out_ptr, out_len) = (out.as_ptr() as usize as u64, out.len() as u64);
    std::mem::forget(out);
    ((out_ptr << 32) | out_len) as i64
}

/// Exports ABI version 2 (binary) around
/// `transform: fn(Vec<Reading>) -> Result<Vec<Reading>, String>`.
#[macro_export]
macro_rules! plugin {
    ($transform:path) => {
        $crate::__exports!($transform, $crate::ABI_VERSION);
    };
}

/// Exports ABI version 1 (JSON) around the same kind of function, for a
/// host that predates version 2.
#[macro_export]
macro_rules! plugin_v1 {
    ($transform:path) => {
        $crate::__exports!($transform, $crate::JSON_ABI_VERSION);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __exports {
    ($transform:path, $version:expr) => {
        #[no_mangle]
        pub extern "C" fn atlas_abi_version() -> i32 {
            $version
        }

        #[no_mangle]
        pub extern "C" fn atlas_alloc(len: i32) -> i32 {
            $crate::__alloc(len)
        }

        #[no_mangle]
        pub extern "C" fn atlas_transform(ptr: i32, len: i32) -> i64 {
            $crate::__transform(ptr, len, $version, $transform)
        }
    };
}
