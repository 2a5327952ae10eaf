//! The cloud warehouse: Redshift, through the Data API (no driver, and no
//! network path from the Lambda to the cluster).
//!
//! A load writes each filled stage as a file to S3 (the object store,
//! under `cdc-batches/<load>/`, which a lifecycle rule expires): the
//! readings as Parquet, the rest as JSON lines (see [`Format`]). It then
//! runs one `BatchExecuteStatement`: the Data API runs a
//! batch in one transaction, so the stage tables are temporary, `COPY`
//! fills them, and [`crate::load::STEPS`] move them into the warehouse,
//! the same statements as on PostgreSQL. `DescribeStatement` is polled
//! with a bounded backoff until the batch ends, and each step's row count
//! is read from its sub-statement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_objects::ObjectStore;
use aws_sdk_redshiftdata::Client;
use aws_sdk_redshiftdata::types::{Field, SqlParameter, StatusString};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;

use crate::batch::{Batch, State};
use crate::load::{Counts, DAILY_STAGE, Dialect, Loaded, STEPS, Stage};
use crate::reads::{self, DailyRow, StatsQuery, StatsRow};
use crate::{Warehouse, WarehouseError, schema};

/// The Data API refuses a statement of 100 KB or more.
pub const MAX_STATEMENT_BYTES: usize = 100 * 1024;
/// And a batch of more than 40 statements.
pub const MAX_BATCH_STATEMENTS: usize = 40;

/// Which Redshift the Data API talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Redshift Serverless: temporary credentials for the caller's role.
    Workgroup(String),
    /// A provisioned cluster: temporary credentials for the caller's role.
    Cluster(String),
}

impl Endpoint {
    /// `cluster:<id>` names a provisioned cluster; anything else a
    /// Serverless workgroup.
    pub fn parse(name: &str) -> Self {
        match name.strip_prefix("cluster:") {
            Some(id) => Endpoint::Cluster(id.to_owned()),
            None => Endpoint::Workgroup(name.to_owned()),
        }
    }
}

/// How a statement's end is waited for.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    pub first: Duration,
    pub max: Duration,
    /// Past this the statement is cancelled and the load fails (and is
    /// retried whole by Lambda).
    pub timeout: Duration,
}

impl Default for Poll {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(50),
            max: Duration::from_secs(2),
            timeout: Duration::from_secs(90),
        }
    }
}

/// Where a load's stage files go, and how Redshift reads them back.
#[derive(Debug, Clone)]
pub struct Staging {
    pub store: Arc<dyn ObjectStore>,
    /// The store's root as COPY reads it: `s3://bucket/prefix/`.
    pub uri: String,
    /// The IAM role Redshift assumes to read the files.
    pub copy_role: String,
}

/// Redshift refuses a transaction that conflicts with a concurrent one
/// ("Serializable isolation violation"); the load is retried whole this
/// many times before the invocation fails.
const CONFLICT_RETRIES: usize = 3;

pub struct RedshiftWarehouse {
    client: Client,
    endpoint: Endpoint,
    database: String,
    /// Only loads need it; the query API reads without.
    staging: Option<Staging>,
    poll: Poll,
}

impl RedshiftWarehouse {
    pub fn new(client: Client, endpoint: Endpoint, database: impl Into<String>) -> Self {
        Self {
            client,
            endpoint,
            database: database.into(),
            staging: None,
            poll: Poll::default(),
        }
    }

    /// With the Data API client the usual AWS configuration describes
    /// (region, credentials, `AWS_ENDPOINT_URL`).
    pub async fn connect(endpoint: Endpoint, database: impl Into<String>) -> Self {
        let shared = aws_config::load_from_env().await;
        Self::new(Client::new(&shared), endpoint, database)
    }

    pub fn with_staging(mut self, staging: Staging) -> Self {
        self.staging = Some(staging);
        self
    }

    pub fn with_poll(mut self, poll: Poll) -> Self {
        self.poll = poll;
        self
    }

    pub async fn run_batch(&self, sqls: Vec<String>) -> Result<Vec<i64>, WarehouseError> {
        if sqls.len() > MAX_BATCH_STATEMENTS {
            return Err(WarehouseError::Redshift(format!(
                "{} statements in one batch; the Data API takes {MAX_BATCH_STATEMENTS}",
                sqls.len()
            )));
        }
        if let Some(big) = sqls.iter().find(|s| s.len() >= MAX_STATEMENT_BYTES) {
            return Err(WarehouseError::Redshift(format!(
                "a statement of {} bytes; the Data API takes less than {MAX_STATEMENT_BYTES}: {}…",
                big.len(),
                &big[..big.len().min(80)]
            )));
        }
        let mut req = self
            .client
            .batch_execute_statement()
            .database(&self.database)
            .set_sqls(Some(sqls));
        req = match &self.endpoint {
            Endpoint::Workgroup(w) => req.workgroup_name(w),
            Endpoint::Cluster(c) => req.cluster_identifier(c),
        };
        let out = req.send().await.map_err(api_error)?;
        let id = out
            .id()
            .ok_or_else(|| WarehouseError::Redshift("the Data API gave no statement id".into()))?
            .to_owned();
        let done = self.wait(&id).await?;
        Ok(done
            .sub_statements()
            .iter()
            .map(|s| s.result_rows())
            .collect())
    }

    /// Polls `id` until it ends, backing off from `first` to `max`.
    async fn wait(
        &self,
        id: &str,
    ) -> Result<
        aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput,
        WarehouseError,
    > {
        let started = Instant::now();
        let mut pause = self.poll.first;
        loop {
            let d = self
                .client
                .describe_statement()
                .id(id)
                .send()
                .await
                .map_err(api_error)?;
            match d.status() {
                Some(StatusString::Finished) => return Ok(d),
                Some(StatusString::Failed | StatusString::Aborted) => {
                    let failing = d
                        .sub_statements()
                        .iter()
                        .find_map(|s| s.error().map(|e| format!(" (statement {}: {e})", s.id())))
                        .unwrap_or_default();
                    return Err(WarehouseError::Redshift(format!(
                        "statement {id} {}: {}{failing}",
                        d.status().map_or("ended", |s| s.as_str()),
                        d.error().unwrap_or("no error given"),
                    )));
                }
                _ => {}
            }
            if started.elapsed() >= self.poll.timeout {
                // Best effort: the statement would otherwise hold its locks.
                let _ = self.client.cancel_statement().id(id).send().await;
                return Err(WarehouseError::Redshift(format!(
                    "statement {id} did not finish within {:?}; cancelled",
                    self.poll.timeout
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.poll.max);
        }
    }

    /// One read: `sql` with `$n` parameters, which the Data API names
    /// `:pn` and takes as text.
    async fn query(&self, sql: &str, params: &[String]) -> Result<Vec<Vec<Field>>, WarehouseError> {
        let mut text = sql.to_owned();
        // Highest first, so $1 does not eat $10.
        for n in (1..=params.len()).rev() {
            text = text.replace(&format!("${n}"), &format!(":p{n}"));
        }
        let parameters = params
            .iter()
            .enumerate()
            .map(|(i, v)| {
                SqlParameter::builder()
                    .name(format!("p{}", i + 1))
                    .value(v)
                    .build()
                    .map_err(|e| WarehouseError::Redshift(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut req = self
            .client
            .execute_statement()
            .database(&self.database)
            .sql(text)
            .set_parameters((!parameters.is_empty()).then_some(parameters));
        req = match &self.endpoint {
            Endpoint::Workgroup(w) => req.workgroup_name(w),
            Endpoint::Cluster(c) => req.cluster_identifier(c),
        };
        let id = req
            .send()
            .await
            .map_err(api_error)?
            .id()
            .ok_or_else(|| WarehouseError::Redshift("the Data API gave no statement id".into()))?
            .to_owned();
        let done = self.wait(&id).await?;
        if !done.has_result_set().unwrap_or(false) {
            return Ok(Vec::new());
        }
        let mut rows = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .get_statement_result()
                .id(&id)
                .set_next_token(token)
                .send()
                .await
                .map_err(api_error)?;
            rows.extend(page.records().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(rows);
            }
        }
    }
}

#[async_trait::async_trait]
impl Warehouse for RedshiftWarehouse {
    async fn apply_schema(&self) -> Result<(), WarehouseError> {
        self.run_batch(statements(schema::REDSHIFT)).await.map(drop)
    }

    async fn load(&self, batch: &Batch) -> Result<Loaded, WarehouseError> {
        let staging = self.staging.as_ref().ok_or_else(|| {
            WarehouseError::Redshift("loading needs a staging bucket and a COPY role".into())
        })?;
        let load_id = format!(
            "{}-{:016x}",
            Utc::now().timestamp_micros(),
            fastrand::u64(..)
        );
        let mut files = Vec::new();
        let mut puts = Vec::new();
        for stage in Stage::ALL {
            let Some((format, bytes)) = stage_file(stage, batch)? else {
                continue;
            };
            let key = format!(
                "cdc-batches/{load_id}/{}.{}",
                stage.table(),
                format.extension()
            );
            files.push((stage, format, format!("{}{key}", staging.uri)));
            puts.push(async move {
                staging
                    .store
                    .put(&key, bytes)
                    .await
                    .map_err(|e| WarehouseError::Redshift(format!("stage file {key}: {e}")))
            });
        }
        futures_util::future::try_join_all(puts).await?;
        let (sqls, counted) = load_statements(&files, &staging.copy_role);
        let mut attempt = 0;
        let rows = loop {
            match self.run_batch(sqls.clone()).await {
                Err(WarehouseError::Redshift(e))
                    if attempt < CONFLICT_RETRIES
                        && e.contains("Serializable isolation violation") =>
                {
                    attempt += 1;
                    tokio::time::sleep(self.poll.first * (1 << attempt)).await;
                }
                done => break done?,
            }
        };
        let mut loaded = Loaded {
            duplicates: batch.duplicates as u64,
            ..Loaded::default()
        };
        for (index, counts) in counted {
            let n = rows.get(index).copied().unwrap_or(0).max(0) as u64;
            match counts {
                Counts::Duplicates => loaded.duplicates += n,
                Counts::Loaded => loaded.loaded += n,
                Counts::Nothing => {}
            }
        }
        Ok(loaded)
    }

    /// Runs `sqls` in one transaction; returns each statement's row count.
    async fn attribute_type(
        &self,
        tenant_id: i64,
        attribute: &str,
    ) -> Result<Option<String>, WarehouseError> {
        let rows = self
            .query(
                reads::ATTRIBUTE,
                &[tenant_id.to_string(), attribute.to_owned()],
            )
            .await?;
        Ok(rows.first().and_then(|r| text(r.first())))
    }

    async fn stats(&self, q: &StatsQuery<'_>) -> Result<Vec<StatsRow>, WarehouseError> {
        let (first, last) = crate::postgres::days(q.from, q.to);
        let mut params = vec![
            q.tenant_id.to_string(),
            q.attribute.to_owned(),
            timestamp(q.from),
            timestamp(q.to),
            first.to_string(),
            last.to_string(),
        ];
        let sql = match q.group_by {
            None => reads::stats_sql(),
            Some(g) => {
                params.push(g.to_owned());
                // Redshift's LIMIT takes a constant, not a parameter; the
                // limit is our own integer.
                reads::grouped_stats_sql().replace("$8", &q.limit.to_string())
            }
        };
        let rows = self.query(&sql, &params).await?;
        rows.iter()
            .map(|r| {
                Ok(StatsRow {
                    group: text(r.first()),
                    count: long(r.get(1))?,
                    entities: long(r.get(2))?,
                    avg: double(r.get(3)),
                    min: decimal(r.get(4))?,
                    max: decimal(r.get(5))?,
                    p50: double(r.get(6)),
                    p95: double(r.get(7)),
                })
            })
            .collect()
    }

    async fn daily(
        &self,
        tenant_id: i64,
        attribute: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyRow>, WarehouseError> {
        let params = [
            tenant_id.to_string(),
            attribute.to_owned(),
            from.to_string(),
            to.to_string(),
        ];
        let rows = self.query(reads::DAILY, &params).await?;
        rows.iter()
            .map(|r| {
                Ok(DailyRow {
                    day: text(r.first())
                        .and_then(|d| d.parse().ok())
                        .ok_or_else(|| WarehouseError::Redshift("a day that is no date".into()))?,
                    count: long(r.get(1))?,
                    entities: long(r.get(2))?,
                    avg: double(r.get(3)),
                    min: decimal(r.get(4))?,
                    max: decimal(r.get(5))?,
                })
            })
            .collect()
    }

    async fn data_as_of(&self) -> Result<Option<DateTime<Utc>>, WarehouseError> {
        let rows = self.query(reads::DATA_AS_OF, &[]).await?;
        Ok(rows
            .first()
            .and_then(|r| text(r.first()))
            .and_then(|t| parse_timestamp(&t)))
    }
}

fn api_error<E: std::error::Error + Send + Sync + 'static>(
    e: aws_sdk_redshiftdata::error::SdkError<E>,
) -> WarehouseError {
    WarehouseError::Redshift(aws_sdk_redshiftdata::error::DisplayErrorContext(e).to_string())
}

/// The statements of a schema text, comments dropped.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A text literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// How a stage's file is written, and so how `COPY` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The readings, nearly all of a batch's bytes: typed and compressed.
    Parquet,
    /// The rest: a handful of dimension rows, and the hot state, whose
    /// documents `COPY` reads into `SUPER` from JSON as they are.
    JsonLines,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::JsonLines => "json",
        }
    }

    fn copy_options(self) -> &'static str {
        match self {
            Format::Parquet => "FORMAT AS PARQUET",
            Format::JsonLines => "FORMAT AS JSON 'auto' TIMEFORMAT 'auto'",
        }
    }
}

/// `stage`'s file from `batch`, if the batch has rows for it.
pub fn stage_file(
    stage: Stage,
    batch: &Batch,
) -> Result<Option<(Format, Vec<u8>)>, WarehouseError> {
    Ok(match stage {
        Stage::Telemetry if batch.facts.is_empty() => None,
        Stage::Telemetry => Some((Format::Parquet, crate::stage_parquet::telemetry(batch)?)),
        other => {
            let lines = stage_lines(other, batch);
            (!lines.is_empty()).then_some((Format::JsonLines, lines))
        }
    })
}

/// The batch that loads `files` (stage, format, S3 URI), and which
/// statements' row counts mean what.
pub fn load_statements(
    files: &[(Stage, Format, String)],
    copy_role: &str,
) -> (Vec<String>, Vec<(usize, Counts)>) {
    let d = Dialect::Redshift;
    let mut sqls = Vec::new();
    for (stage, format, uri) in files {
        sqls.push(format!(
            "CREATE TEMP TABLE {} ({})",
            stage.table(),
            d.stage_columns(*stage)
        ));
        sqls.push(format!(
            "COPY {} FROM {} IAM_ROLE {} {}",
            stage.table(),
            quote(uri),
            quote(copy_role),
            format.copy_options()
        ));
    }
    sqls.push(format!(
        "CREATE TEMP TABLE {} ({})",
        DAILY_STAGE.0, DAILY_STAGE.1
    ));
    let filled: Vec<Stage> = files.iter().map(|(s, _, _)| *s).collect();
    let mut counted = Vec::new();
    for step in STEPS.iter().filter(|s| filled.contains(&s.stage)) {
        if step.counts != Counts::Nothing {
            counted.push((sqls.len(), step.counts));
        }
        sqls.push(d.render(step.sql));
    }
    (sqls, counted)
}

/// One value of a stage file's line.
enum Cell<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Time(DateTime<Utc>),
    /// A JSON document, written as itself.
    Doc(&'a str),
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A JSON line; numerics as their exact digits, documents as themselves.
fn line(out: &mut Vec<u8>, cells: &[(&str, Cell<'_>)]) {
    out.push(b'{');
    for (i, (name, cell)) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend(serde_json::to_string(name).expect("a name").as_bytes());
        out.push(b':');
        let v = match cell {
            Cell::Null => "null".to_owned(),
            Cell::Int(v) => v.to_string(),
            Cell::Bool(v) => v.to_string(),
            Cell::Text(v) => serde_json::to_string(v).expect("a string"),
            Cell::Time(t) => format!("\"{}\"", timestamp(*t)),
            Cell::Doc(d) => (*d).to_owned(),
        };
        out.extend(v.as_bytes());
    }
    out.extend(b"}\n");
}

/// `stage`'s rows from `batch`, as the lines of its file; empty if none.
fn stage_lines(stage: Stage, batch: &Batch) -> Vec<u8> {
    let mut out = Vec::new();
    match stage {
        Stage::Tenants => {
            for d in batch.tenants.values() {
                line(
                    &mut out,
                    &[
                        ("tenant_id", Cell::Int(d.row.tenant_id)),
                        ("tenant_name", Cell::Text(&d.row.tenant_name)),
                        ("is_active", Cell::Bool(d.row.is_active)),
                        ("source_lsn", Cell::Int(d.at.lsn)),
                    ],
                );
            }
        }
        Stage::Attributes => {
            for d in batch.attributes.values() {
                line(
                    &mut out,
                    &[
                        ("attribute_id", Cell::Int(d.row.attribute_id)),
                        ("tenant_id", Cell::Int(d.row.tenant_id)),
                        ("attribute_name", Cell::Text(&d.row.attribute_name)),
                        ("data_type", Cell::Text(&d.row.data_type)),
                        ("attribute_category", Cell::Text(d.category())),
                        ("source_lsn", Cell::Int(d.at.lsn)),
                    ],
                );
            }
        }
        Stage::Entities => {
            for d in batch.entities.values() {
                line(
                    &mut out,
                    &[
                        ("tenant_id", Cell::Int(d.tenant_id)),
                        ("entity_id", Cell::Int(d.entity_id)),
                        (
                            "entity_type",
                            d.entity_type.as_deref().map_or(Cell::Null, Cell::Text),
                        ),
                        ("is_deleted", Cell::Bool(d.is_deleted)),
                        ("source_lsn", Cell::Int(d.at.lsn)),
                    ],
                );
            }
        }
        // Staged as Parquet (`stage_file`).
        Stage::Telemetry => {}
        Stage::CurrentState => {
            for s in batch.states.values() {
                let lsn = ("source_lsn", Cell::Int(s.at.lsn));
                match &s.state {
                    State::Upsert(r) => line(
                        &mut out,
                        &[
                            ("tenant_id", Cell::Int(r.tenant_id)),
                            ("entity_id", Cell::Int(r.entity_id)),
                            (
                                "hot_attrs",
                                r.hot_attrs
                                    .as_ref()
                                    .map_or(Cell::Null, |d| Cell::Doc(d.text())),
                            ),
                            (
                                "hot_attrs_ts",
                                r.hot_attrs_ts
                                    .as_ref()
                                    .map_or(Cell::Null, |d| Cell::Doc(d.text())),
                            ),
                            ("updated_at", Cell::Time(r.updated_at)),
                            ("deleted", Cell::Bool(false)),
                            lsn,
                        ],
                    ),
                    State::Delete {
                        tenant_id,
                        entity_id,
                    } => line(
                        &mut out,
                        &[
                            ("tenant_id", Cell::Int(*tenant_id)),
                            ("entity_id", Cell::Int(*entity_id)),
                            ("hot_attrs", Cell::Null),
                            ("hot_attrs_ts", Cell::Null),
                            ("updated_at", Cell::Null),
                            ("deleted", Cell::Bool(true)),
                            lsn,
                        ],
                    ),
                }
            }
        }
        Stage::Watermarks => {
            for (source, at) in &batch.watermarks {
                if let Some(commit) = at.commit_at {
                    line(
                        &mut out,
                        &[
                            ("source", Cell::Text(source)),
                            ("source_lsn", Cell::Int(at.lsn)),
                            ("source_commit_at", Cell::Time(commit)),
                        ],
                    );
                }
            }
        }
    }
    out
}

fn text(f: Option<&Field>) -> Option<String> {
    match f? {
        Field::StringValue(s) => Some(s.clone()),
        Field::LongValue(v) => Some(v.to_string()),
        Field::DoubleValue(v) => Some(v.to_string()),
        Field::BooleanValue(v) => Some(v.to_string()),
        _ => None,
    }
}

fn long(f: Option<&Field>) -> Result<i64, WarehouseError> {
    match f {
        Some(Field::LongValue(v)) => Ok(*v),
        Some(Field::StringValue(s)) => s
            .parse()
            .map_err(|_| WarehouseError::Redshift(format!("{s:?} is not a count"))),
        other => Err(WarehouseError::Redshift(format!(
            "{other:?} is not a count"
        ))),
    }
}

fn double(f: Option<&Field>) -> Option<f64> {
    match f? {
        Field::DoubleValue(v) => Some(*v),
        Field::LongValue(v) => Some(*v as f64),
        Field::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

/// Redshift returns numerics as text: read exactly.
fn decimal(f: Option<&Field>) -> Result<Option<Decimal>, WarehouseError> {
    match f {
        None | Some(Field::IsNull(_)) => Ok(None),
        Some(Field::StringValue(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| WarehouseError::Redshift(format!("{s:?} is not a number"))),
        Some(Field::LongValue(v)) => Ok(Some(Decimal::from(*v))),
        Some(other) => Err(WarehouseError::Redshift(format!(
            "{other:?} is not a number"
        ))),
    }
}

/// A timestamp as the Data API writes one ("2026-11-30 09:00:00.123+00").
fn parse_timestamp(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z")
        .or_else(|_| DateTime::parse_from_rfc3339(t))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}
