//! `atlas bench coldstart`: each function's binary started the way Lambda
//! starts a `provided.al2023` bootstrap, against a stand-in for the Lambda
//! Runtime API served here. Init is the time from exec to the function's
//! first `GET /runtime/invocation/next` (everything its `main` does before
//! it can take an event); the first invocation is from handing it a sample
//! event from `events/` to its response.
//!
//! What this leaves out of a real cold start: Lambda's own work before the
//! exec (fetching and unpacking the code, the microVM), which no binary
//! can change. The process and its page cache are as cold as the first run
//! makes them; later runs see the binary in the page cache, as a Lambda
//! host that keeps a function's code does.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::scratch::ScratchDb;
use crate::{percentile, round3};

use crate::BoxError;

/// Each function: its name, its binary, the sample event its first
/// invocation gets, and whether it runs until its deadline (scheduled). In
/// this order the flusher moves what ingest staged, and the query API then
/// finds the sample's entity.
const FUNCTIONS: [(&str, &str, &str, bool); 6] = [
    (
        "ingest",
        "ingest",
        include_str!("../../../events/apigw-post-telemetry.json"),
        false,
    ),
    (
        "flusher",
        "flusher",
        include_str!("../../../events/eventbridge-schedule.json"),
        true,
    ),
    (
        "query-api",
        "query-api",
        include_str!("../../../events/apigw-get-entity.json"),
        false,
    ),
    (
        "heartbeat",
        "heartbeat",
        include_str!("../../../events/eventbridge-schedule.json"),
        true,
    ),
    (
        "lag-checker",
        "lag-checker",
        include_str!("../../../events/eventbridge-schedule.json"),
        true,
    ),
    (
        "cdc-loader",
        "cdc-loader",
        include_str!("../../../events/msk-cdc.json"),
        false,
    ),
];

/// A scheduled function works until its deadline minus its stop margin;
/// the bench gives it a deadline `SCHEDULED_WINDOW_MS` beyond that, so its
/// first invocation is one pass of its loop (the flusher may then idle for
/// the rest of the window), not a minute.
const STOP_MARGIN_MS: u64 = 1000;
const SCHEDULED_WINDOW_MS: u64 = 100;

/// The longest the bench waits for a function's init or its invocation.
const PATIENCE: Duration = Duration::from_secs(60);

pub struct Options {
    /// Where the function binaries are (`target/release`).
    pub bin_dir: PathBuf,
    /// Starts per function.
    pub runs: usize,
    /// Server on which the functions' scratch databases are created.
    pub server_url: String,
    /// A zip per function from `cargo lambda build --release --arm64
    /// --output-format zip`, when it was run: `target/lambda/<bin>/bootstrap.zip`.
    pub lambda_dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct FunctionReport {
    pub binary: String,
    pub binary_bytes: u64,
    /// `None` when no zip was built (cargo-lambda is not on this machine).
    pub zip_bytes: Option<u64>,
    pub init_ms_p50: f64,
    pub init_ms_min: f64,
    pub init_ms_max: f64,
    pub first_invocation_ms_p50: f64,
    pub first_invocation_ms_min: f64,
    pub first_invocation_ms_max: f64,
    /// What the first invocation answered, as the function returned it
    /// (an HTTP status for the API functions), from the last run.
    pub answered: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub bin_dir: String,
    pub runs: usize,
    pub functions: std::collections::BTreeMap<&'static str, FunctionReport>,
    /// The worst function's init p50, against the ≤ 30 ms target.
    pub init_ms_p50_max: f64,
    /// The largest binary, against the ≤ 10 MB target.
    pub binary_bytes_max: u64,
}

pub async fn run(opts: &Options) -> Result<Report, BoxError> {
    if opts.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    for (_, bin, _, _) in FUNCTIONS {
        let path = opts.bin_dir.join(bin);
        if !path.is_file() {
            return Err(format!(
                "{} is missing: build the functions first (cargo build --release --workspace --bins)",
                path.display()
            )
            .into());
        }
    }
    let suffix = format!("{}_{}", std::process::id(), fastrand::u32(..));
    let db = ScratchDb::create(&opts.server_url, format!("atlas_bench_cold_{suffix}")).await?;
    // The sample events are tenant 1's, as `atlas dev` creates it: its
    // readings are accepted and its entity is found, so the first
    // invocation does a request's whole work.
    let (owner, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    atlas_devstack::demo::seed(&owner, &[1]).await?;
    let warehouse =
        ScratchDb::create(&opts.server_url, format!("atlas_bench_coldwh_{suffix}")).await?;
    let objects = std::env::temp_dir().join(format!("atlas-bench-cold-{suffix}"));
    std::fs::create_dir_all(&objects)?;
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("ATLAS_OBJECT_STORE", objects.display().to_string()),
        ("ATLAS_WAREHOUSE_URL", warehouse.url.clone()),
        (
            "ATLAS_CURSOR_KEY",
            format!("bench-cursor-key-{suffix}-0123456789abcdef"),
        ),
        ("ATLAS_FLUSH_STOP_MARGIN_MS", STOP_MARGIN_MS.to_string()),
        ("ATLAS_HEARTBEAT_STOP_MARGIN_MS", STOP_MARGIN_MS.to_string()),
        ("ATLAS_LAG_CHECK_STOP_MARGIN_MS", STOP_MARGIN_MS.to_string()),
    ];
    let result = measure_all(opts, &env).await;
    let _ = std::fs::remove_dir_all(&objects);
    db.drop_now().await?;
    warehouse.drop_now().await?;
    let functions = result?;
    Ok(Report {
        bench: "coldstart",
        bin_dir: opts.bin_dir.display().to_string(),
        runs: opts.runs,
        init_ms_p50_max: functions
            .values()
            .map(|f| f.init_ms_p50)
            .fold(0.0, f64::max),
        binary_bytes_max: functions
            .values()
            .map(|f| f.binary_bytes)
            .max()
            .unwrap_or(0),
        functions,
    })
}

async fn measure_all(
    opts: &Options,
    env: &[(&str, String)],
) -> Result<std::collections::BTreeMap<&'static str, FunctionReport>, BoxError> {
    let mut out = std::collections::BTreeMap::new();
    for (name, bin, event, scheduled) in FUNCTIONS {
        let path = opts.bin_dir.join(bin);
        let (mut inits, mut invocations) = (Vec::new(), Vec::new());
        let mut answered = String::new();
        for run in 1..=opts.runs {
            let start = start_once(name, &path, env, event, scheduled).await?;
            eprintln!(
                "coldstart {name} run {run}/{}: init {:.1} ms, first invocation {:.1} ms",
                opts.runs, start.init_ms, start.invocation_ms
            );
            inits.push(start.init_ms);
            invocations.push(start.invocation_ms);
            answered = start.answered;
        }
        let zip = opts
            .lambda_dir
            .as_ref()
            .map(|d| d.join(bin).join("bootstrap.zip"))
            .and_then(|z| std::fs::metadata(z).ok())
            .map(|m| m.len());
        out.insert(
            name,
            FunctionReport {
                binary: bin.to_owned(),
                binary_bytes: std::fs::metadata(&path)?.len(),
                zip_bytes: zip,
                init_ms_p50: round3(percentile(&mut inits, 0.5)),
                init_ms_min: round3(percentile(&mut inits, 0.0)),
                init_ms_max: round3(percentile(&mut inits, 1.0)),
                first_invocation_ms_p50: round3(percentile(&mut invocations, 0.5)),
                first_invocation_ms_min: round3(percentile(&mut invocations, 0.0)),
                first_invocation_ms_max: round3(percentile(&mut invocations, 1.0)),
                answered,
            },
        );
    }
    Ok(out)
}

struct Start {
    init_ms: f64,
    invocation_ms: f64,
    answered: String,
}

/// What the function asked of the Runtime API, and when.
enum Call {
    Next(Instant),
    Done { at: Instant, ok: bool, body: String },
    InitError(String),
}

/// One start: a fresh Runtime API on its own port, the binary exec'd
/// against it, one event, and the process killed once it has answered.
async fn start_once(
    name: &str,
    bin: &Path,
    env: &[(&str, String)],
    event: &'static str,
    scheduled: bool,
) -> Result<Start, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?;
    let (tx, mut calls) = mpsc::unbounded_channel();
    let deadline_ms = if scheduled {
        STOP_MARGIN_MS + SCHEDULED_WINDOW_MS
    } else {
        30_000
    };
    let server = tokio::spawn(serve(listener, tx, event, deadline_ms));
    let log = std::env::temp_dir().join(format!("atlas-bench-cold-{name}-{}.log", api.port()));
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("atlas-bench-{name}"))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/atlas-bench-{name}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env(
            "AWS_REGION",
            std::env::var("AWS_REGION").unwrap_or("us-east-1".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let outcome = async {
        let init = match tokio::time::timeout(PATIENCE, calls.recv()).await {
            Ok(Some(Call::Next(at))) => at - started,
            Ok(Some(Call::InitError(body))) => {
                return Err(format!("{name} failed to start: {body}"));
            }
            Ok(_) => return Err(format!("{name} answered before it asked for an event")),
            Err(_) => {
                return Err(format!(
                    "{name} did not ask for an event within {PATIENCE:?}"
                ));
            }
        };
        let handed = Instant::now();
        match tokio::time::timeout(PATIENCE, calls.recv()).await {
            Ok(Some(Call::Done { at, ok: true, body })) => Ok(Start {
                init_ms: init.as_secs_f64() * 1000.0,
                invocation_ms: (at - handed).as_secs_f64() * 1000.0,
                answered: summary(&body),
            }),
            Ok(Some(Call::Done { body, .. })) => {
                Err(format!("{name}'s first invocation failed: {body}"))
            }
            Ok(_) => Err(format!("{name} ended without answering")),
            Err(_) => Err(format!("{name} did not answer within {PATIENCE:?}")),
        }
    }
    .await;
    let _ = child.kill().await;
    server.abort();
    match outcome {
        Ok(start) => {
            let _ = std::fs::remove_file(&log);
            Ok(start)
        }
        Err(e) => {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "{e}\n{name}'s log ({}):\n{}",
                log.display(),
                tail.join("\n")
            )
            .into())
        }
    }
}

/// An API function's answer by its status code; another's as it is, when
/// short (a scheduled function's counts), else by its length.
fn summary(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) if v.get("statusCode").is_some() => format!("HTTP {}", v["statusCode"]),
        _ if body.len() <= 200 => body.to_owned(),
        _ => format!("{} bytes", body.len()),
    }
}

/// The Runtime API, as much of it as a function uses: one event on the
/// first `next` (later ones wait, as Lambda's do between events), and the
/// response, error and init-error reports.
async fn serve(
    listener: tokio::net::TcpListener,
    calls: mpsc::UnboundedSender<Call>,
    event: &'static str,
    deadline_ms: u64,
) {
    let handed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (calls, handed) = (calls.clone(), handed.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let (calls, handed) = (calls.clone(), handed.clone());
                async move {
                    Ok::<_, Infallible>(answer(req, &calls, &handed, event, deadline_ms).await)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    calls: &mpsc::UnboundedSender<Call>,
    handed: &std::sync::atomic::AtomicBool,
    event: &'static str,
    deadline_ms: u64,
) -> hyper::Response<Full<Bytes>> {
    let now = Instant::now();
    let path = req.uri().path().to_owned();
    let reply = |status: u16, body: Bytes| {
        hyper::Response::builder()
            .status(status)
            .body(Full::new(body))
            .expect("a valid response")
    };
    if path.ends_with("/runtime/invocation/next") {
        if handed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let _ = calls.send(Call::Next(now));
        let deadline = chrono::Utc::now().timestamp_millis() as u64 + deadline_ms;
        return hyper::Response::builder()
            .header("Lambda-Runtime-Aws-Request-Id", "bench-1")
            .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
            .header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:000000000000:function:atlas-bench",
            )
            .header(
                "Lambda-Runtime-Trace-Id",
                "Root=1-00000000-000000000000000000000000",
            )
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(event.as_bytes())))
            .expect("a valid response");
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let call = if path.ends_with("/response") {
        Call::Done {
            at: now,
            ok: true,
            body,
        }
    } else if path.ends_with("/runtime/init/error") {
        Call::InitError(body)
    } else if path.ends_with("/error") {
        Call::Done {
            at: now,
            ok: false,
            body,
        }
    } else {
        return reply(404, Bytes::from_static(b"{\"message\":\"no such route\"}"));
    };
    let _ = calls.send(call);
    reply(202, Bytes::from_static(b"{\"status\":\"OK\"}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_answer_is_summed_up_by_its_status() {
        assert_eq!(summary(r#"{"statusCode":202,"body":"{}"}"#), "HTTP 202");
        assert_eq!(summary(r#"{"moved":0}"#), r#"{"moved":0}"#);
        assert_eq!(summary(&"x".repeat(201)), "201 bytes");
    }

    #[test]
    fn every_sample_event_is_json() {
        for (name, _, event, _) in FUNCTIONS {
            serde_json::from_str::<serde_json::Value>(event)
                .unwrap_or_else(|e| panic!("{name}'s event: {e}"));
        }
    }
}
