//! The payload's round trip alone, natively, for both ABI versions on the
//! same batch: the host encodes the readings, the guest (the SDK) decodes
//! them and encodes its answer (an identity transform), the host decodes
//! that. Real code on both sides: what a plugin call pays besides the
//! sandbox and the transform itself.

use atlas_core::RawReading;
use atlas_plugin_host::{Abi, Decoded};

/// (JSON, binary) nanoseconds per reading for the full round trip, medians
/// of `iterations`.
pub fn measure(readings: &[RawReading], iterations: usize) -> Result<(f64, f64), String> {
    let round_trip = |abi: Abi, guest: fn(&[u8]) -> Vec<u8>| {
        move || -> Result<usize, String> {
            match abi
                .decode(&guest(&abi.encode(readings)))
                .map_err(|e| e.to_string())?
            {
                Decoded::Readings(r) => Ok(r.len()),
                Decoded::Rejected(e) => Err(e),
            }
        }
    };
    let json = round_trip(Abi::Json, |b| atlas_plugin_sdk::run(b, Ok));
    let binary = round_trip(Abi::Binary, |b| atlas_plugin_sdk::run_binary(b, Ok));
    if json()? != readings.len() || binary()? != readings.len() {
        return Err("a codec lost readings".into());
    }
    let n = readings.len() as f64;
    let time = |f: &dyn Fn() -> Result<usize, String>| -> Result<f64, String> {
        let mut t = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let s = std::time::Instant::now();
            std::hint::black_box(f()?);
            t.push(s.elapsed().as_nanos() as f64 / n);
        }
        t.sort_by(f64::total_cmp);
        Ok(t[t.len() / 2])
    };
    Ok((time(&json)?, time(&binary)?))
}
