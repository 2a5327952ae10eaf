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
