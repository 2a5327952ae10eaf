//! Every form the Debezium PostgreSQL connector writes, decoded. The two
//! fixtures are whole records as the JSON converter writes them with
//! `schemas.enable=true` (the envelope, and the same change flattened by
//! `ExtractNewRecordState` with `add.fields=op,table,lsn,source.ts_ms`);
//! the rest are built here from Debezium's documented payloads.

use atlas_cdc::debezium::{Boundary, TxStatus, decode};
use atlas_cdc::encoding::{DecimalMode, Document};
use atlas_cdc::tables::{EntityRow, ProjectionRow, TenantRow, ValueRow};
use atlas_cdc::{Change, ChangeData, DecodeError, Key, Op, Options, Record, Row, Source, Table};
use serde_json::{Value, json};

const ENVELOPE: &str = include_str!("fixtures/envelope_with_schema.json");
const FLATTENED: &str = include_str!("fixtures/flattened_with_schema.json");
const TOPIC: &str = "atlas.public.entity_values_ts";

fn dec(topic: &str, v: &Value) -> Result<Record, DecodeError> {
    decode(topic, Some(v.to_string().as_bytes()), &Options::default())
}

fn change(r: Result<Record, DecodeError>) -> Change {
    match r {
        Ok(Record::Change(c)) => c,
        other => panic!("expected a change, got {other:?}"),
    }
}

/// The reading both fixtures carry: numeric(20, 5) at its full 20 digits.
fn fixture_reading() -> ValueRow {
    ValueRow {
        tenant_id: 7,
        entity_id: 4242,
        attribute_id: 19,
        value: None,
        value_int: None,
        value_decimal: Some("123456789012345.67891".parse().unwrap()),
        value_bool: None,
        value_timestamp: None,
        ingested_at: "2026-11-24T10:15:30.123456Z".parse().unwrap(),
    }
}

fn payload(fixture: &str) -> Value {
    serde_json::from_str::<Value>(fixture).unwrap()["payload"].clone()
}

#[test]
fn the_full_envelope_with_its_schema() {
    let c = change(decode(
        TOPIC,
        Some(ENVELOPE.as_bytes()),
        &Options::default(),
    ));
    assert_eq!(c.table, Table::Values);
    assert_eq!(c.op, Some(Op::Create));
    assert_eq!(
        c.source,
        Source {
            lsn: Some(24_024_232),
            tx_id: Some(771),
            ts_ms: Some(1_763_979_330_200),
            snapshot: false
        }
    );
    assert_eq!(c.data, ChangeData::Upsert(Row::Value(fixture_reading())));
}

#[test]
fn the_envelope_without_the_schema_wrapper_takes_the_columns_scale() {
    // schemas.enable=false: the decimal's bytes come without their scale.
    let c = change(dec(TOPIC, &payload(ENVELOPE)));
    assert_eq!(c.data, ChangeData::Upsert(Row::Value(fixture_reading())));
}

#[test]
fn the_flattened_form_with_and_without_its_schema() {
    let with = change(decode(
        TOPIC,
        Some(FLATTENED.as_bytes()),
        &Options::default(),
    ));
    let without = change(dec(TOPIC, &payload(FLATTENED)));
    for c in [with, without] {
        assert_eq!(c.table, Table::Values);
        assert_eq!(c.op, Some(Op::Create));
        assert_eq!(c.source.lsn, Some(24_024_232));
        assert_eq!(c.source.ts_ms, Some(1_763_979_330_200));
        assert_eq!(c.data, ChangeData::Upsert(Row::Value(fixture_reading())));
    }
    // The seed's configuration adds no fields: the table comes from the topic.
    let mut bare = payload(FLATTENED);
    bare.as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("__"));
    let c = change(dec("atlas.public.entity_values_ts_2026_11", &bare));
    assert_eq!((c.table, c.op), (Table::Values, None));
    assert_eq!(c.source, Source::default());
}

#[test]
fn every_op() {
    let src = json!({"version": "2.7.3.Final", "connector": "postgresql", "name": "atlas",
        "ts_ms": 1_763_979_330_200i64, "snapshot": "false", "db": "atlas", "schema": "public",
        "table": "entities", "txId": 5, "lsn": 99});
    let row = json!({"entity_id": 12, "tenant_id": 3, "entity_type": "pump",
        "created_at": "2026-11-24T10:00:00Z", "is_deleted": false});
    let entity = ChangeData::Upsert(Row::Entity(EntityRow {
        tenant_id: 3,
        entity_id: 12,
        entity_type: "pump".into(),
        is_deleted: false,
    }));
    let topic = "atlas.public.entities";
    for (op, expected) in [("c", Op::Create), ("u", Op::Update), ("r", Op::Read)] {
        let c = change(dec(
            topic,
            &json!({"before": null, "after": row, "source": src, "op": op, "ts_ms": 1}),
        ));
        assert_eq!((c.op, &c.data), (Some(expected), &entity));
    }
    // A delete under the default replica identity: the key alone.
    let c = change(dec(
        topic,
        &json!({"before": {"entity_id": 12, "tenant_id": 3, "entity_type": null,
                           "created_at": null, "is_deleted": null},
                "after": null, "source": src, "op": "d", "ts_ms": 1}),
    ));
    assert_eq!(
        c.data,
        ChangeData::Delete(Key::Entity {
            tenant_id: 3,
            entity_id: 12
        })
    );
    let c = change(dec(
        topic,
        &json!({"before": null, "after": null, "source": src, "op": "t", "ts_ms": 1}),
    ));
    assert_eq!((c.op, c.data), (Some(Op::Truncate), ChangeData::Truncate));
    // Snapshot reads say so, in Debezium 1.x's form and 2.x's.
    for snapshot in [json!("true"), json!("last"), json!(true)] {
        let mut s = src.clone();
        s["snapshot"] = snapshot;
        let c = change(dec(
            topic,
            &json!({"before": null, "after": row, "source": s, "op": "r"}),
        ));
        assert!(c.source.snapshot);
    }
    assert_eq!(
        dec(
            topic,
            &json!({"before": null, "after": row, "source": src, "op": "x"})
        ),
        Err(DecodeError::Op("x".into()))
    );
}

#[test]
fn a_flattened_delete_is_rewritten_or_marked() {
    let key = Key::Projection {
        tenant_id: 3,
        entity_id: 12,
    };
    for marker in [json!({"__deleted": "true"}), json!({"__op": "d"})] {
        let mut v = json!({"entity_id": 12, "tenant_id": 3, "hot_attrs": null,
                           "hot_attrs_ts": null, "updated_at": null});
        v.as_object_mut()
            .unwrap()
            .extend(marker.as_object().unwrap().clone());
        let c = change(dec("atlas.public.entity_jsonb", &v));
        assert_eq!(c.data, ChangeData::Delete(key.clone()));
    }
}

#[test]
fn tombstones_heartbeats_and_transaction_boundaries() {
    let opts = Options::default();
    assert_eq!(decode(TOPIC, None, &opts), Ok(Record::Tombstone));
    assert_eq!(decode(TOPIC, Some(b""), &opts), Ok(Record::Tombstone));
    assert_eq!(
        dec(TOPIC, &json!({"schema": null, "payload": null})),
        Ok(Record::Tombstone)
    );
    assert_eq!(
        dec(
            "__debezium-heartbeat.atlas",
            &json!({"schema": {"type": "struct", "fields": [{"type": "int64", "optional": false, "field": "ts_ms"}],
                               "optional": false, "name": "io.debezium.connector.common.Heartbeat"},
                    "payload": {"ts_ms": 1_763_979_330_200i64}})
        ),
        Ok(Record::Heartbeat {
            ts_ms: Some(1_763_979_330_200)
        })
    );
    assert_eq!(
        dec(
            "atlas.transaction",
            &json!({"status": "BEGIN", "id": "771:24024232", "event_count": null,
                    "data_collections": null, "ts_ms": 1_763_979_330_200i64})
        ),
        Ok(Record::Transaction(Boundary {
            status: TxStatus::Begin,
            id: "771:24024232".into(),
            event_count: None,
            ts_ms: Some(1_763_979_330_200)
        }))
    );
    let end = dec(
        "atlas.transaction",
        &json!({"status": "END", "id": "771:24024232", "event_count": 2,
                "data_collections": [{"data_collection": "public.entity_values_ts", "event_count": 2}],
                "ts_ms": 1_763_979_330_200i64}),
    );
    assert!(matches!(
        end,
        Ok(Record::Transaction(Boundary {
            status: TxStatus::End,
            event_count: Some(2),
            ..
        }))
    ));
}

#[test]
fn tenants_attributes_and_projections_with_their_encodings() {
    let c = change(dec(
        "atlas.public.tenants",
        &json!({"tenant_id": 3, "tenant_name": "Acme", "created_at": "2026-11-01T00:00:00Z",
                "is_active": true, "allow_auto_register": false, "__op": "u"}),
    ));
    assert_eq!(
        c.data,
        ChangeData::Upsert(Row::Tenant(TenantRow {
            tenant_id: 3,
            tenant_name: "Acme".into(),
            is_active: true
        }))
    );
    // JSONB arrives as an io.debezium.data.Json string; a document an
    // update did not touch arrives as Debezium's placeholder.
    let c = change(dec(
        "atlas.public.entity_jsonb_p7",
        &json!({"entity_id": 12, "tenant_id": 3,
                "hot_attrs": "{\"status\": \"online\", \"priority\": 9}",
                "hot_attrs_ts": "__debezium_unavailable_value",
                "updated_at": "2026-11-24T10:15:30.5+00:00"}),
    ));
    assert_eq!(
        c.data,
        ChangeData::Upsert(Row::Projection(ProjectionRow {
            tenant_id: 3,
            entity_id: 12,
            hot_attrs: Some(Document::parse(r#"{"status": "online", "priority": 9}"#).unwrap()),
            hot_attrs_ts: None,
            updated_at: "2026-11-24T10:15:30.5Z".parse().unwrap(),
        }))
    );
}

#[test]
fn decimals_in_string_and_double_modes() {
    let reading = |v: Value| {
        json!({"entity_id": 1, "tenant_id": 1, "attribute_id": 1, "value_decimal": v,
               "ingested_at": "2026-11-24T10:15:30Z"})
    };
    let decimal_of = |r: Record| match r {
        Record::Change(Change {
            data: ChangeData::Upsert(Row::Value(v)),
            ..
        }) => v.value_decimal.unwrap().to_string(),
        other => panic!("{other:?}"),
    };
    let string = Options {
        decimal_mode: DecimalMode::String,
    };
    let raw = reading(json!("123456789012345.67891")).to_string();
    assert_eq!(
        decimal_of(decode(TOPIC, Some(raw.as_bytes()), &string).unwrap()),
        "123456789012345.67891"
    );
    // A number can only be double mode's, whatever the option says.
    assert_eq!(
        decimal_of(dec(TOPIC, &reading(json!(72.1))).unwrap()),
        "72.1"
    );
}

#[test]
fn what_cannot_be_decoded_says_why() {
    let opts = Options::default();
    assert!(matches!(
        decode(TOPIC, Some(b"{not json"), &opts),
        Err(DecodeError::Json(_))
    ));
    assert!(matches!(
        dec(TOPIC, &json!([1, 2])),
        Err(DecodeError::Shape(_))
    ));
    assert!(matches!(
        dec(TOPIC, &json!({"unrelated": 1})),
        Err(DecodeError::Shape(_))
    ));
    assert_eq!(
        dec(
            "atlas.public.plugins",
            &json!({"tenant_id": 1, "__table": "plugins"})
        ),
        Err(DecodeError::UnknownTable("plugins".into()))
    );
    let mut bad = payload(ENVELOPE);
    bad["after"]["ingested_at"] = json!("yesterday");
    match dec(TOPIC, &bad) {
        Err(e @ DecodeError::Field { .. }) => {
            assert!(
                e.to_string().starts_with("entity_values_ts.ingested_at"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut missing = payload(ENVELOPE);
    missing["after"]
        .as_object_mut()
        .unwrap()
        .remove("tenant_id");
    assert!(matches!(dec(TOPIC, &missing), Err(DecodeError::Row(_))));
}

#[test]
fn the_tap_writes_the_fixture_exactly_as_the_connector_did() {
    use atlas_cdc::emit::{At, flattened};
    use atlas_cdc::encoding::Datum;
    let r = fixture_reading();
    let mut cols = atlas_cdc::tables::Columns::new();
    cols.insert("entity_id", Datum::Int64(r.entity_id));
    cols.insert("tenant_id", Datum::Int64(r.tenant_id));
    cols.insert("attribute_id", Datum::Int64(r.attribute_id));
    cols.insert("value_decimal", Datum::Decimal(r.value_decimal.unwrap()));
    cols.insert("ingested_at", Datum::Timestamp(r.ingested_at));
    let at = At {
        lsn: 24024232,
        commit_ts_ms: 1763979330200,
    };
    let key = ["tenant_id", "entity_id", "attribute_id", "ingested_at"];
    let out = flattened("atlas", Table::Values, Op::Create, at, &key, &cols);
    let fixture: Value = serde_json::from_str(FLATTENED).unwrap();
    assert_eq!(out.topic, TOPIC);
    assert_eq!(out.value, fixture, "schema and payload, field for field");
}
