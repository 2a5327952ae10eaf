//! `atlas dev` as a child process, as a user runs it, and the tokens
//! `atlas token` makes for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::atlas_bin;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Dev {
    child: Child,
    pub url: String,
}

impl Dev {
    /// Starts `atlas dev` and waits for its "running" line.
    pub fn start(args: &[&str], data_dir: &Path) -> Dev {
        Self::start_with(args, data_dir, &[])
    }

    /// `start` with these variables set as well.
    pub fn start_with(args: &[&str], data_dir: &Path, vars: &[(&str, &str)]) -> Dev {
        let port = free_port();
        let mut child = Command::new(atlas_bin())
            .arg("dev")
            .args(["--port", &port.to_string(), "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env_remove("DATABASE_URL")
            // Runs side by side share the machine's Redis, not its keys.
            .env("ATLAS_CACHE_NAMESPACE", format!("atlas-dev-test-{port}"))
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn atlas dev");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("Atlas is running") => break,
                Ok(_) => {}
                Err(e) => {
                    let _ = child.kill();
                    panic!("atlas dev did not come up: {e}");
                }
            }
        }
        Dev {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Ctrl-C, as a user would, and the exit status.
    pub fn interrupt(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "atlas dev did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token for `tenant` with every scope, from `atlas token`.
pub fn token(tenant: i64, data_dir: &Path) -> String {
    let out = Command::new(atlas_bin())
        .args(["token", "--tenant", &tenant.to_string(), "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("atlas token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A fresh directory for a stack's state.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "atlas-dev-test-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
