//! Prometheus scrapes as a test reads them: fetch `/metrics`, check it with the real
//! `promtool check metrics` (Debian's `prometheus` package), and read one sample's value.

use super::rest::{self, Tls};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `GET url` (loopback), with `headers`, trusting `ca` if given: (status, body).
pub fn scrape(url: &str, ca: Option<&std::path::Path>, headers: &[(&str, &str)]) -> (u16, String) {
    let r = rest::request(Tls { ca, identity: None }, "GET", url, headers, None)
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    (r.status, r.body)
}

/// The `promtool` binary, if installed. Under CI its absence fails the suite (tests/run.sh
/// installs it).
pub fn promtool() -> Option<PathBuf> {
    let found = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            !super::ci(),
            "promtool is missing (apt-get install prometheus; tests/run.sh does it)"
        );
        eprintln!("SKIP promtool check: promtool is not installed (apt-get install prometheus)");
    }
    found
}

/// `promtool check metrics` over `text`: `Err(its output)` on any problem, lint included.
/// `Ok(false)` when promtool is not installed outside CI.
pub fn promtool_check(text: &str) -> Result<bool, String> {
    let Some(bin) = promtool() else {
        return Ok(false);
    };
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = super::text(&out);
    if out.status.success() && said.trim().is_empty() {
        Ok(true)
    } else {
        Err(format!("promtool check metrics: {}\n{said}", out.status))
    }
}

/// The value of the sample `name` whose labels include every one of `labels`, if any.
/// Reads the text format's sample lines (`name{k="v",...} value`).
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, v) = line.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, val)| rest.split(',').any(|kv| kv == format!("{k}=\"{val}\"")));
            all.then(|| v.parse().ok()).flatten()
        })
}

/// [`value`], or 0 when the series is absent.
pub fn value_or_zero(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(text, name, labels).unwrap_or(0.0)
}
