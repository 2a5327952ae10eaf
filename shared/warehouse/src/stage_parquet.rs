//! The readings' stage file as Parquet, for Redshift's `COPY … FORMAT AS
//! PARQUET`: typed columns, so nothing is parsed from text on the way in,
//! and compressed, so a 10,000-reading batch is a fraction of its JSON.
//!
//! `COPY` maps Parquet columns to the stage table's by position, so the
//! schema below lists [`crate::load::Stage::Telemetry`]'s columns in their order (a test
//! holds them together). Every column is optional: the stage table's are
//! nullable, and one definition level per value is all it costs.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use parquet::basic::Compression;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DataType, FixedLenByteArray, FixedLenByteArrayType,
    Int32Type, Int64Type,
};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use rust_decimal::Decimal;

use crate::WarehouseError;
use crate::batch::{Batch, Fact};

/// `numeric(20, 5)`, as the stage table and `entity_values_ts` have it.
const DECIMAL_SCALE: u32 = 5;
/// The fewest bytes that hold every 20-digit unscaled value with its sign.
const DECIMAL_BYTES: usize = 9;

pub const SCHEMA: &str = "message stage_telemetry {
    optional int64 tenant_id;
    optional int64 entity_id;
    optional int64 attribute_id;
    optional int64 ingested_at (TIMESTAMP(MICROS, true));
    optional binary value (STRING);
    optional int64 value_int;
    optional fixed_len_byte_array(9) value_decimal (DECIMAL(20, 5));
    optional boolean value_bool;
    optional int64 value_timestamp (TIMESTAMP(MICROS, true));
    optional int32 ingested_date (DATE);
    optional int32 ingested_hour (INTEGER(16, true));
    optional int32 day_of_week (INTEGER(16, true));
    optional binary year_month (STRING);
    optional int64 source_lsn;
    optional int64 source_commit_at (TIMESTAMP(MICROS, true));
}";

/// The batch's readings as one Parquet file (one row group, Snappy, which
/// `COPY` reads).
pub fn telemetry(batch: &Batch) -> Result<Vec<u8>, WarehouseError> {
    let facts: Vec<&Fact> = batch.facts.values().collect();
    let decimals = facts
        .iter()
        .map(|f| f.row.value_decimal.map(unscaled).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    write(&facts, decimals)
        .map_err(|e| WarehouseError::Redshift(format!("parquet stage file: {e}")))
}

fn write(
    facts: &[&Fact],
    decimals: Vec<Option<FixedLenByteArray>>,
) -> Result<Vec<u8>, ParquetError> {
    let schema = Arc::new(parse_message_type(SCHEMA)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut file = SerializedFileWriter::new(Vec::new(), schema, props)?;
    let mut group = file.next_row_group()?;
    let all = |f: &dyn Fn(&Fact) -> Option<i64>| facts.iter().map(|x| f(x)).collect::<Vec<_>>();
    let small = |f: &dyn Fn(&Fact) -> i32| facts.iter().map(|x| Some(f(x))).collect::<Vec<_>>();
    let micros = |t: DateTime<Utc>| t.timestamp_micros();
    let text = |t: &str| ByteArray::from(t);

    column::<Int64Type>(&mut group, all(&|f| Some(f.row.tenant_id)))?;
    column::<Int64Type>(&mut group, all(&|f| Some(f.row.entity_id)))?;
    column::<Int64Type>(&mut group, all(&|f| Some(f.row.attribute_id)))?;
    column::<Int64Type>(&mut group, all(&|f| Some(micros(f.row.ingested_at))))?;
    let values = facts.iter().map(|f| f.row.value.as_deref().map(text));
    column::<ByteArrayType>(&mut group, values.collect())?;
    column::<Int64Type>(&mut group, all(&|f| f.row.value_int))?;
    column::<FixedLenByteArrayType>(&mut group, decimals)?;
    column::<BoolType>(&mut group, facts.iter().map(|f| f.row.value_bool).collect())?;
    column::<Int64Type>(&mut group, all(&|f| f.row.value_timestamp.map(micros)))?;
    column::<Int32Type>(&mut group, small(&|f| days(f.ingested_date())))?;
    column::<Int32Type>(&mut group, small(&|f| f.ingested_hour().into()))?;
    column::<Int32Type>(&mut group, small(&|f| f.day_of_week().into()))?;
    let months = facts.iter().map(|f| Some(text(&f.year_month())));
    column::<ByteArrayType>(&mut group, months.collect())?;
    column::<Int64Type>(&mut group, all(&|f| Some(f.at.lsn)))?;
    column::<Int64Type>(&mut group, all(&|f| f.at.commit_at.map(micros)))?;

    group.close()?;
    file.into_inner()
}

type Group<'a> = SerializedRowGroupWriter<'a, Vec<u8>>;

/// Writes the next column: the present values, and a definition level per
/// row (1 present, 0 null). `T` is the schema's physical type for it (a
/// mismatch panics in `typed`; the tests write every column).
fn column<T: DataType>(
    group: &mut Group<'_>,
    values: Vec<Option<T::T>>,
) -> Result<(), ParquetError> {
    let mut col = group
        .next_column()?
        .ok_or_else(|| ParquetError::General("more columns written than the schema has".into()))?;
    let levels: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
    let present: Vec<T::T> = values.into_iter().flatten().collect();
    col.typed::<T>()
        .write_batch(&present, Some(&levels), None)?;
    col.close()
}

/// Parquet's DATE: days since 1970-01-01.
fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::default()).num_days() as i32
}

/// A decimal as Parquet's DECIMAL(20, 5) holds it: the value times 10^5,
/// big-endian two's complement in [`DECIMAL_BYTES`] bytes. A value with
/// more places, or more digits, than `numeric(20, 5)` is refused rather
/// than rounded.
pub fn unscaled(d: Decimal) -> Result<FixedLenByteArray, WarehouseError> {
    let refused = || WarehouseError::Redshift(format!("{d} does not fit numeric(20, 5)"));
    if d.scale() > DECIMAL_SCALE {
        return Err(refused());
    }
    let mut scaled = d;
    scaled.rescale(DECIMAL_SCALE);
    let all = scaled.mantissa().to_be_bytes();
    let (head, tail) = all.split_at(all.len() - DECIMAL_BYTES);
    let sign = if tail[0] & 0x80 == 0 { 0 } else { 0xff };
    if head.iter().any(|b| *b != sign) || scaled.mantissa().unsigned_abs() >= 10u128.pow(20) {
        return Err(refused());
    }
    Ok(FixedLenByteArray::from(tail.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit_and_their_sign() {
        for (text, unscaled_value) in [
            ("123456789012345.12345", 12_345_678_901_234_512_345_i128),
            ("-123456789012345.12345", -12_345_678_901_234_512_345),
            ("999999999999999.99999", 99_999_999_999_999_999_999),
            ("-0.00001", -1),
            ("0", 0),
            ("72.5", 7_250_000),
        ] {
            let d: Decimal = text.parse().unwrap();
            let b = unscaled(d).unwrap();
            let expected = unscaled_value.to_be_bytes();
            assert_eq!(b.data(), &expected[16 - DECIMAL_BYTES..], "{text}");
        }
    }

    #[test]
    fn the_schema_lists_the_stage_tables_columns_in_order() {
        let schema = parse_message_type(SCHEMA).unwrap();
        let names: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
        let stage: Vec<&str> = crate::load::Stage::Telemetry
            .columns()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names, stage);
    }

    #[test]
    fn decimals_numeric_20_5_cannot_hold_are_refused() {
        for text in ["0.000001", "1000000000000000", "-1000000000000000"] {
            let d: Decimal = text.parse().unwrap();
            assert!(unscaled(d).is_err(), "{text}");
        }
    }
}
