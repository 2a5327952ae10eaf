//! The example plugins, built from source by `plugins/build.sh`, run in
//! the sandbox and do what they say, in both ABI versions.

use atlas_plugin_host::{Abi, Decoded, Host, Limits, Plugin};
use serde_json::Value;

fn example(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../plugins/target/wasm32-unknown-unknown/release/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}; build the examples first with `bash plugins/build.sh`")
    })
}

/// The plugin's answer to a batch written as JSON, as JSON, whichever
/// payload the plugin speaks.
fn answer(host: &Host, plugin: &Plugin, batch: &str) -> Value {
    let Ok(Decoded::Readings(readings)) = Abi::Json.decode(batch.as_bytes()) else {
        panic!("not a batch: {batch}");
    };
    match plugin.transform(host, &readings, &Limits::default()) {
        Ok((Decoded::Readings(r), _)) => serde_json::json!({ "readings": r }),
        Ok((Decoded::Rejected(e), _)) => serde_json::json!({ "error": e }),
        Err(e) => panic!("{e}"),
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// Version 2 is what the SDK builds by default; version 1 modules keep
/// working unchanged. The same transform gives the same answers in both.
#[test]
fn fahrenheit_to_celsius_converts_a_batch_in_either_abi() {
    let host = Host::new().unwrap();
    for (name, abi) in [
        ("fahrenheit_to_celsius", Abi::Binary),
        ("fahrenheit_to_celsius_v1", Abi::Json),
    ] {
        let plugin = host
            .compile(&example(name))
            .expect("the example passes the upload checks");
        assert_eq!(plugin.abi(), abi, "{name}");
        let batch = r#"{"readings":[{"entity_id":7,"entity_type":"device","attribute":"temperature","value":98.6,"ts":"2026-11-24T10:00:00Z"},{"entity_id":7,"attribute":"status","value":"ok"}]}"#;
        assert_eq!(
            answer(&host, &plugin, batch),
            json(
                r#"{"readings":[{"entity_id":7,"entity_type":"device","attribute":"temperature","value":37.0,"ts":"2026-11-24T10:00:00Z"},{"entity_id":7,"attribute":"status","value":"ok"}]}"#
            ),
            "{name}"
        );
        let (_, out) = plugin
            .transform(
                &host,
                &[serde_json::from_str(r#"{"entity_id":1,"attribute":"a","value":1}"#).unwrap()],
                &Limits::default(),
            )
            .unwrap();
        assert!(out.fuel_used > 0 && out.fuel_used < Limits::default().fuel);

        assert_eq!(
            answer(
                &host,
                &plugin,
                r#"{"readings":[{"entity_id":7,"attribute":"temperature","value":"warm"}]}"#
            ),
            json(r#"{"error":"temperature of entity 7 is not a number"}"#),
            "{name}"
        );
        // What the SDK cannot read is refused with its reason, not a trap.
        let garbage = plugin.call(&host, b"not a batch", &Limits::default());
        let refusal = match abi.decode(&garbage.unwrap().bytes).unwrap() {
            Decoded::Rejected(m) => m,
            Decoded::Readings(r) => panic!("{name} read garbage as {r:?}"),
        };
        assert!(refusal.starts_with("invalid input"), "{name}: {refusal}");
    }
}

/// Every example passes the upload checks and transforms one batch as its
/// description says; the C one proves the ABI needs no Rust.
#[test]
fn every_example_passes_upload_and_does_its_job() {
    let host = Host::new().unwrap();
    let cases: [(&str, &str, &str); 5] = [
        (
            "rename_attributes",
            r#"{"readings":[{"entity_id":1,"attribute":"hum","value":40},{"entity_id":1,"attribute":"x","value":1}]}"#,
            r#"{"readings":[{"entity_id":1,"attribute":"humidity","value":40},{"entity_id":1,"attribute":"x","value":1}]}"#,
        ),
        (
            "drop_pii",
            r#"{"readings":[{"entity_id":1,"attribute":"phone","value":"555"},{"entity_id":1,"attribute":"humidity","value":40}]}"#,
            r#"{"readings":[{"entity_id":1,"attribute":"humidity","value":40}]}"#,
        ),
        (
            "derived_power",
            r#"{"readings":[{"entity_id":3,"attribute":"voltage","value":12},{"entity_id":3,"attribute":"current","value":0.5}]}"#,
            r#"{"readings":[{"entity_id":3,"attribute":"voltage","value":12},{"entity_id":3,"attribute":"current","value":0.5},{"entity_id":3,"attribute":"power","value":6.0}]}"#,
        ),
        (
            "range_validator",
            r#"{"readings":[{"entity_id":4,"attribute":"temperature","value":75}]}"#,
            r#"{"error":"reading 0 (entity 4): temperature 75 is outside -90..=60"}"#,
        ),
        (
            "drop_debug_c",
            r#"{"readings": [{"entity_id":5,"attribute":"debug_heap","value":1}, {"entity_id":5,"entity_type":"pump","attribute":"status","value":"a,\"}b","ts":"2026-11-24T10:00:00Z"}, {"entity_id":6,"attribute":"debug","value":null}]}"#,
            r#"{"readings":[{"entity_id":5,"entity_type":"pump","attribute":"status","value":"a,\"}b","ts":"2026-11-24T10:00:00Z"}, {"entity_id":6,"attribute":"debug","value":null}]}"#,
        ),
    ];
    for (name, input, expected) in cases {
        let (plugin, dry_run_fuel) =
            atlas_plugin_host::check_upload(&host, &example(name), &Limits::default())
                .unwrap_or_else(|e| panic!("{name} fails the upload checks: {e}"));
        assert!(dry_run_fuel > 0, "{name}");
        assert_eq!(plugin.abi(), Abi::Binary, "{name}");
        assert_eq!(answer(&host, &plugin, input), json(expected), "{name}");
    }
}

#[test]
fn the_c_example_refuses_what_is_not_a_batch() {
    let host = Host::new().unwrap();
    let plugin = host.compile(&example("drop_debug_c")).unwrap();
    let good = Abi::Binary
        .encode(&[
            serde_json::from_str(r#"{"entity_id":1,"attribute":"status","value":"ok"}"#).unwrap(),
        ]);
    let with = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    for bad in [
        Vec::new(),
        good[..12].to_vec(),
        with(0, &[1]),                // an error answer, not a batch
        with(4, &[0xff, 0xff, 0xff]), // more records than bytes
        with(8, &[0xff, 0xff, 0xff]), // more strings than bytes
        with(16 + 16, &[9]),          // an attribute past the string table
    ] {
        let out = plugin.call(&host, &bad, &Limits::default()).unwrap();
        assert!(
            matches!(Abi::Binary.decode(&out.bytes), Ok(Decoded::Rejected(m)) if m.contains("not a batch")),
            "{bad:?} -> {:?}",
            Abi::Binary.decode(&out.bytes)
        );
    }
}
