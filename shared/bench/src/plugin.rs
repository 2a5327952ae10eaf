//! `atlas bench plugin`: the Fahrenheit-to-Celsius example in the sandbox
//! against the same logic compiled natively, in the same process and run,
//! once per ABI version: JSON (v1) and binary (v2).
//!
//! Both sides do the guest's part of a call on the same encoded batch:
//! decode, transform, encode. The WebAssembly side also pays for a fresh
//! instance and the copies in and out of its memory, as in production.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use atlas_core::RawReading;
use atlas_plugin_host::{Abi, Decoded, Host, Limits, Plugin};
use serde::Serialize;

use crate::round3;

use crate::BoxError;

#[derive(Debug, Clone)]
pub struct Options {
    /// The built example, version 2 (`bash plugins/build.sh`).
    pub wasm: PathBuf,
    /// The same example built as version 1.
    pub wasm_v1: PathBuf,
    pub batch: usize,
    pub iterations: usize,
}

impl Default for Options {
    fn default() -> Self {
        let built = "plugins/target/wasm32-unknown-unknown/release";
        Self {
            wasm: PathBuf::from(format!("{built}/fahrenheit_to_celsius.wasm")),
            wasm_v1: PathBuf::from(format!("{built}/fahrenheit_to_celsius_v1.wasm")),
            batch: 1_000,
            iterations: 300,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub records: usize,
    pub v1: AbiFigures,
    pub v2: AbiFigures,
    /// Loading the version-2 module from its precompiled artifact.
    pub cold_load_ms: f64,
    /// Compiling the version-2 `.wasm` from scratch, which the
    /// precompiled artifact avoids.
    pub compile_ms: f64,
    /// The payload's round trip alone (host encode, guest decode and
    /// encode of an identity transform, host decode), natively.
    pub json_codec_ns_per_record: f64,
    pub binary_codec_ns_per_record: f64,
}

/// One ABI version's figures: the sandboxed call against the same round
/// trip compiled natively.
#[derive(Debug, Clone, Serialize)]
pub struct AbiFigures {
    pub wasm_ns_per_record: f64,
    pub native_ns_per_record: f64,
    pub ratio: f64,
    pub instantiate_us_p50: f64,
    pub fuel_per_record: f64,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, BoxError> {
    std::fs::read(path).map_err(|e| {
        format!(
            "{}: {e}; build the example plugins first: bash plugins/build.sh",
            path.display()
        )
        .into()
    })
}

pub fn run(opts: &Options) -> Result<Report, BoxError> {
    let (wasm, wasm_v1) = (read(&opts.wasm)?, read(&opts.wasm_v1)?);
    let readings = batch(opts.batch);
    let host = Host::new()?;

    let started = Instant::now();
    let v2 = host.compile(&wasm)?;
    let compile_ms = ms(started.elapsed());
    let v1 = host.compile(&wasm_v1)?;
    for (plugin, abi) in [(&v1, Abi::Json), (&v2, Abi::Binary)] {
        if plugin.abi() != abi {
            return Err(format!(
                "expected ABI version {} in {:?}",
                abi.version(),
                plugin.abi()
            )
            .into());
        }
    }
    let artifact = v2.precompiled()?;
    let mut loads = (0..20)
        .map(|_| {
            let t = Instant::now();
            host.load(Some(&artifact), &wasm).map(|_| t.elapsed())
        })
        .collect::<Result<Vec<_>, _>>()?;

    eprintln!(
        "{} calls of {} readings each per ABI version, sandboxed and native, interleaved",
        opts.iterations, opts.batch
    );
    let v1 = measure(&host, &v1, &readings, opts.iterations, |input| {
        atlas_plugin_sdk::run(input, fahrenheit_to_celsius::transform)
    })?;
    let v2 = measure(&host, &v2, &readings, opts.iterations, |input| {
        atlas_plugin_sdk::run_binary(input, fahrenheit_to_celsius::transform)
    })?;
    let (json_codec, binary_codec) = crate::codec::measure(&readings, opts.iterations)?;
    Ok(Report {
        bench: "plugin",
        records: opts.batch,
        v1,
        v2,
        cold_load_ms: round3(ms(median(&mut loads))),
        compile_ms: round3(compile_ms),
        json_codec_ns_per_record: round3(json_codec),
        binary_codec_ns_per_record: round3(binary_codec),
    })
}

/// Calls in the sandbox interleaved with the guest's part compiled into
/// this process (`native`), on the same encoded batch. Both sides leave out
/// the host's encode and decode, which a call pays either way (the codec
/// figures measure them).
fn measure(
    host: &Host,
    plugin: &Plugin,
    readings: &[RawReading],
    iterations: usize,
    native: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<AbiFigures, BoxError> {
    let (abi, limits) = (plugin.abi(), Limits::default());
    let input = abi.encode(readings);
    let first = plugin.call(host, &input, &limits)?;
    let (sandboxed, natively): (Decoded, Decoded) =
        (abi.decode(&first.bytes)?, abi.decode(&native(&input))?);
    if format!("{sandboxed:?}") != format!("{natively:?}") {
        return Err("the sandboxed and native runs disagree".into());
    }
    let (mut wasm_t, mut native_t, mut inst_t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        let t = Instant::now();
        let out = plugin.call(host, &input, &limits)?;
        wasm_t.push(t.elapsed());
        inst_t.push(out.instantiate);
        let t = Instant::now();
        std::hint::black_box(native(&input));
        native_t.push(t.elapsed());
    }
    let per_record = |d: Duration| d.as_nanos() as f64 / readings.len() as f64;
    let (w, n) = (
        per_record(median(&mut wasm_t)),
        per_record(median(&mut native_t)),
    );
    Ok(AbiFigures {
        wasm_ns_per_record: round3(w),
        native_ns_per_record: round3(n),
        ratio: round3(w / n),
        instantiate_us_p50: round3(median(&mut inst_t).as_nanos() as f64 / 1000.0),
        fuel_per_record: round3(first.fuel_used as f64 / readings.len() as f64),
    })
}

/// A batch with half temperatures (converted) and half other readings.
fn batch(n: usize) -> Vec<RawReading> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|i| {
            let attribute = if i % 2 == 0 { "temperature" } else { "status" };
            let value = if i % 2 == 0 {
                serde_json::json!(f64::from(rng.i32(-400..1200)) / 10.0)
            } else {
                serde_json::json!("online")
            };
            RawReading {
                entity_id: rng.i64(0..1_000_000).into(),
                entity_type: Some("device".into()),
                attribute: attribute.into(),
                value,
                ts: Some("2026-11-24T10:00:00.123456Z".into()),
            }
        })
        .collect()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// For `atlas bench ingest --plugin`: uploads `wasm` through the registry
/// (checked like any upload) for tenant 1, makes the same version every
/// bench tenant's active plugin, and returns the transform step ingest
/// would run, loading from a scratch directory.
pub async fn activate_for_all(
    tenants: usize,
    wasm: &[u8],
    app: &atlas_store::Pool,
    worker: &atlas_store::Pool,
    ttl: Duration,
) -> Result<atlas_plugins::Transforms, BoxError> {
    let dir = std::env::temp_dir().join(format!("atlas-bench-objects-{}", std::process::id()));
    let objects: std::sync::Arc<dyn atlas_objects::ObjectStore> =
        std::sync::Arc::new(atlas_objects::LocalDir::new(dir));
    let host = Host::new()?;
    let registry = atlas_plugins::Registry::new(app.clone(), objects.clone(), host.clone());
    let tenant = atlas_core::TenantId::new(1)?;
    let name = atlas_plugins::PluginName::parse("bench")?;
    let up = registry
        .upload(tenant, &name, wasm.to_vec(), Default::default())
        .await?;
    registry.activate(tenant, &name, up.version.version).await?;
    worker
        .get()
        .await?
        .execute(
            "INSERT INTO tenant_plugins (tenant_id, name, version, sha256, size_bytes, fuel, timeout_ms, \
                                         memory_bytes, output_bytes, on_failure, active) \
             SELECT t, name, version, sha256, size_bytes, fuel, timeout_ms, memory_bytes, output_bytes, \
                    on_failure, true \
             FROM tenant_plugins, generate_series(2, $1::bigint) t WHERE tenant_id = 1 AND active",
            &[&(tenants as i64)],
        )
        .await?;
    eprintln!(
        "plugin {} ({} bytes, sha256 {}) active for all {tenants} tenants",
        name, up.version.size_bytes, up.version.sha256
    );
    Ok(atlas_plugins::Transforms::new(
        app.clone(),
        objects,
        host,
        ttl,
    ))
}
