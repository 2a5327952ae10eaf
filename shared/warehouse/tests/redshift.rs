//! The Redshift adapter's conversation with the Data API, against
//! aws-smithy-mocks (moto's Data API never finishes a statement), and the
//! SQL it sends, against snapshots in `tests/snapshots/`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_cdc::encoding::Document;
use atlas_cdc::tables::{AttributeRow, EntityRow, ProjectionRow, TenantRow, ValueRow};
use atlas_cdc::{Change, ChangeData, Op, Row, Source, Table};
use atlas_objects::{ObjectError, ObjectStore};
use atlas_warehouse::load::Stage;
use atlas_warehouse::reads::StatsQuery;
use atlas_warehouse::redshift::{
    Endpoint, Format, MAX_BATCH_STATEMENTS, MAX_STATEMENT_BYTES, Poll, Staging, load_statements,
    stage_file,
};
use atlas_warehouse::{Batch, RedshiftWarehouse, Warehouse, WarehouseError, schema};
use aws_sdk_redshiftdata::Client;
use aws_sdk_redshiftdata::operation::batch_execute_statement::BatchExecuteStatementOutput;
use aws_sdk_redshiftdata::operation::cancel_statement::CancelStatementOutput;
use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementOutput;
use aws_sdk_redshiftdata::operation::get_statement_result::GetStatementResultOutput;
use aws_sdk_redshiftdata::types::{Field, StatusString, SubStatementData};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field as ParquetField, Row as ParquetRow};
use rust_decimal::Decimal;

/// Stage files, kept in memory: the test reads back what was staged.
#[derive(Debug, Default)]
struct Staged(Mutex<Vec<(String, Vec<u8>)>>);

#[async_trait::async_trait]
impl ObjectStore for Staged {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        self.0.lock().unwrap().push((key.to_owned(), bytes));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        let files = self.0.lock().unwrap();
        Ok(files.iter().find(|(k, _)| k == key).map(|(_, b)| b.clone()))
    }
}

const ROLE: &str = "arn:aws:iam::123456789012:role/atlas-copy";

fn mocked(rules: &[&Rule]) -> Client {
    mock_client!(
        aws_sdk_redshiftdata,
        RuleMode::MatchAny,
        rules.iter().copied()
    )
}

fn fast() -> Poll {
    Poll {
        first: Duration::from_millis(1),
        max: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
    }
}

fn warehouse(client: Client, staged: Arc<Staged>) -> RedshiftWarehouse {
    RedshiftWarehouse::new(client, Endpoint::parse("analytics"), "atlas")
        .with_staging(Staging {
            store: staged,
            uri: "s3://atlas-bucket/stage/".into(),
            copy_role: ROLE.into(),
        })
        .with_poll(fast())
}

fn change(table: Table, lsn: i64, row: Row) -> Change {
    Change {
        table,
        op: Some(Op::Create),
        source: Source {
            lsn: Some(lsn),
            tx_id: Some(7),
            ts_ms: Some(1_764_500_000_000 + lsn),
            snapshot: false,
        },
        data: ChangeData::Upsert(row),
    }
}

/// One of everything: a tenant, an attribute, an entity, its hot state and
/// two readings, one of them a numeric of 20 significant digits.
fn batch() -> Batch {
    let mut b = Batch::default();
    b.add(
        "atlas",
        change(
            Table::Tenants,
            1,
            Row::Tenant(TenantRow {
                tenant_id: 1,
                tenant_name: "O'Brien Farms".into(),
                is_active: true,
            }),
        ),
    );
    b.add(
        "atlas",
        change(
            Table::Attributes,
            2,
            Row::Attribute(AttributeRow {
                attribute_id: 3,
                tenant_id: 1,
                attribute_name: "temperature".into(),
                data_type: "decimal".into(),
                is_hot: true,
            }),
        ),
    );
    b.add(
        "atlas",
        change(
            Table::Entities,
            3,
            Row::Entity(EntityRow {
                tenant_id: 1,
                entity_id: 2,
                entity_type: "sensor".into(),
                is_deleted: false,
            }),
        ),
    );
    for (lsn, at, value) in [
        (4, "2026-11-30T09:00:00Z", "123456789012345.12345"),
        (5, "2026-11-30T09:00:01.5Z", "-0.00001"),
    ] {
        b.add(
            "atlas",
            change(
                Table::Values,
                lsn,
                Row::Value(ValueRow {
                    tenant_id: 1,
                    entity_id: 2,
                    attribute_id: 3,
                    value: None,
                    value_int: None,
                    value_decimal: Some(value.parse().unwrap()),
                    value_bool: None,
                    value_timestamp: None,
                    ingested_at: at.parse().unwrap(),
                }),
            ),
        );
    }
    let doc = Document::parse(r#"{"temperature": 123456789012345.12345}"#).unwrap();
    b.add(
        "atlas",
        change(
            Table::Projection,
            6,
            Row::Projection(ProjectionRow {
                tenant_id: 1,
                entity_id: 2,
                hot_attrs: Some(doc.clone()),
                hot_attrs_ts: Some(doc),
                updated_at: "2026-11-30T09:00:01.5Z".parse().unwrap(),
            }),
        ),
    );
    b
}

fn described(status: StatusString, rows: &[i64]) -> DescribeStatementOutput {
    DescribeStatementOutput::builder()
        .id("batch-1")
        .status(status)
        .set_sub_statements(Some(
            rows.iter()
                .enumerate()
                .map(|(i, n)| {
                    SubStatementData::builder()
                        .id(format!("batch-1:{}", i + 1))
                        .result_rows(*n)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .build()
        .unwrap()
}

/// A statement with no sub-statements: a single read, or a batch still
/// running.
fn single(id: &str, status: StatusString) -> DescribeStatementOutput {
    DescribeStatementOutput::builder()
        .id(id)
        .has_result_set(status == StatusString::Finished)
        .status(status)
        .build()
        .unwrap()
}

fn started() -> DescribeStatementOutput {
    single("batch-1", StatusString::Started)
}

fn read_finished() -> DescribeStatementOutput {
    single("read-1", StatusString::Finished)
}

#[tokio::test]
async fn a_load_stages_its_files_runs_one_batch_and_reports_the_counts() {
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = sent.clone();
    let execute = mock!(Client::batch_execute_statement)
        .match_requests(move |r| {
            *seen.lock().unwrap() = r.sqls().to_vec();
            r.workgroup_name() == Some("analytics")
                && r.cluster_identifier().is_none()
                && r.database() == Some("atlas")
        })
        .then_output(|| BatchExecuteStatementOutput::builder().id("batch-1").build());
    // Each sub-statement reports a count of its own: 1000 plus its index.
    let rows: Vec<i64> = (0..40).map(|i| 1000 + i).collect();
    let describe = mock!(Client::describe_statement)
        .match_requests(|r| r.id() == Some("batch-1"))
        .sequence()
        .output(started)
        .times(2)
        .output(move || described(StatusString::Finished, &rows))
        .build();
    let client = mocked(&[&execute, &describe]);
    let staged = Arc::new(Staged::default());

    let loaded = warehouse(client, staged.clone())
        .load(&batch())
        .await
        .unwrap();

    assert_eq!(execute.num_calls(), 1, "one batch, one transaction");
    assert_eq!(describe.num_calls(), 3, "polled until it finished");
    let sqls = sent.lock().unwrap().clone();
    assert!(sqls.len() <= MAX_BATCH_STATEMENTS);
    assert!(sqls.iter().all(|s| s.len() < MAX_STATEMENT_BYTES));
    let at = |prefix: &str| {
        sqls.iter()
            .position(|s| s.starts_with(prefix))
            .unwrap_or_else(|| panic!("no statement starts {prefix}")) as u64
    };
    assert_eq!(loaded.loaded, 1000 + at("INSERT INTO fact_telemetry"));
    assert_eq!(
        loaded.duplicates,
        1000 + at("DELETE FROM stage_telemetry USING fact_telemetry")
    );

    // Every filled stage was written once and is COPY'd from where it was
    // written, with the role.
    let files = staged.0.lock().unwrap().clone();
    assert_eq!(files.len(), Stage::ALL.len(), "every stage had rows");
    for (key, _) in &files {
        assert!(key.starts_with("cdc-batches/"), "{key}");
        let copy = sqls
            .iter()
            .find(|s| s.contains(&format!("'s3://atlas-bucket/stage/{key}'")))
            .unwrap_or_else(|| panic!("nothing copies {key}"));
        assert!(copy.starts_with("COPY stage_"), "{copy}");
        assert!(copy.contains(&format!("IAM_ROLE '{ROLE}'")), "{copy}");
    }
    // The readings are Parquet that keeps every digit.
    let telemetry = &files
        .iter()
        .find(|(k, _)| k.ends_with("/stage_telemetry.parquet"))
        .unwrap()
        .1;
    let rows = parquet_rows(telemetry);
    assert_eq!(rows.len(), 2);
    let decimal = rows
        .iter()
        .find_map(|r| match field(r, "value_decimal") {
            ParquetField::Decimal(d) => Some(d.clone()),
            _ => None,
        })
        .expect("a decimal reading");
    assert_eq!((decimal.precision(), decimal.scale()), (20, 5));
    assert_eq!(unscaled(decimal.data()), 12_345_678_901_234_512_345);
    let at = "2026-11-30T09:00:01.5Z"
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap();
    let row = rows
        .iter()
        .find(|r| field(r, "ingested_at") == &ParquetField::TimestampMicros(at.timestamp_micros()))
        .expect("the reading at 09:00:01.5, to the microsecond");
    let epoch_days = (at.date_naive() - chrono::NaiveDate::default()).num_days() as i32;
    assert_eq!(field(row, "ingested_date"), &ParquetField::Date(epoch_days));
    assert_eq!(field(row, "ingested_hour"), &ParquetField::Short(9));
    let tenants = &files
        .iter()
        .find(|(k, _)| k.ends_with("/stage_tenants.json"))
        .unwrap()
        .1;
    assert!(
        std::str::from_utf8(tenants)
            .unwrap()
            .contains("O'Brien Farms")
    );
}

#[tokio::test]
async fn a_failed_batch_is_an_error_that_names_the_failing_statement() {
    let execute = mock!(Client::batch_execute_statement)
        .then_output(|| BatchExecuteStatementOutput::builder().id("batch-1").build());
    let describe = mock!(Client::describe_statement).then_output(|| {
        DescribeStatementOutput::builder()
            .id("batch-1")
            .status(StatusString::Failed)
            .error("ERROR: permission denied for relation fact_telemetry")
            .sub_statements(
                SubStatementData::builder()
                    .id("batch-1:9")
                    .error("permission denied for relation fact_telemetry")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    });
    let client = mocked(&[&execute, &describe]);

    let err = warehouse(client, Arc::default())
        .load(&batch())
        .await
        .unwrap_err()
        .to_string();

    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("batch-1:9"), "{err}");
    assert_eq!(
        execute.num_calls(),
        1,
        "a failure that is not a conflict is not retried"
    );
}

#[tokio::test]
async fn a_serialization_conflict_is_retried_whole() {
    let execute = mock!(Client::batch_execute_statement)
        .then_output(|| BatchExecuteStatementOutput::builder().id("batch-1").build());
    let describe = mock!(Client::describe_statement)
        .sequence()
        .output(|| {
            DescribeStatementOutput::builder()
                .id("batch-1")
                .status(StatusString::Failed)
                .error("ERROR: 1023 DETAIL: Serializable isolation violation on table - 101, transactions forming the cycle are: 1, 2")
                .build()
                .unwrap()
        })
        .output(|| described(StatusString::Finished, &[1; 40]))
        .build();
    let client = mocked(&[&execute, &describe]);
    let staged = Arc::new(Staged::default());

    warehouse(client, staged.clone())
        .load(&batch())
        .await
        .unwrap();

    assert_eq!(execute.num_calls(), 2);
    assert_eq!(
        staged.0.lock().unwrap().len(),
        Stage::ALL.len(),
        "the retry reuses the staged files"
    );
}

#[tokio::test]
async fn a_statement_that_never_ends_is_cancelled() {
    let execute = mock!(Client::batch_execute_statement)
        .then_output(|| BatchExecuteStatementOutput::builder().id("batch-1").build());
    let describe = mock!(Client::describe_statement).then_output(started);
    let cancel = mock!(Client::cancel_statement)
        .match_requests(|r| r.id() == Some("batch-1"))
        .then_output(|| CancelStatementOutput::builder().status(true).build());
    let client = mocked(&[&execute, &describe, &cancel]);

    let err = warehouse(client, Arc::default())
        .with_poll(Poll {
            timeout: Duration::from_millis(50),
            ..fast()
        })
        .load(&batch())
        .await
        .unwrap_err();

    assert!(err.to_string().contains("cancelled"), "{err}");
    assert_eq!(cancel.num_calls(), 1);
    assert!(describe.num_calls() > 1, "polled before giving up");
}

#[tokio::test]
async fn statements_past_the_data_api_limits_are_refused_before_any_call() {
    let execute = mock!(Client::batch_execute_statement)
        .then_output(|| BatchExecuteStatementOutput::builder().id("batch-1").build());
    let client = mocked(&[&execute]);
    let w = warehouse(client, Arc::default());

    let big = format!("SELECT '{}'", "x".repeat(MAX_STATEMENT_BYTES));
    let err = w.run_batch(vec![big]).await.unwrap_err();
    assert!(
        matches!(err, WarehouseError::Redshift(ref e) if e.contains("bytes")),
        "{err}"
    );
    let many = vec!["SELECT 1".to_owned(); MAX_BATCH_STATEMENTS + 1];
    let err = w.run_batch(many).await.unwrap_err();
    assert!(err.to_string().contains("41 statements"), "{err}");
    assert_eq!(execute.num_calls(), 0);
}

#[tokio::test]
async fn a_reader_cannot_load() {
    let client = mocked(&[]);
    let reader = RedshiftWarehouse::new(client, Endpoint::parse("cluster:prod"), "atlas");
    let err = reader.load(&batch()).await.unwrap_err();
    assert!(err.to_string().contains("staging"), "{err}");
}

fn parquet_rows(file: &[u8]) -> Vec<ParquetRow> {
    let reader = SerializedFileReader::new(bytes::Bytes::copy_from_slice(file)).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn field<'a>(row: &'a ParquetRow, name: &str) -> &'a ParquetField {
    row.get_column_iter()
        .find(|(n, _)| n.as_str() == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .1
}

/// Parquet's DECIMAL bytes, big-endian two's complement, as an integer.
fn unscaled(bytes: &[u8]) -> i128 {
    let fill = if bytes[0] & 0x80 == 0 { 0u8 } else { 0xff };
    let mut all = [fill; 16];
    all[16 - bytes.len()..].copy_from_slice(bytes);
    i128::from_be_bytes(all)
}

/// The statement a read sent, with its named parameters.
type Sent = Arc<Mutex<Option<(String, Vec<(String, String)>)>>>;

#[tokio::test]
async fn reads_name_their_parameters_page_through_results_and_keep_every_digit() {
    let sent: Sent = Arc::default();
    let seen = sent.clone();
    let execute = mock!(Client::execute_statement)
        .match_requests(move |r| {
            let params = r
                .parameters()
                .iter()
                .map(|p| (p.name().to_owned(), p.value().to_owned()))
                .collect();
            *seen.lock().unwrap() = Some((r.sql().unwrap_or_default().to_owned(), params));
            r.cluster_identifier() == Some("prod") && r.workgroup_name().is_none()
        })
        .then_output(|| ExecuteStatementOutput::builder().id("read-1").build());
    let describe = mock!(Client::describe_statement).then_output(read_finished);
    let row = |group: &str, max: &str| {
        vec![
            Field::StringValue(group.into()),
            Field::LongValue(3),
            Field::LongValue(2),
            Field::DoubleValue(20.5),
            Field::StringValue("-0.00001".into()),
            Field::StringValue(max.into()),
            Field::DoubleValue(20.0),
            Field::IsNull(true),
        ]
    };
    let pages = mock!(Client::get_statement_result)
        .sequence()
        .output(move || {
            GetStatementResultOutput::builder()
                .records(row("north", "123456789012345.12345"))
                .next_token("page-2")
                .build()
                .unwrap()
        })
        .output(move || {
            GetStatementResultOutput::builder()
                .records(row("south", "1"))
                .build()
                .unwrap()
        })
        .build();
    let client = mocked(&[&execute, &describe, &pages]);
    let reader =
        RedshiftWarehouse::new(client, Endpoint::parse("cluster:prod"), "atlas").with_poll(fast());

    let rows = reader
        .stats(&StatsQuery {
            tenant_id: 42,
            attribute: "temperature",
            group_by: Some("region"),
            from: "2026-06-01T00:00:00Z".parse().unwrap(),
            to: "2026-12-01T00:00:00Z".parse().unwrap(),
            limit: 25,
        })
        .await
        .unwrap();

    assert_eq!(rows.len(), 2, "both pages");
    assert_eq!(rows[0].group.as_deref(), Some("north"));
    assert_eq!(
        rows[0].max,
        Some("123456789012345.12345".parse::<Decimal>().unwrap())
    );
    assert_eq!(rows[1].min, Some("-0.00001".parse::<Decimal>().unwrap()));
    assert_eq!((rows[0].count, rows[0].entities, rows[0].p95), (3, 2, None));

    let (sql, params) = sent.lock().unwrap().clone().unwrap();
    assert!(
        !sql.contains('$'),
        "every $n became a named parameter: {sql}"
    );
    assert!(sql.contains("tenant_id = :p1"), "{sql}");
    assert!(sql.ends_with("LIMIT 25"), "{sql}");
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]);
    assert_eq!(params[0].1, "42");
    assert_eq!(params[4].1, "2026-06-01");
    assert_eq!(params[5].1, "2026-11-30", "the last day the range touches");
    assert_eq!(params[6].1, "region");
}

#[tokio::test]
async fn freshness_reads_the_data_api_s_timestamp_text() {
    let execute = mock!(Client::execute_statement)
        .then_output(|| ExecuteStatementOutput::builder().id("read-1").build());
    let describe = mock!(Client::describe_statement).then_output(read_finished);
    let result = mock!(Client::get_statement_result).then_output(|| {
        GetStatementResultOutput::builder()
            .records(vec![Field::StringValue(
                "2026-11-30 09:00:00.123+00".into(),
            )])
            .build()
            .unwrap()
    });
    let client = mocked(&[&execute, &describe, &result]);
    let reader =
        RedshiftWarehouse::new(client, Endpoint::parse("analytics"), "atlas").with_poll(fast());

    assert_eq!(
        reader.data_as_of().await.unwrap(),
        Some("2026-11-30T09:00:00.123Z".parse().unwrap())
    );
}

#[tokio::test]
async fn the_schema_goes_in_one_batch_within_the_limits() {
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = sent.clone();
    let execute = mock!(Client::batch_execute_statement)
        .match_requests(move |r| {
            *seen.lock().unwrap() = r.sqls().to_vec();
            true
        })
        .then_output(|| BatchExecuteStatementOutput::builder().id("batch-1").build());
    let describe =
        mock!(Client::describe_statement).then_output(|| described(StatusString::Finished, &[]));
    let client = mocked(&[&execute, &describe]);

    warehouse(client, Arc::default())
        .apply_schema()
        .await
        .unwrap();

    let sqls = sent.lock().unwrap().clone();
    assert!(
        sqls.iter()
            .all(|s| !s.contains("--") && !s.trim().is_empty())
    );
    let tables = sqls
        .iter()
        .filter(|s| s.starts_with("CREATE TABLE IF NOT EXISTS"))
        .count();
    assert_eq!(
        tables,
        schema::REDSHIFT
            .matches("CREATE TABLE IF NOT EXISTS")
            .count()
    );
    insta::assert_snapshot!("schema", sqls.join(";\n\n"));
}

/// The whole load, as Redshift receives it.
#[test]
fn the_load_sql() {
    let files: Vec<(Stage, Format, String)> = Stage::ALL
        .iter()
        .map(|s| {
            let format = stage_file(*s, &batch()).unwrap().unwrap().0;
            let uri = format!(
                "s3://atlas-bucket/cdc-batches/L/{}.{}",
                s.table(),
                format.extension()
            );
            (*s, format, uri)
        })
        .collect();
    let (sqls, _) = load_statements(&files, ROLE);
    insta::assert_snapshot!("load", sqls.join(";\n\n"));
}
