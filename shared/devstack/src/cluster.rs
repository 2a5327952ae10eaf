//! A private PostgreSQL cluster for `atlas dev`, made with the machine's own
//! PostgreSQL binaries (initdb + pg_ctl) under the data directory. initdb
//! refuses to run as root, so as root the cluster runs as `postgres`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries found (looked in $ATLAS_PG_BIN, /usr/lib/postgresql/*/bin and PATH); \
         install PostgreSQL or pass --database-url"
    )]
    NoBinaries,
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
}

impl Cluster {
    /// Initializes the cluster on first use, then starts it (or adopts it
    /// if it is already running) and makes sure database `atlas` exists.
    pub fn start(dir: &Path, port: u16) -> Result<Self, ClusterError> {
        let bin = find_binaries().ok_or(ClusterError::NoBinaries)?;
        std::fs::create_dir_all(dir)?;
        let run_as = is_root().then_some("postgres");
        let data = Self::data_dir(dir)?;
        let this = Self {
            bin,
            data,
            port,
            run_as,
        };
        if !this.data.join("PG_VERSION").exists() {
            std::fs::create_dir_all(&this.data)?;
            this.chown()?;
            tracing::info!(dir = %this.data.display(), "initializing a private PostgreSQL cluster");
            let mut initdb = this.pg("initdb");
            initdb.arg("-D").arg(&this.data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ]);
            this.run("initdb", &mut initdb)?;
        }
        this.launch()?;
        let mut exists = this.client("psql");
        exists.args([
            "-d",
            "postgres",
            "-Atc",
            "SELECT 'exists' FROM pg_database WHERE datname = 'atlas'",
        ]);
        let out = exists.output()?;
        if !String::from_utf8_lossy(&out.stdout).contains("exists") {
            let mut c = this.client("createdb");
            c.arg("atlas");
            this.run("createdb", &mut c)?;
        }
        Ok(this)
    }

    /// A streaming replica of the server at `host:primary_port` (as
    /// `user`): `pg_basebackup -R` into the empty directory `data`, then
    /// started on `port` as a hot standby. For tests of read routing.
    pub fn replica_of(
        (host, primary_port, user): (&str, u16, &str),
        data: &Path,
        port: u16,
    ) -> Result<Self, ClusterError> {
        let this = Self {
            bin: find_binaries().ok_or(ClusterError::NoBinaries)?,
            data: data.to_owned(),
            port,
            run_as: is_root().then_some("postgres"),
        };
        std::fs::create_dir_all(data)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))?;
        this.chown()?;
        let mut backup = this.pg("pg_basebackup");
        backup
            .args([
                "-h",
                host,
                "-p",
                &primary_port.to_string(),
                "-U",
                user,
                "-D",
            ])
            .arg(data)
            .args(["-R", "-X", "stream", "-c", "fast"]);
        this.run(
            "pg_basebackup (the primary must allow replication connections in pg_hba.conf)",
            &mut backup,
        )?;
        // Debian keeps the configuration outside the data directory, so a
        // copy of its cluster has none of its own.
        for (name, text) in [
            (
                "postgresql.conf",
                "hot_standby = on\nshared_buffers = 32MB\n",
            ),
            (
                "pg_hba.conf",
                "local all all trust\nhost all all 127.0.0.1/32 trust\n",
            ),
            ("pg_ident.conf", ""),
        ] {
            if !data.join(name).exists() {
                std::fs::write(data.join(name), text)?;
            }
        }
        this.chown()?;
        this.launch()?;
        Ok(this)
    }

    /// Hands the data directory to the user the server runs as.
    fn chown(&self) -> Result<(), ClusterError> {
        match self.run_as {
            Some(user) => self.run(
                "chown",
                Command::new("chown").args(["-R", user]).arg(&self.data),
            ),
            None => Ok(()),
        }
    }

    /// Starts the server unless it is running already.
    fn launch(&self) -> Result<(), ClusterError> {
        let mut status = self.pg("pg_ctl");
        status.arg("status").arg("-D").arg(&self.data);
        if status.output()?.status.success() {
            return Ok(());
        }
        let log = self.data.join("server.log");
        let mut start = self.pg("pg_ctl");
        start
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(server_options(self.port, &self.data));
        self.run("pg_ctl start", &mut start)
            .map_err(|e| ClusterError::Step {
                step: "pg_ctl start",
                detail: format!("{e}; see {}", log.display()),
            })
    }

    /// Where the cluster for data directory `dir` lives. `postgres` may
    /// not be allowed into root's checkout (a home directory or a mktemp
    /// dir is mode 700), so root's cluster lives in a world-traversable
    /// place, one per data directory.
    pub fn data_dir(dir: &Path) -> std::io::Result<PathBuf> {
        if is_root() {
            let key = std::path::absolute(dir)?
                .to_string_lossy()
                .replace(['/', ' '], "_");
            Ok(PathBuf::from("/var/tmp/atlas-dev").join(key).join("pg"))
        } else {
            std::path::absolute(dir.join("pg"))
        }
    }

    /// Stops the cluster and deletes its files.
    pub fn destroy(self) -> Result<(), ClusterError> {
        self.stop()?;
        std::fs::remove_dir_all(&self.data)?;
        Ok(())
    }

    pub fn url(&self) -> String {
        self.url_of("atlas")
    }

    /// The URL of database `db` on this cluster.
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn stop(&self) -> Result<(), ClusterError> {
        self.stop_mode("fast")
    }

    /// Stops the server the way a crash would (`pg_ctl stop -m immediate`:
    /// no checkpoint); the next start recovers from the WAL. For crash tests.
    pub fn crash(&self) -> Result<(), ClusterError> {
        self.stop_mode("immediate")
    }

    fn stop_mode(&self, mode: &str) -> Result<(), ClusterError> {
        let mut stop = self.pg("pg_ctl");
        stop.arg("stop")
            .arg("-m")
            .arg(mode)
            .arg("-D")
            .arg(&self.data);
        self.run("pg_ctl stop", &mut stop)
    }

    /// A client tool aimed at this cluster as `postgres`.
    fn client(&self, tool: &str) -> Command {
        let mut c = self.pg(tool);
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        c
    }

    fn pg(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, step: &'static str, cmd: &mut Command) -> Result<(), ClusterError> {
        let out = cmd.output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ClusterError::Step {
                step,
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
            })
        }
    }
}

fn find_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ATLAS_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        })
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The server's options as `pg_ctl -o` takes them: pg_ctl pastes them into
/// a shell command line, so the socket directory (the data directory, a
/// path the user chose) is single-quoted.
fn server_options(port: u16, socket_dir: &Path) -> String {
    let dir = socket_dir.display().to_string().replace('\'', r"'\''");
    // Logical WAL: `atlas dev`'s change tap reads it.
    format!("-p {port} -c listen_addresses=127.0.0.1 -c wal_level=logical -k '{dir}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_directory_reaches_the_shell_quoted() {
        assert_eq!(
            server_options(5, Path::new("/tmp/a b'c;rm -rf x")),
            r"-p 5 -c listen_addresses=127.0.0.1 -c wal_level=logical -k '/tmp/a b'\''c;rm -rf x'"
        );
    }
}
