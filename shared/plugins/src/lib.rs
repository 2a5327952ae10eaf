//! Tenant transform plugins as a service. The registry takes uploads
//! (checked by the sandbox, stored in the object store under their SHA-256,
//! recorded in `tenant_plugins`), versions and activation; `Transforms` is
//! the step ingest runs before staging: it finds a tenant's active plugin,
//! loads it once per container, and applies it to a batch.

pub mod http;
mod name;
mod registry;
mod settings;
mod transform;

pub use name::PluginName;
pub use registry::{Registry, RegistryError, Upload, Version};
pub use settings::{OnFailure, PluginSettings};
pub use transform::{Applied, PluginRun, TransformError, Transforms};

/// Where a module and its precompiled artifact live in the object store.
fn wasm_key(sha256: &str) -> String {
    format!("plugins/{sha256}.wasm")
}

/// Artifacts are keyed by their own hash, so none is ever overwritten:
/// the hash a version records always names the bytes it was made with.
fn artifact_key(artifact_sha256: &str) -> String {
    format!("plugins/{artifact_sha256}.cwasm")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
