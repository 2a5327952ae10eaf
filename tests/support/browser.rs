//! A real browser for the pages people look at: Debian's headless
//! Chromium, driven through ChromeDriver's WebDriver API (plain HTTP and
//! JSON, so no client library is needed). `.ci/run` installs both
//! (`chromium`, `chromium-driver`); a test that needs them fails loudly
//! without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// ChromeDriver on a free port, and a session of a fresh headless
    /// Chromium profile. The flags keep Chromium from reaching out to the
    /// network this machine does not have.
    pub async fn start() -> Self {
        for needed in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(needed).exists(),
                "{needed} is required for the browser tests: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = crate::dev::free_port();
        let profile = std::env::temp_dir().join(format!(
            "atlas-chromium-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut browser = Browser {
            driver,
            http: reqwest::Client::new(),
            session: format!("http://127.0.0.1:{port}/session"),
            profile,
        };
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = browser
                .http
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not answer on port {port}");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,1000",
            &format!("--user-data-dir={}", browser.profile.display()),
        ];
        let created = browser
            .call(
                reqwest::Method::POST,
                "",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                }}}),
            )
            .await;
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"));
        browser.session = format!("{}/{id}", browser.session);
        browser
    }

    /// One WebDriver command; its `value`.
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let req = self.http.request(method, format!("{}{path}", self.session));
        let req = if body.is_null() { req } else { req.json(&body) };
        let resp = req.send().await.expect("chromedriver answers");
        let status = resp.status();
        let out: Value = resp.json().await.expect("a WebDriver answer is JSON");
        assert!(status.is_success(), "WebDriver {path}: {status} {out}");
        out["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// The value of `script`'s `return`, run in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Saves what the page looks like now as a PNG in the test artifacts
    /// directory; its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot is base64"))
            .expect("a screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = artifacts().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium leaves the driver's process group, so it is found by its
        // profile, which is this browser's alone.
        let _ = Command::new("pkill")
            .args(["-KILL", "-f"])
            .arg(format!("user-data-dir={}", self.profile.display()))
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where tests leave what a person may want to look at afterwards:
/// `ATLAS_TEST_ARTIFACTS`, else `test-artifacts` in the target directory.
pub fn artifacts() -> PathBuf {
    let dir = std::env::var_os("ATLAS_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::atlas_bin()
                .parent()
                .and_then(Path::parent)
                .expect("target dir")
                .join("test-artifacts")
        });
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}
