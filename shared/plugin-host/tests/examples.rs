//! The example plugins, built from source by `plugins/build.sh`, run in
//! the sandbox and do what they say.

use atlas_plugin_host::{Host, Limits};

fn example(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../plugins/target/wasm32-unknown-unknown/release/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e}; build the examples first with `bash plugins/build.sh`")
    })
}

#[test]
fn fahrenheit_to_celsius_converts_a_batch() {
    let host = Host::new().unwrap();
    let plugin = host
        .compile(&example("fahrenheit_to_celsius"))
        .expect("the example passes the upload checks");
    let input = br#"{"readings":[{"entity_id":7,"entity_type":"device","attribute":"temperature","value":98.6,"ts":"2026-11-24T10:00:00Z"},{"entity_id":7,"attribute":"status","value":"ok"}]}"#;
    let out = plugin.call(&host, input, &Limits::default()).unwrap();
    assert_eq!(
        String::from_utf8(out.bytes).unwrap(),
        r#"{"readings":[{"entity_id":7,"entity_type":"device","attribute":"temperature","value":37.0,"ts":"2026-11-24T10:00:00Z"},{"entity_id":7,"attribute":"status","value":"ok"}]}"#
    );
    assert!(out.fuel_used > 0 && out.fuel_used < Limits::default().fuel);

    let out = plugin
        .call(
            &host,
            br#"{"readings":[{"entity_id":7,"attribute":"temperature","value":"warm"}]}"#,
            &Limits::default(),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8(out.bytes).unwrap(),
        r#"{"error":"temperature of entity 7 is not a number"}"#
    );

    let out = plugin.call(&host, b"not json", &Limits::default()).unwrap();
    assert!(
        String::from_utf8(out.bytes)
            .unwrap()
            .starts_with(r#"{"error":"invalid input JSON"#)
    );
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
            r#"{"readings": [{"entity_id":5,"attribute":"debug_heap","value":1}, {"entity_id":5,"attribute":"status","value":"a,\"}b"}]}"#,
            r#"{"readings":[{"entity_id":5,"attribute":"status","value":"a,\"}b"}]}"#,
        ),
    ];
    for (name, input, expected) in cases {
        let (plugin, dry_run_fuel) =
            atlas_plugin_host::check_upload(&host, &example(name), &Limits::default())
                .unwrap_or_else(|e| panic!("{name} fails the upload checks: {e}"));
        assert!(dry_run_fuel > 0, "{name}");
        let out = plugin
            .call(&host, input.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(String::from_utf8(out.bytes).unwrap(), expected, "{name}");
    }
}

#[test]
fn the_c_example_refuses_what_is_not_a_batch() {
    let host = Host::new().unwrap();
    let plugin = host.compile(&example("drop_debug_c")).unwrap();
    for bad in [
        &b"[]"[..],
        b"{\"readings\":[1]}",
        b"{\"readings\":[{\"a\":\"",
        b"",
    ] {
        let out = plugin.call(&host, bad, &Limits::default()).unwrap();
        assert!(
            String::from_utf8(out.bytes.clone())
                .unwrap()
                .starts_with(r#"{"error":"#),
            "{:?} -> {:?}",
            String::from_utf8_lossy(bad),
            String::from_utf8_lossy(&out.bytes)
        );
    }
}
