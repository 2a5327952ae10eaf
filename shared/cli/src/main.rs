//! `atlas`: the operator's and developer's entry point. Composition only:
//! each command wires library code together.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod plugin;

#[derive(Parser)]
#[command(
    name = "atlas",
    version,
    about = "Atlas multi-tenant telemetry: local stack, migrations, tokens, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations (safe to run again).
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Run Atlas on this machine: PostgreSQL, migrations, demo data, the API
    /// on http://127.0.0.1:9000 and the flusher.
    Dev {
        /// Use this database instead of a private cluster under --data-dir.
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long, default_value_t = 9000)]
        port: u16,
        #[arg(long, default_value = ".atlas")]
        data_dir: PathBuf,
        /// Port of the private PostgreSQL cluster.
        #[arg(long, default_value_t = 54329)]
        pg_port: u16,
        /// The analytics warehouse (default: a database `<database>_warehouse`
        /// beside the stack's, created if missing).
        #[arg(long, env = "ATLAS_WAREHOUSE_URL")]
        warehouse_url: Option<String>,
    },
    /// Print a JWT for a tenant, signed with the local stack's secret.
    Token {
        #[arg(long)]
        tenant: i64,
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(i64).range(1..=8760))]
        ttl_hours: i64,
        #[arg(long, default_value = ".atlas")]
        data_dir: PathBuf,
        /// What the token may do; repeat for several (default: all three).
        #[arg(long = "scope", value_parser = ["telemetry:write", "read", "admin"])]
        scopes: Vec<String>,
    },
    /// Report entities whose hot projection disagrees with their latest
    /// reading (the seed's "monitor divergence"): one JSON line each, then
    /// a summary line. Exits with status 2 when any diverge.
    Reconcile {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        tenant: i64,
        /// Only this attribute (default: every attribute of the tenant).
        #[arg(long)]
        attribute: Option<String>,
        /// Most entities reported per attribute.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        limit: i64,
    },
    /// The freshness of every read path, as the lag checker last published
    /// it: state (the seed's colours), lag, the measurement's age, and why
    /// a path is not green. Exit status: 0 all green, 1 any yellow or
    /// orange, 2 any red or nothing published.
    Status {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Measure now, as the lag checker would (replicas from
        /// ATLAS_REPLICA_URLS, the slot from ATLAS_CDC_SLOT), instead of
        /// reading freshness_status; nothing is published.
        #[arg(long)]
        measure: bool,
        /// Redraw every 2 s until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Benchmarks; each prints one JSON object as its last line.
    #[command(subcommand)]
    Bench(Bench),
    /// Tools for plugin authors.
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// The sample events for `cargo lambda invoke`.
    #[command(subcommand)]
    Events(Events),
    /// The change pipeline into the analytics warehouse.
    #[command(subcommand)]
    Cdc(Cdc),
}

#[derive(Subcommand)]
enum Cdc {
    /// Run the CDC-batch loader once on a Lambda MSK event file (Debezium
    /// records) against ATLAS_WAREHOUSE_URL; prints what it did as JSON.
    Load {
        #[arg(long)]
        event: PathBuf,
        /// Where dead letters go when ATLAS_OBJECT_STORE is unset.
        #[arg(long, default_value = ".atlas/objects")]
        dead_letters: PathBuf,
    },
    /// Print the changes waiting in a CDC slot as one Lambda MSK event of
    /// Debezium records, without moving the slot (created if missing; a new
    /// slot's snapshot comes first).
    Peek {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "atlas_cdc")]
        slot: String,
    },
}

#[derive(Subcommand)]
enum Events {
    /// Set every MSK sample record's timestamp to now, so its readings lie
    /// inside the accept window (the HTTP samples need no refresh).
    Refresh {
        #[arg(long, default_value = "events")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// The write path end to end against a local PostgreSQL.
    Ingest(IngestBench),
    /// The example plugin in the sandbox against the same logic run natively.
    Plugin(PluginBench),
    /// Reads through the query API handler: the seed's Query 1, point
    /// reads cold and cached, and Query 1 on the time series alone.
    Query(QueryBench),
    /// Changes into the warehouse: the ingest bench's writes, the change
    /// tap and the CDC-batch loader at once; lag from commit to loaded.
    Cdc(CdcBench),
    /// Each function's binary started as Lambda starts it, against a local
    /// Runtime API: init (exec to the first event asked for), the first
    /// invocation, and the binary's size.
    Coldstart(ColdstartBench),
}

#[derive(Args)]
struct ColdstartBench {
    /// Where the function binaries are (default: the release build's,
    /// `$CARGO_TARGET_DIR/release` or `target/release`), as Lambda runs them.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Starts per function.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    runs: u16,
    /// `cargo lambda build --release --arm64 --output-format zip`'s output
    /// directory, to report each zip's size.
    #[arg(long)]
    lambda_dir: Option<PathBuf>,
    #[command(flatten)]
    server: BenchServer,
}

/// Where a bench's databases live: scratch ones are created and dropped
/// there, and the query bench keeps its dataset there.
#[derive(Args)]
struct BenchServer {
    /// A PostgreSQL server (its superuser, to create databases).
    #[arg(
        long = "database-url",
        env = "ATLAS_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    url: String,
}

#[derive(Args)]
struct CdcBench {
    /// A small run that finishes in well under a minute.
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    readings: Option<usize>,
    /// Load every MSK event twice, as a redelivered batch.
    #[arg(long)]
    redeliver: bool,
    #[command(flatten)]
    server: BenchServer,
}

#[derive(Args)]
struct QueryBench {
    /// Entities in the dataset (kept between runs; built when missing);
    /// several, comma-separated, are measured one after the other, with
    /// Query 1's growth from the smallest to the largest.
    #[arg(long, value_delimiter = ',', default_value = "1000000", value_parser = clap::value_parser!(i64).range(1..))]
    entities: Vec<i64>,
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..))]
    tenants: i64,
    /// Requests timed per kind.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Readings per attribute and entity in the time series (1 to 24);
    /// several, comma-separated, are each measured.
    #[arg(long, value_delimiter = ',', default_value = "4", value_parser = clap::value_parser!(i64).range(1..=24))]
    history: Vec<i64>,
    /// Build the dataset again even if it exists.
    #[arg(long)]
    rebuild: bool,
    #[command(flatten)]
    server: BenchServer,
    #[arg(
        long,
        env = "ATLAS_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
}

#[derive(Args)]
struct PluginBench {
    /// Readings per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value_t = 300)]
    iterations: usize,
}

#[derive(Args)]
struct IngestBench {
    /// A small run that finishes in well under a minute.
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    readings: Option<usize>,
    #[command(flatten)]
    server: BenchServer,
    #[arg(long, default_value_t = 2)]
    writers: usize,
    #[arg(long, default_value_t = 2)]
    flushers: usize,
    /// Readings per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Staging rows per flush transaction.
    #[arg(long, default_value_t = 20_000)]
    flush_batch: i64,
    /// Make this module every tenant's plugin and run the benchmark without
    /// and then with it, side by side. It must keep readings acceptable to
    /// the bench catalog (attr_00..attr_49).
    #[arg(long)]
    plugin: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    atlas_cloud::telemetry::init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e}");
        // "db error" alone says nothing; the server's message is its source.
        let mut cause = e.source();
        while let Some(c) = cause {
            eprintln!("  caused by: {c}");
            cause = c.source();
        }
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        Command::Migrate { database_url } => {
            let settings = atlas_app::Settings::from_env()?;
            let db = settings.database_at(&database_url, atlas_store::DbRole::AsLogin);
            let applied = atlas_store::migrate(&db, &settings.window()).await?;
            println!("{applied} migration(s) applied; schema is up to date");
        }
        Command::Dev {
            database_url,
            port,
            data_dir,
            pg_port,
            warehouse_url,
        } => {
            let opts = atlas_devstack::dev::DevOptions {
                database_url,
                data_dir: data_dir.clone(),
                port,
                pg_port,
                warehouse_url,
            };
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            atlas_devstack::dev::run(opts, shutdown, |addr, url| {
                println!("Atlas is running on http://{addr}  (database {})", atlas_store::redact_url(url));
                println!("  token:  TOKEN=$(cargo run -q --bin atlas -- token --tenant 1 --data-dir {})", data_dir.display());
                println!(
                    "  send:   curl -s -X POST http://{addr}/v1/telemetry -H \"Authorization: Bearer $TOKEN\" \\\n          -d '{{\"readings\":[{{\"entity_id\":1,\"attribute\":\"temperature\",\"value\":21.5}}]}}'"
                );
                println!("  status: http://{addr}{}  (freshness of every read path, in a browser)", atlas_devstack::dev::STATUS_PAGE);
                println!("Ctrl-C stops it.");
            })
            .await?;
        }
        Command::Token {
            tenant,
            ttl_hours,
            data_dir,
            scopes,
        } => {
            let tenant = atlas_core::TenantId::new(tenant)?;
            let scopes: Vec<atlas_http::Scope> = if scopes.is_empty() {
                atlas_http::Scope::ALL.to_vec()
            } else {
                scopes
                    .iter()
                    .filter_map(|s| atlas_http::Scope::parse(s))
                    .collect()
            };
            let secret = atlas_devstack::secret::load_or_create(&data_dir)?;
            let signer = atlas_gateway::jwt::Signer::new(&secret)?;
            println!(
                "{}",
                signer.issue(tenant, &scopes, chrono::Duration::hours(ttl_hours))?
            );
        }
        Command::Reconcile {
            database_url,
            tenant,
            attribute,
            limit,
        } => {
            let pool =
                atlas_store::DbConfig::new(database_url, atlas_store::DbRole::Worker).pool()?;
            let tenant = atlas_core::TenantId::new(tenant)?;
            let found = match attribute {
                Some(a) => {
                    let a = atlas_core::AttributeName::parse(&a)?;
                    atlas_store::hot::divergent(&pool, tenant, &a, limit).await?
                }
                None => atlas_store::hot::divergent_all(&pool, tenant, limit).await?,
            };
            for d in &found {
                println!("{}", serde_json::to_string(d)?);
            }
            println!(
                "{}",
                serde_json::json!({"reconcile": "entity_jsonb", "tenant_id": tenant.get(), "divergent": found.len()})
            );
            if !found.is_empty() {
                std::process::exit(2);
            }
        }
        Command::Status {
            database_url,
            measure,
            watch,
        } => std::process::exit(status(&database_url, measure, watch).await?),
        Command::Plugin(cmd) => plugin::run(cmd).await?,
        Command::Events(Events::Refresh { dir }) => {
            for path in atlas_devstack::events::refresh(&dir, chrono::Utc::now())? {
                println!("refreshed {}", path.display());
            }
        }
        Command::Cdc(Cdc::Load {
            event,
            dead_letters,
        }) => {
            let mut settings = atlas_app::Settings::from_env()?;
            settings
                .objects
                .get_or_insert(atlas_objects::Location::Dir(dead_letters));
            let text = std::fs::read_to_string(&event)
                .map_err(|e| format!("cannot read {}: {e}", event.display()))?;
            let event: aws_lambda_events::event::kafka::KafkaEvent = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a Lambda MSK event: {e}", event.display()))?;
            let loader = atlas_app::startup::cdc_loader(&settings).await?;
            let report = loader.handle(&event).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Cdc(Cdc::Peek { database_url, slot }) => {
            let cfg: tokio_postgres::Config = database_url.parse()?;
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let cfg = atlas_tap::TapConfig {
                slot,
                batch_size: usize::MAX,
                ..atlas_tap::TapConfig::default()
            };
            let tap = atlas_tap::Tap::new(client, cfg).await?;
            let read = if tap.needs_snapshot() {
                tap.snapshot().await?
            } else {
                tap.read().await?
            };
            match read.events.first() {
                Some(event) => println!("{}", serde_json::to_string_pretty(event)?),
                None => eprintln!("no changes are waiting in the slot"),
            }
        }
        Command::Bench(Bench::Plugin(b)) => {
            let opts = atlas_bench::plugin::Options {
                batch: b.batch,
                iterations: b.iterations,
                ..Default::default()
            };
            let report = atlas_bench::plugin::run(&opts)?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Bench(Bench::Ingest(b)) => {
            let defaults = atlas_bench::ingest::Options::default();
            let readings = b
                .readings
                .unwrap_or(if b.quick { 200_000 } else { defaults.readings });
            let opts = atlas_bench::ingest::Options {
                server_url: b.server.url,
                readings,
                writers: b.writers,
                flushers: b.flushers,
                batch: b.batch,
                flush_batch: b.flush_batch,
                plugin: b.plugin,
                ..defaults
            };
            let report = atlas_bench::ingest::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Bench(Bench::Cdc(b)) => {
            let defaults = atlas_bench::ingest::Options::default();
            let readings = b
                .readings
                .unwrap_or(if b.quick { 100_000 } else { defaults.readings });
            let opts = atlas_bench::cdc::Options {
                ingest: atlas_bench::ingest::Options {
                    server_url: b.server.url,
                    readings,
                    ..defaults
                },
                redeliver: b.redeliver,
                loader_sample: 100_000,
            };
            let report = atlas_bench::cdc::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Bench(Bench::Coldstart(b)) => {
            let opts = atlas_bench::coldstart::Options {
                bin_dir: b.bin_dir.unwrap_or_else(|| {
                    std::env::var_os("CARGO_TARGET_DIR")
                        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                        .join("release")
                }),
                runs: usize::from(b.runs),
                server_url: b.server.url,
                lambda_dir: b.lambda_dir,
            };
            let report = atlas_bench::coldstart::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Bench(Bench::Query(b)) => {
            let opts = atlas_bench::query::Options {
                server_url: b.server.url,
                entities: b.entities[0],
                tenants: b.tenants,
                iterations: b.iterations,
                rebuild: b.rebuild,
                redis_url: b.redis_url,
                history: b.history[0],
            };
            let report = atlas_bench::query::run_all(opts, &b.entities, &b.history).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}

/// `atlas status`: the table, once or redrawn until Ctrl-C; the exit status
/// of the last one drawn.
async fn status(
    database_url: &str,
    measure: bool,
    watch: bool,
) -> Result<i32, Box<dyn std::error::Error + Send + Sync>> {
    use std::io::IsTerminal;
    let mut settings = atlas_app::Settings::from_env()?;
    settings.database.url = Some(database_url.to_owned());
    // Reading the table needs only it; measuring builds what the checker
    // measures (replica discovery and the warehouse included).
    let checker = if measure {
        Some(atlas_app::startup::lag_checker(&settings).await?)
    } else {
        None
    };
    let pool = settings
        .database_at(database_url, atlas_store::DbRole::AsLogin)
        .pool()?;
    let colour = std::io::stdout().is_terminal();
    loop {
        let rows = match &checker {
            Some(checker) => {
                atlas_freshness::checker::rows(&checker.measure().await?, &settings.lag_checker)
            }
            None => atlas_freshness::status::read(&pool).await?,
        };
        let mut screen = String::new();
        if watch {
            screen.push_str("\x1b[2J\x1b[H");
        }
        if rows.is_empty() {
            screen.push_str(
                "nothing published in freshness_status yet: is the lag checker running? \
                 (--measure measures now)\n",
            );
        } else {
            screen.push_str(&atlas_freshness::status::table(
                &rows,
                chrono::Utc::now(),
                colour,
            ));
        }
        print!("{screen}");
        let code = atlas_freshness::status::exit_code(&rows);
        if !watch {
            return Ok(code);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(code),
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
}
