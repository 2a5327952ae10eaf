//! The decoder meets whatever a topic holds: any input gives a record or a
//! typed error, never a panic. What the local tap emits decodes back to
//! the same row, a precise decimal exactly.

use atlas_cdc::debezium::decode;
use atlas_cdc::emit::{self, At};
use atlas_cdc::encoding::Datum;
use atlas_cdc::tables::Columns;
use atlas_cdc::{ChangeData, Key, Op, Options, Record, Row, Table};
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
    fn what_the_tap_emits_decodes_to_the_same_row(
        ids in (1i64.., 1i64.., 1i64..),
        unscaled in -(10i128.pow(20) - 1)..10i128.pow(20),
        text in proptest::option::of("\\PC{0,24}"),
        at in (0i64..4_102_444_800, 0u32..1_000_000),
        op in prop_oneof![Just(Op::Create), Just(Op::Update), Just(Op::Read)],
        lsn in 0i64..,
    ) {
        let ingested_at = chrono::DateTime::from_timestamp(at.0, at.1 * 1000).unwrap();
        let decimal = Decimal::from_i128_with_scale(unscaled, 5);
        let mut cols = Columns::new();
        cols.insert("tenant_id", Datum::Int64(ids.0));
        cols.insert("entity_id", Datum::Int64(ids.1));
        cols.insert("attribute_id", Datum::Int64(ids.2));
        cols.insert("value", text.clone().map_or(Datum::Null, Datum::Text));
        cols.insert("value_decimal", Datum::Decimal(decimal));
        cols.insert("ingested_at", Datum::Timestamp(ingested_at));
        let key = ["tenant_id", "entity_id", "attribute_id", "ingested_at"];
        let at = At { lsn, commit_ts_ms: 1_764_000_000_000 };
        let out = emit::flattened("atlas", Table::Values, op, at, &key, &cols);
        prop_assert_eq!(&out.topic, "atlas.public.entity_values_ts");
        let got = decode(&out.topic, Some(out.value.to_string().as_bytes()), &Options::default());
        let Ok(Record::Change(c)) = got else { panic!("{got:?}") };
        prop_assert_eq!(c.op, Some(op));
        prop_assert_eq!(c.source.lsn, Some(lsn));
        let ChangeData::Upsert(Row::Value(row)) = c.data else { panic!("{:?}", c.data) };
        prop_assert_eq!(row.value_decimal, Some(decimal));
        prop_assert_eq!(row.value, text);
        prop_assert_eq!(row.ingested_at, ingested_at);
        prop_assert_eq!((row.tenant_id, row.entity_id, row.attribute_id), ids);
        prop_assert_eq!(&out.key["payload"]["ingested_at"], &out.value["payload"]["ingested_at"]);
    }

    #[test]
    fn a_deletion_the_tap_emits_decodes_to_its_key(ids in (1i64.., 1i64..), lsn in 0i64..) {
        let mut cols = Columns::new();
        cols.insert("tenant_id", Datum::Int64(ids.0));
        cols.insert("entity_id", Datum::Int64(ids.1));
        let at = At { lsn, commit_ts_ms: 1 };
        let out = emit::flattened("atlas", Table::Projection, Op::Delete, at, &["tenant_id", "entity_id"], &cols);
        let got = decode(&out.topic, Some(out.value.to_string().as_bytes()), &Options::default());
        let Ok(Record::Change(c)) = got else { panic!("{got:?}") };
        prop_assert_eq!(c.data, ChangeData::Delete(Key::Projection { tenant_id: ids.0, entity_id: ids.1 }));
    }
}
