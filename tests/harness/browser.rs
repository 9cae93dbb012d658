//! A real browser for the status page: Debian's headless Chromium (`/usr/bin/chromium`,
//! package `chromium`) driven through its chromedriver (`/usr/bin/chromedriver`, package
//! `chromium-driver`) over WebDriver, with the `fantoccini` client speaking plain HTTP to
//! the driver on loopback. No browser is downloaded.
//!
//! [`Browser`] owns the driver process (killed on drop) and one session with a throwaway
//! profile. Screenshots go to `target/test-artifacts/<suite>/` (not committed) and are
//! decoded before they are accepted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether Chromium and chromedriver are installed. Under CI their absence fails the
/// suite (tests/run.sh installs them); elsewhere the suite is skipped, saying so.
pub fn available(suite: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !super::ci(),
        "{missing:?} missing: apt-get install chromium chromium-driver (tests/run.sh does it)"
    );
    eprintln!("SKIP {suite}: {missing:?} not installed (apt-get install chromium chromium-driver)");
    false
}

/// Where a suite's artifacts go: `target/test-artifacts/<suite>/`, made empty.
pub fn artifacts(suite: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp
        .parent()
        .expect("target/tmp has a parent")
        .join("test-artifacts")
        .join(suite);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// One headless Chromium session. Killed (driver and browser) on drop.
pub struct Browser {
    pub client: fantoccini::Client,
    rt: tokio::runtime::Handle,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// chromedriver on a free loopback port, then a session: headless, a fresh profile,
    /// the collector's test CA accepted (`acceptInsecureCerts`: the CA is not in the
    /// browser's store), a window of `width` x `height`.
    pub fn start(rt: &tokio::runtime::Runtime, log: &Path, width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        super::wait_for("chromedriver to answer", super::DEADLINE, || {
            super::rest::get(&format!("{url}/status"), None)
                .ok()
                .filter(|r| r.status == 200)
        });
        let profile = tempfile::tempdir().expect("a profile directory");
        let caps = serde_json::json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root in CI, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let caps = match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = rt
            .block_on(
                fantoccini::ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(&url),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session: {e}\nchromedriver log:\n{}",
                    super::tail(log, 30)
                )
            });
        Browser {
            client,
            rt: rt.handle().clone(),
            driver,
            _profile: profile,
        }
    }

    pub fn goto(&self, url: &str) {
        self.rt
            .block_on(self.client.goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Runs `script` (a function body; `return` gives the answer) in the page.
    pub fn js(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.client.execute(script, Vec::new()))
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// The window's outer size; the viewport follows (headless has no browser chrome).
    pub fn resize(&self, width: u32, height: u32) {
        self.rt
            .block_on(self.client.set_window_size(width, height))
            .unwrap_or_else(|e| panic!("resize to {width}x{height}: {e}"));
    }

    /// The page's text as a person reads it.
    pub fn text(&self) -> String {
        self.js("return document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A screenshot of the viewport saved as `dir/name.png`, decoded: its (width, height)
    /// in pixels.
    pub fn screenshot(&self, dir: &Path, name: &str) -> (PathBuf, (u32, u32)) {
        let png = self
            .rt
            .block_on(self.client.screenshot())
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).expect("write the screenshot");
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder
            .read_info()
            .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
        let mut buf = vec![0; reader.output_buffer_size().expect("a bounded image")];
        let frame = reader
            .next_frame(&mut buf)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
        (path, (frame.width, frame.height))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Bounded: this may run while a failed test unwinds.
        let client = self.client.clone();
        let _ = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), client.close()).await
        });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
