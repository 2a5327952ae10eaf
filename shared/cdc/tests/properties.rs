//! The decoder meets whatever a topic holds: any input gives a record or a
//! typed error, never a panic, and a precise decimal always comes back
//! exactly.

use atlas_cdc::debezium::decode;
use atlas_cdc::{ChangeData, Options, Record, Row};
use base64::Engine;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z_0-9=+/:.-]{0,24}".prop_map(serde_json::Value::from),
        Just(json!("__debezium_unavailable_value")),
        Just(json!("2026-11-24T10:15:30Z")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::hash_map(
                prop_oneof![
                    Just("op".to_owned()),
                    Just("source".to_owned()),
                    Just("after".to_owned()),
                    Just("before".to_owned()),
                    Just("payload".to_owned()),
                    Just("schema".to_owned()),
                    Just("table".to_owned()),
                    Just("tenant_id".to_owned()),
                    Just("entity_id".to_owned()),
                    Just("value_decimal".to_owned()),
                    Just("__deleted".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_typed(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode("atlas.public.entity_values_ts", Some(&bytes), &Options::default());
    }

    #[test]
    fn any_json_decodes_or_fails_typed(v in json_value(), topic in prop_oneof![
        Just("atlas.public.entity_values_ts"), Just("atlas.public.tenants"),
        Just("atlas.transaction"), Just("__debezium-heartbeat.atlas"), Just("x")]) {
        let _ = decode(topic, Some(v.to_string().as_bytes()), &Options::default());
    }

    #[test]
    fn precise_decimals_are_exact(unscaled in -(10i128.pow(20) - 1)..10i128.pow(20), scale in 0u32..=5) {
        // The shortest two's-complement bytes, as Java's BigInteger writes them.
        let full = unscaled.to_be_bytes();
        let skip = (0..15)
            .take_while(|&i| {
                let (b, next) = (full[i], full[i + 1]);
                (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0)
            })
            .count();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&full[skip..]);
        let v = json!({
            "schema": {"type": "struct", "fields": [
                {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                 "parameters": {"scale": scale.to_string()}, "field": "value_decimal"}]},
            "payload": {"entity_id": 1, "tenant_id": 1, "attribute_id": 1,
                        "value_decimal": b64, "ingested_at": "2026-11-24T10:15:30Z"}});
        let got = decode("atlas.public.entity_values_ts", Some(v.to_string().as_bytes()), &Options::default());
        let Ok(Record::Change(c)) = got else { panic!("{got:?}") };
        let ChangeData::Upsert(Row::Value(row)) = c.data else { panic!("{:?}", c.data) };
        prop_assert_eq!(row.value_decimal, Some(Decimal::from_i128_with_scale(unscaled, scale)));
    }
}
