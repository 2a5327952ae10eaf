//! `atlas plugin`: check and try a module locally with the limits ingest
//! would apply, then manage the tenant's plugins through the API.

use std::path::{Path, PathBuf};

use atlas_plugin_host::{Abi, Decoded, Host, Limits};
use clap::{Args, Subcommand};

use crate::BoxError;

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Run the upload checks on a module: size, ABI, imports, a dry run.
    Validate {
        file: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run a module on a batch with upload limits; print its output and the fuel it used.
    Test {
        file: PathBuf,
        /// A request body: {"readings": [...]}.
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Upload a module as the plugin's next version (inactive unless --activate).
    Upload {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// What ingest does when the plugin fails: reject the batch (422) or
        /// stage it untransformed.
        #[arg(long, default_value = "reject", value_parser = ["reject", "pass_through"])]
        on_failure: String,
        /// Make the new version the tenant's active plugin.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Make a version the tenant's active plugin; rolling back is
    /// activating an older version.
    Activate {
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The tenant's plugins and their versions.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Deactivate a plugin and remove it from the list.
    Delete {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Args)]
pub struct LimitArgs {
    #[arg(long, default_value_t = Limits::default().fuel)]
    fuel: u64,
    #[arg(long, default_value_t = Limits::default().timeout.as_millis() as u64)]
    timeout_ms: u64,
    #[arg(long, default_value_t = (Limits::default().memory_bytes >> 20) as u64)]
    memory_mb: u64,
    #[arg(long, default_value_t = (Limits::default().output_bytes >> 10) as u64)]
    output_kb: u64,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits, BoxError> {
        let limits = Limits {
            fuel: self.fuel,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            memory_bytes: (self.memory_mb as usize) << 20,
            output_bytes: (self.output_kb as usize) << 10,
        };
        limits.check()?;
        Ok(limits)
    }
}

#[derive(Args)]
pub struct ApiArgs {
    /// The Atlas API: `atlas dev`'s, or the API Gateway URL.
    #[arg(long, env = "ATLAS_API_URL", default_value = "http://127.0.0.1:9000")]
    api_url: String,
    /// A bearer token for the tenant (locally: `atlas token --tenant ID`).
    #[arg(long, env = "ATLAS_TOKEN", hide_env_values = true)]
    token: String,
}

pub async fn run(cmd: PluginCmd) -> Result<(), BoxError> {
    match cmd {
        PluginCmd::Validate { file, limits } => {
            let wasm = read(&file)?;
            let (plugin, fuel) =
                atlas_plugin_host::check_upload(&*Host::new()?, &wasm, &limits.limits()?)?;
            println!(
                "{}: valid (ABI v{}, {} bytes, dry run used {fuel} fuel)",
                file.display(),
                plugin.abi().version(),
                wasm.len()
            );
        }
        PluginCmd::Test {
            file,
            input,
            limits,
        } => {
            let (wasm, batch) = (read(&file)?, read(&input)?);
            let host = Host::new()?;
            let plugin = host.compile(&wasm)?;
            // The input is JSON for either ABI version; a version-2 plugin
            // gets it in its binary form, and its answer is shown as JSON.
            let readings = match Abi::Json.decode(&batch) {
                Ok(Decoded::Readings(r)) => r,
                Ok(Decoded::Rejected(_)) => {
                    return Err(format!(
                        "{}: expected a batch, {{\"readings\": [...]}}",
                        input.display()
                    )
                    .into());
                }
                Err(e) => return Err(format!("{}: {e}", input.display()).into()),
            };
            let started = std::time::Instant::now();
            let (answer, out) = plugin.transform(&host, &readings, &limits.limits()?)?;
            let took = started.elapsed();
            let answer = match answer {
                Decoded::Readings(readings) => serde_json::json!({ "readings": readings }),
                Decoded::Rejected(error) => serde_json::json!({ "error": error }),
            };
            println!("{}", serde_json::to_string_pretty(&answer)?);
            eprintln!(
                "fuel used: {}  call: {:.3} ms  instantiate: {} us",
                out.fuel_used,
                took.as_secs_f64() * 1e3,
                out.instantiate.as_micros()
            );
        }
        PluginCmd::Upload {
            file,
            name,
            limits,
            on_failure,
            activate,
            api,
        } => {
            let wasm = read(&file)?;
            let l = limits.limits()?;
            let atlas = api.client()?;
            let up = atlas
                .upload_plugin(
                    &name,
                    wasm,
                    &atlas_client::PluginLimits {
                        fuel: Some(l.fuel),
                        timeout_ms: Some(l.timeout.as_millis() as u64),
                        memory_mb: Some((l.memory_bytes >> 20) as u64),
                        output_kb: Some((l.output_bytes >> 10) as u64),
                        on_failure: Some(on_failure),
                    },
                )
                .await?;
            let version = up["version"].as_i64().unwrap_or_default();
            let verb = if up["created"] == true {
                "uploaded as"
            } else {
                "unchanged: already"
            };
            eprintln!(
                "{name}: {verb} version {version} (sha256 {})",
                up["sha256"].as_str().unwrap_or("?")
            );
            if activate {
                let active = atlas.activate_plugin(&name, version).await?;
                eprintln!("{name}: version {version} is now active");
                println!("{}", serde_json::to_string_pretty(&active)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&up)?);
            }
        }
        PluginCmd::Activate { name, version, api } => {
            let active = api
                .client()?
                .activate_plugin(&name, i64::from(version))
                .await?;
            println!("{}", serde_json::to_string_pretty(&active)?);
        }
        PluginCmd::List { api } => {
            let list = api.client()?.plugins().await?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        PluginCmd::Delete { name, api } => {
            let out = api.client()?.delete_plugin(&name).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, BoxError> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

impl ApiArgs {
    /// The API client for these arguments; a 503 is retried, any other
    /// refusal carries the API's own code and message.
    fn client(&self) -> Result<atlas_client::Client, BoxError> {
        Ok(atlas_client::Client::new(
            &self.api_url,
            self.token.as_str(),
        )?)
    }
}
