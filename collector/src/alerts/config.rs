//! `[alerts]` in `collector.toml`: the hold-down, the webhooks (`[[alerts.webhook]]`) and
//! the Alertmanagers (`[[alerts.alertmanager]]`), parsed strictly and then validated with
//! every problem reported at once, like the rest of the collector's configuration.
//!
//! Shape checks (ranges, names, URLs) come first; file checks (secret files, CA files)
//! apart, in [`check_files`], so that a bad path and a bad number are both reported.
//! A secret is read once here and held in a [`Secret`], whose `Debug` is redacted: the
//! configuration is printed by `collector validate` and in test failures.

use crate::config::{int_in, secs_in};
use serde::Deserialize;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_HOLD_DOWN: Duration = Duration::from_secs(30);
pub const DEFAULT_EVALUATE_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_RETRIES: u32 = 5;
pub const DEFAULT_QUEUE_SIZE: usize = 1024;
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);
/// Alertmanager's default `resolve_timeout` is 5 m; firing alerts are re-sent well inside it
/// (and carry an `endsAt` of four periods ahead, as Prometheus does).
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// Sinks of each kind at most: each is a task, a queue and a metrics label.
pub const MAX_SINKS: usize = 16;
pub const MAX_ALERTMANAGER_URLS: usize = 8;
/// A shared secret shorter than this is refused (an HMAC key should be random, 32 bytes).
pub const MIN_SECRET_BYTES: usize = 16;
pub const MAX_SECRET_BYTES: u64 = 4096;
pub const MAX_URL_LEN: usize = 2048;

/// Alerting, checked. No sink configured: nothing is evaluated or sent.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// The `cluster` label and body field: which deployment this collector watches.
    pub cluster: String,
    /// A change must hold this long before it is sent; a change that reverts within it
    /// sends nothing.
    pub hold_down: Duration,
    /// How often the view is judged for changes.
    pub evaluate_interval: Duration,
    /// Retry backoff: the first step and the cap (doubling between them, with jitter).
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub webhooks: Vec<WebhookSink>,
    pub alertmanagers: Vec<AlertmanagerSink>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            cluster: "default".into(),
            hold_down: DEFAULT_HOLD_DOWN,
            evaluate_interval: DEFAULT_EVALUATE_INTERVAL,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            webhooks: Vec::new(),
            alertmanagers: Vec::new(),
        }
    }
}

impl AlertsConfig {
    pub fn enabled(&self) -> bool {
        !self.webhooks.is_empty() || !self.alertmanagers.is_empty()
    }
}

/// What every sink has: the per-attempt deadline, the retries, its queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub timeout: Duration,
    pub max_retries: u32,
    pub queue_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSink {
    pub name: String,
    pub url: String,
    /// The CA an `https://` receiver's certificate must chain to.
    pub ca_path: Option<PathBuf>,
    /// The HMAC-SHA256 key of the signature header, and the file it was read from.
    pub secret: Secret,
    pub secret_file: PathBuf,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerSink {
    pub name: String,
    /// Base URLs (`http://am1:9093`); each gets every alert (HA Alertmanagers deduplicate).
    pub urls: Vec<String>,
    pub ca_path: Option<PathBuf>,
    /// HTTP Basic user and password, when the Alertmanager sits behind one.
    pub basic_auth: Option<(String, Secret)>,
    /// The file the password was read from.
    pub password_file: Option<PathBuf>,
    pub resend_interval: Duration,
    pub delivery: Delivery,
}

/// Secret bytes read from a file. Never printed: `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

/// `[alerts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    cluster: Option<String>,
    hold_down_secs: Option<f64>,
    evaluate_interval_secs: Option<f64>,
    retry_initial_secs: Option<f64>,
    retry_max_secs: Option<f64>,
    /// The CA for every `https://` sink without its own `ca_path`.
    ca_path: Option<PathBuf>,
    webhook: Option<Vec<RawWebhook>>,
    alertmanager: Option<Vec<RawAlertmanager>>,
}

/// `[[alerts.webhook]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: Option<String>,
    url: Option<String>,
    secret_file: Option<PathBuf>,
    ca_path: Option<PathBuf>,
    timeout_secs: Option<f64>,
    max_retries: Option<i64>,
    queue_size: Option<i64>,
}

/// `[[alerts.alertmanager]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    name: Option<String>,
    urls: Option<Vec<String>>,
    ca_path: Option<PathBuf>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    timeout_secs: Option<f64>,
    max_retries: Option<i64>,
    queue_size: Option<i64>,
    resend_interval_secs: Option<f64>,
}

/// A printable cut of operator input for an error message.
fn shown(s: &str) -> String {
    s.chars()
        .take(64)
        .flat_map(char::escape_debug)
        .take(128)
        .collect()
}

/// A sink name: `[A-Za-z0-9._-]{1,64}` (it is a metrics label and a log field).
fn check_name(
    errs: &mut Vec<String>,
    table: &str,
    name: Option<String>,
    seen: &mut Vec<String>,
) -> String {
    let Some(name) = name else {
        errs.push(format!("{table}: name is required"));
        return String::new();
    };
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        errs.push(format!(
            "{table}: name \"{}\" must be 1-64 of A-Z a-z 0-9 . _ -",
            shown(&name)
        ));
    } else if seen.contains(&name) {
        errs.push(format!("{table}: name \"{name}\" is used by another sink"));
    }
    seen.push(name.clone());
    name
}

/// An `http://` or `https://` URL with a host, no credentials in it (they would reach
/// logs; Alertmanager takes `username`/`password_file`), no fragment.
pub fn check_url(u: &str) -> Result<http::Uri, String> {
    if u.len() > MAX_URL_LEN {
        return Err(format!("is longer than {MAX_URL_LEN} bytes"));
    }
    let uri: http::Uri = u
        .parse()
        .map_err(|_| format!("\"{}\" is not a URL", shown(u)))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "\"{}\" must start with http:// or https://",
                shown(u)
            ))
        }
    }
    let Some(auth) = uri.authority() else {
        return Err(format!("\"{}\" has no host", shown(u)));
    };
    if auth.as_str().contains('@') {
        return Err(
            "must not carry credentials (user:password@); use username and password_file".into(),
        );
    }
    if auth.host().is_empty() {
        return Err(format!("\"{}\" has no host", shown(u)));
    }
    Ok(uri)
}

fn delivery(
    errs: &mut Vec<String>,
    table: &str,
    timeout: Option<f64>,
    retries: Option<i64>,
    queue: Option<i64>,
) -> Delivery {
    Delivery {
        timeout: secs_in(
            errs,
            &format!("{table}: timeout_secs"),
            timeout,
            DEFAULT_TIMEOUT,
            0.1,
            120.0,
        ),
        max_retries: int_in(
            errs,
            &format!("{table}: max_retries"),
            retries,
            DEFAULT_MAX_RETRIES as usize,
            0..=20,
        ) as u32,
        queue_size: int_in(
            errs,
            &format!("{table}: queue_size"),
            queue,
            DEFAULT_QUEUE_SIZE,
            1..=100_000,
        ),
    }
}

/// Checks `[alerts]`; every problem goes to `errs`.
pub fn validate(errs: &mut Vec<String>, raw: Option<RawAlerts>) -> AlertsConfig {
    let d = AlertsConfig::default();
    let Some(raw) = raw else {
        return d;
    };
    let cluster = match raw.cluster {
        None => d.cluster.clone(),
        Some(c) if !c.is_empty() && c.chars().count() <= 64 && !c.chars().any(char::is_control) => {
            c
        }
        Some(c) => {
            errs.push(format!(
                "[alerts] cluster \"{}\" must be 1-64 characters without control characters",
                shown(&c)
            ));
            d.cluster.clone()
        }
    };
    let retry_initial = secs_in(
        errs,
        "[alerts] retry_initial_secs",
        raw.retry_initial_secs,
        d.retry_initial,
        0.01,
        600.0,
    );
    let retry_max = secs_in(
        errs,
        "[alerts] retry_max_secs",
        raw.retry_max_secs,
        d.retry_max,
        0.01,
        3600.0,
    );
    if retry_max < retry_initial {
        errs.push("[alerts] retry_max_secs must not be less than retry_initial_secs".into());
    }
    let mut names = Vec::new();
    let default_ca = raw.ca_path;
    // An https URL needs a CA: the client trusts only the operator's CA, never system roots.
    let need_ca = |errs: &mut Vec<String>, table: &str, uri: &http::Uri, ca: &Option<PathBuf>| {
        if uri.scheme_str() == Some("https") && ca.is_none() {
            errs.push(format!(
                "{table}: an https:// URL needs ca_path (in the table or in [alerts]): the CA its certificate chains to"
            ));
        }
    };
    let webhooks_raw = raw.webhook.unwrap_or_default();
    if webhooks_raw.len() > MAX_SINKS {
        errs.push(format!("[alerts]: at most {MAX_SINKS} webhooks"));
    }
    let mut webhooks = Vec::new();
    for (i, w) in webhooks_raw.into_iter().take(MAX_SINKS).enumerate() {
        let table = format!("[[alerts.webhook]] #{}", i + 1);
        let name = check_name(errs, &table, w.name, &mut names);
        let table = if name.is_empty() {
            table
        } else {
            format!("[[alerts.webhook]] \"{name}\"")
        };
        let ca_path = w.ca_path.or_else(|| default_ca.clone());
        let url = match w.url {
            None => {
                errs.push(format!("{table}: url is required"));
                String::new()
            }
            Some(u) => match check_url(&u) {
                Ok(uri) => {
                    need_ca(errs, &table, &uri, &ca_path);
                    u
                }
                Err(e) => {
                    errs.push(format!("{table}: url {e}"));
                    String::new()
                }
            },
        };
        let secret_file = w.secret_file.unwrap_or_default();
        let secret = if secret_file.as_os_str().is_empty() {
            errs.push(format!(
                "{table}: secret_file is required (the HMAC key of {})",
                super::webhook::SIGNATURE_HEADER
            ));
            Secret(Vec::new())
        } else {
            read_secret(errs, &format!("{table}: secret_file"), &secret_file)
                .unwrap_or(Secret(Vec::new()))
        };
        if let Some(ca) = &ca_path {
            check_ca(errs, &table, ca);
        }
        webhooks.push(WebhookSink {
            delivery: delivery(errs, &table, w.timeout_secs, w.max_retries, w.queue_size),
            name,
            url,
            ca_path,
            secret,
            secret_file,
        });
    }
    let ams_raw = raw.alertmanager.unwrap_or_default();
    if ams_raw.len() > MAX_SINKS {
        errs.push(format!("[alerts]: at most {MAX_SINKS} alertmanager tables"));
    }
    let mut alertmanagers = Vec::new();
    for (i, a) in ams_raw.into_iter().take(MAX_SINKS).enumerate() {
        let table = format!("[[alerts.alertmanager]] #{}", i + 1);
        let name = check_name(errs, &table, a.name, &mut names);
        let table = if name.is_empty() {
            table
        } else {
            format!("[[alerts.alertmanager]] \"{name}\"")
        };
        let ca_path = a.ca_path.or_else(|| default_ca.clone());
        let mut urls = Vec::new();
        match a.urls {
            None => errs.push(format!(
                "{table}: urls is required (each Alertmanager of an HA set)"
            )),
            Some(list) if list.is_empty() || list.len() > MAX_ALERTMANAGER_URLS => errs.push(
                format!("{table}: urls must list 1 to {MAX_ALERTMANAGER_URLS} Alertmanagers"),
            ),
            Some(list) => {
                for u in list {
                    match check_url(&u) {
                        Ok(uri) if uri.query().is_some() => errs.push(format!(
                            "{table}: url \"{}\" must not have a query",
                            shown(&u)
                        )),
                        Ok(uri) => {
                            need_ca(errs, &table, &uri, &ca_path);
                            let base = u.trim_end_matches('/').to_string();
                            if urls.contains(&base) {
                                errs.push(format!(
                                    "{table}: url \"{}\" is listed twice",
                                    shown(&u)
                                ));
                            }
                            urls.push(base);
                        }
                        Err(e) => errs.push(format!("{table}: url {e}")),
                    }
                }
            }
        }
        let password_file = a.password_file.clone();
        let basic_auth = match (a.username, a.password_file) {
            (None, None) => None,
            (Some(u), Some(p)) => {
                if u.is_empty()
                    || u.len() > 256
                    || u.contains(':')
                    || u.chars().any(char::is_control)
                {
                    errs.push(format!("{table}: username must be 1-256 characters without ':' or control characters"));
                }
                read_secret(errs, &format!("{table}: password_file"), &p).map(|s| (u, s))
            }
            _ => {
                errs.push(format!("{table}: username and password_file go together"));
                None
            }
        };
        if let Some(ca) = &ca_path {
            check_ca(errs, &table, ca);
        }
        let resend_interval = secs_in(
            errs,
            &format!("{table}: resend_interval_secs"),
            a.resend_interval_secs,
            DEFAULT_RESEND_INTERVAL,
            1.0,
            // Alertmanager's resolve_timeout defaults to 5 m; endsAt is 4 periods ahead.
            120.0,
        );
        alertmanagers.push(AlertmanagerSink {
            delivery: delivery(errs, &table, a.timeout_secs, a.max_retries, a.queue_size),
            name,
            urls,
            ca_path,
            basic_auth,
            password_file,
            resend_interval,
        });
    }
    AlertsConfig {
        cluster,
        hold_down: secs_in(
            errs,
            "[alerts] hold_down_secs",
            raw.hold_down_secs,
            d.hold_down,
            0.0,
            86_400.0,
        ),
        evaluate_interval: secs_in(
            errs,
            "[alerts] evaluate_interval_secs",
            raw.evaluate_interval_secs,
            d.evaluate_interval,
            0.1,
            60.0,
        ),
        retry_initial,
        retry_max,
        webhooks,
        alertmanagers,
    }
}

impl AlertsConfig {
    /// The `[alerts]` tables as `collector.toml` holds them (nothing when it is all
    /// defaults): file paths, never secrets. Re-parsing it gives the same config.
    pub fn to_toml(&self) -> String {
        if *self == AlertsConfig::default() {
            return String::new();
        }
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let p = |p: &Path| q(&p.display().to_string());
        let mut out = String::from("\n# Alerts: docs/operations.md, \"Alerts\".\n[alerts]\n");
        out.push_str(&format!("cluster = {}\n", q(&self.cluster)));
        for (k, v) in [
            ("hold_down_secs", self.hold_down),
            ("evaluate_interval_secs", self.evaluate_interval),
            ("retry_initial_secs", self.retry_initial),
            ("retry_max_secs", self.retry_max),
        ] {
            out.push_str(&format!("{k} = {}\n", v.as_secs_f64()));
        }
        let delivery = |out: &mut String, d: &Delivery| {
            out.push_str(&format!(
                "timeout_secs = {}\nmax_retries = {}\nqueue_size = {}\n",
                d.timeout.as_secs_f64(),
                d.max_retries,
                d.queue_size
            ));
        };
        for w in &self.webhooks {
            out.push_str(&format!(
                "\n[[alerts.webhook]]\nname = {}\nurl = {}\nsecret_file = {}\n",
                q(&w.name),
                q(&w.url),
                p(&w.secret_file)
            ));
            if let Some(ca) = &w.ca_path {
                out.push_str(&format!("ca_path = {}\n", p(ca)));
            }
            delivery(&mut out, &w.delivery);
        }
        for a in &self.alertmanagers {
            let urls: Vec<String> = a.urls.iter().map(|u| q(u)).collect();
            out.push_str(&format!(
                "\n[[alerts.alertmanager]]\nname = {}\nurls = [{}]\nresend_interval_secs = {}\n",
                q(&a.name),
                urls.join(", "),
                a.resend_interval.as_secs_f64()
            ));
            if let Some(ca) = &a.ca_path {
                out.push_str(&format!("ca_path = {}\n", p(ca)));
            }
            if let (Some((user, _)), Some(file)) = (&a.basic_auth, &a.password_file) {
                out.push_str(&format!(
                    "username = {}\npassword_file = {}\n",
                    q(user),
                    p(file)
                ));
            }
            delivery(&mut out, &a.delivery);
        }
        out
    }
}

fn check_ca(errs: &mut Vec<String>, table: &str, ca: &Path) {
    if let Err(e) = sr_tls::roots_from(ca) {
        errs.push(format!("{table}: ca_path {}: {e}", ca.display()));
    }
}

/// Reads a secret file: a regular file, not readable or writable by every user, 16 bytes
/// to 4 KiB after its trailing newline. The error names the file, never its content.
pub fn read_secret(errs: &mut Vec<String>, what: &str, path: &Path) -> Option<Secret> {
    let shown_path = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errs.push(format!("{what} {shown_path}: cannot read: {e}"));
            return None;
        }
    };
    if !meta.is_file() {
        errs.push(format!("{what} {shown_path}: not a regular file"));
        return None;
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o006 != 0 {
        errs.push(format!(
            "{what} {shown_path}: every user may read or write it (mode {mode:04o}); chmod o-rwx it (0600 or 0640)"
        ));
        return None;
    }
    let bytes = match sr_fsutil::read_bounded(path, MAX_SECRET_BYTES) {
        Ok(b) => b,
        Err(e) => {
            errs.push(format!("{what} {shown_path}: {e}"));
            return None;
        }
    };
    let mut b = bytes;
    while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        b.pop();
    }
    if b.len() < MIN_SECRET_BYTES {
        errs.push(format!(
            "{what} {shown_path}: shorter than {MIN_SECRET_BYTES} bytes (use e.g. `openssl rand -hex 32`)"
        ));
        return None;
    }
    Some(Secret(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertsConfig, Vec<String>> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Top {
            alerts: Option<RawAlerts>,
        }
        let top: Top = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errs = Vec::new();
        let c = validate(&mut errs, top.alerts);
        if errs.is_empty() {
            Ok(c)
        } else {
            Err(errs)
        }
    }

    fn secret_file(dir: &Path, mode: u32, content: &str) -> PathBuf {
        let p = dir.join(format!("secret-{mode:o}-{}", content.len()));
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn no_alerts_table_means_no_sinks() {
        let c = parse("").unwrap();
        assert!(!c.enabled());
        assert_eq!(c.hold_down, DEFAULT_HOLD_DOWN);
    }

    #[test]
    fn a_good_config_is_checked_and_its_secret_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret_file(dir.path(), 0o600, "0123456789abcdef0123456789abcdef\n");
        let text = format!(
            r#"[alerts]
cluster = "prod-eu"
hold_down_secs = 10
[[alerts.webhook]]
name = "ops"
url = "http://127.0.0.1:8080/hook"
secret_file = "{s}"
max_retries = 3
[[alerts.alertmanager]]
name = "am"
urls = ["http://127.0.0.1:9093/", "http://127.0.0.2:9093"]
username = "sr"
password_file = "{s}"
"#,
            s = s.display()
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.cluster, "prod-eu");
        assert_eq!(c.hold_down, Duration::from_secs(10));
        assert_eq!(
            c.webhooks[0].secret.expose(),
            b"0123456789abcdef0123456789abcdef"
        );
        assert_eq!(c.webhooks[0].delivery.max_retries, 3);
        assert_eq!(
            c.alertmanagers[0].urls,
            ["http://127.0.0.1:9093", "http://127.0.0.2:9093"]
        );
        // What `collector init`'s writer gives back parses to the same config, secret-free.
        let written = c.to_toml();
        assert!(!written.contains("0123456789abcdef"), "{written}");
        assert_eq!(parse(&written).unwrap(), c, "{written}");
        let printed = format!("{c:?}");
        assert!(!printed.contains("0123456789abcdef"), "{printed}");
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn hostile_configs_give_every_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let world = secret_file(dir.path(), 0o644, "0123456789abcdef0123456789abcdef");
        let short = secret_file(dir.path(), 0o600, "short");
        let text = format!(
            r#"[alerts]
hold_down_secs = -1
evaluate_interval_secs = 1e12
retry_initial_secs = 10
retry_max_secs = 1
cluster = ""
[[alerts.webhook]]
name = "a"
url = "ftp://x/"
secret_file = "{world}"
max_retries = -3
queue_size = 99999999999
timeout_secs = 0
[[alerts.webhook]]
name = "a"
url = "https://u:p@host/"
secret_file = "/nonexistent/secret"
[[alerts.webhook]]
url = "not a url"
secret_file = "{short}"
[[alerts.alertmanager]]
name = "bad name!"
urls = []
username = "x"
[[alerts.alertmanager]]
name = "am2"
urls = ["https://am:9093"]
resend_interval_secs = 100000
"#,
            world = world.display(),
            short = short.display()
        );
        let errs = parse(&text).unwrap_err();
        let all = errs.join("\n");
        for needle in [
            "hold_down_secs = -1",
            "evaluate_interval_secs",
            "retry_max_secs must not be less",
            "cluster \"\"",
            "must start with http:// or https://",
            "every user may read or write it (mode 0644)",
            "max_retries = -3",
            "queue_size = 99999999999",
            "timeout_secs = 0",
            "\"a\" is used by another sink",
            "must not carry credentials",
            "/nonexistent/secret: cannot read",
            "#3: name is required",
            "is not a URL",
            "shorter than 16 bytes",
            "\"bad name!\" must be",
            "urls must list 1 to 8",
            "username and password_file go together",
            "needs ca_path",
            "resend_interval_secs = 100000",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        // The secret's bytes never appear in an error.
        assert!(!all.contains("0123456789abcdef"), "{all}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        for text in [
            "[alerts]\nhold_down = 3\n",
            "[[alerts.webhook]]\nname = \"a\"\nsecret = \"inline\"\n",
            "[[alerts.alertmanager]]\nname = \"a\"\nurl = \"http://x\"\n",
        ] {
            let errs = parse(text).unwrap_err();
            assert!(errs[0].contains("unknown field"), "{text}: {errs:?}");
        }
    }
}
