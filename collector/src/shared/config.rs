//! The `[store]` table: which store a collector shares its state through.
//!
//! Parsed strictly (unknown keys are errors), then validated with every problem reported
//! at once, like the rest of the config. Shape checks ([`validate`]) are apart from the
//! checks that read files ([`check_files`]: the password file exists, is small, and is
//! readable by its owner only), so `Config::from_toml` stays pure and `Config::load` and
//! `collector validate` add the file checks.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Hosts tried in order; more is a mistake, not a cluster.
pub const MAX_HOSTS: usize = 16;
/// A password file larger than this is not a password.
pub const MAX_PASSWORD_BYTES: u64 = 4096;
pub const DEFAULT_JOURNAL_MAX: usize = 100_000;
pub const DEFAULT_POOL_SIZE: usize = 4;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the collector keeps the state it shares with other managers.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum StoreKind {
    /// Everything in the local SQLite only (the default, and the quickstart's).
    #[default]
    Sqlite,
    /// The local SQLite, written through to and read back from PostgreSQL.
    Postgres(PgStore),
}

/// A validated `[store] kind = "postgres"` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PgStore {
    /// `(host, port)`, tried in order with `target_session_attrs=read-write`.
    pub hosts: Vec<(String, u16)>,
    pub dbname: String,
    pub user: String,
    /// Read when connecting, never kept in the config (so it is never printed).
    pub password_file: PathBuf,
    pub tls: PgTls,
    pub connect_timeout: Duration,
    /// Bounds every statement (client side, and `statement_timeout` on the session).
    pub query_timeout: Duration,
    pub pool_size: usize,
    /// Journal keys held while PostgreSQL is unreachable; past it a full resync is due.
    pub journal_max: usize,
}

/// How the connection is protected.
#[derive(Debug, Clone, PartialEq)]
pub enum PgTls {
    /// `sslmode=require`, the chain and host name checked against only this CA.
    Ca(PathBuf),
    /// No TLS: only when the operator says so (`allow_plaintext = true`).
    Plaintext,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    kind: Option<String>,
    hosts: Option<Vec<String>>,
    dbname: Option<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    allow_plaintext: Option<bool>,
    connect_timeout_secs: Option<f64>,
    query_timeout_secs: Option<f64>,
    pool_size: Option<i64>,
    journal_max: Option<i64>,
}

/// A value quoted for an error message: bounded, control characters escaped.
fn shown(s: &str) -> String {
    let s: String = s.chars().take(64).collect();
    format!("{s:?}")
}

/// A PostgreSQL identifier-ish value: 1..=63 bytes, no control characters.
fn name(errs: &mut Vec<String>, key: &str, v: Option<String>) -> String {
    match v {
        None => {
            errs.push(format!(
                "[store] {key} is required with kind = \"postgres\""
            ));
            String::new()
        }
        Some(v) if v.is_empty() || v.len() > 63 || v.chars().any(char::is_control) => {
            errs.push(format!(
                "[store] {key} = {} must be 1 to 63 bytes without control characters",
                shown(&v)
            ));
            String::new()
        }
        Some(v) => v,
    }
}

/// `host:port`, `[v6]:port` or `host` (port 5432).
pub fn parse_host(s: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "{} is not host:port (a name or an address, port 1-65535)",
            shown(s)
        )
    };
    if s.is_empty() || s.len() > 260 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
        h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match tail {
            "" => (h, None),
            t => (h, Some(t.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !host_ok {
        return Err(bad());
    }
    let port = match port {
        None => 5432,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    Ok((host.to_string(), port))
}

fn secs(errs: &mut Vec<String>, key: &str, v: Option<f64>, default: Duration) -> Duration {
    match v {
        None => default,
        Some(v) if v.is_finite() && (0.1..=300.0).contains(&v) => Duration::from_secs_f64(v),
        Some(v) => {
            errs.push(format!(
                "[store] {key} = {v} must be between 0.1 and 300 seconds"
            ));
            default
        }
    }
}

fn int(
    errs: &mut Vec<String>,
    key: &str,
    v: Option<i64>,
    default: usize,
    range: std::ops::RangeInclusive<i64>,
) -> usize {
    match v {
        None => default,
        Some(v) if range.contains(&v) => v as usize,
        Some(v) => {
            errs.push(format!(
                "[store] {key} = {v} is out of range {}..={}",
                range.start(),
                range.end()
            ));
            default
        }
    }
}

/// Checks the table's shape; every problem goes to `errs`.
pub(crate) fn validate(errs: &mut Vec<String>, raw: Option<RawStore>) -> StoreKind {
    let Some(raw) = raw else {
        return StoreKind::Sqlite;
    };
    match raw.kind.as_deref() {
        None => {
            errs.push("[store] kind is required: \"sqlite\" or \"postgres\"".into());
            StoreKind::Sqlite
        }
        Some("sqlite") => {
            let extra = raw.hosts.is_some()
                || raw.dbname.is_some()
                || raw.user.is_some()
                || raw.password_file.is_some()
                || raw.ca_file.is_some()
                || raw.allow_plaintext.is_some()
                || raw.connect_timeout_secs.is_some()
                || raw.query_timeout_secs.is_some()
                || raw.pool_size.is_some()
                || raw.journal_max.is_some();
            if extra {
                errs.push(
                    "[store] kind = \"sqlite\" takes no other key (they configure kind = \"postgres\")"
                        .into(),
                );
            }
            StoreKind::Sqlite
        }
        Some("postgres") => StoreKind::Postgres(postgres(errs, raw)),
        Some(other) => {
            errs.push(format!(
                "[store] kind = {} must be \"sqlite\" or \"postgres\"",
                shown(other)
            ));
            StoreKind::Sqlite
        }
    }
}

fn postgres(errs: &mut Vec<String>, raw: RawStore) -> PgStore {
    let hosts = match raw.hosts {
        None => {
            errs.push(
                "[store] hosts is required: the Patroni members or the load balancer, as host:port"
                    .into(),
            );
            Vec::new()
        }
        Some(h) if h.is_empty() || h.len() > MAX_HOSTS => {
            errs.push(format!(
                "[store] hosts must list 1 to {MAX_HOSTS} host:port"
            ));
            Vec::new()
        }
        Some(h) => h
            .iter()
            .filter_map(|s| {
                parse_host(s)
                    .map_err(|e| errs.push(format!("[store] hosts: {e}")))
                    .ok()
            })
            .collect(),
    };
    let dbname = name(errs, "dbname", raw.dbname);
    let user = name(errs, "user", raw.user);
    let password_file = match raw.password_file {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => {
            errs.push(
                "[store] password_file is required (a file readable by the service user only)"
                    .into(),
            );
            PathBuf::new()
        }
    };
    let tls = match (raw.ca_file, raw.allow_plaintext.unwrap_or(false)) {
        (Some(ca), false) => PgTls::Ca(ca),
        (None, true) => PgTls::Plaintext,
        (Some(_), true) => {
            errs.push("[store] ca_file and allow_plaintext = true exclude each other".into());
            PgTls::Plaintext
        }
        (None, false) => {
            errs.push("[store] ca_file is required (or allow_plaintext = true for a loopback test database)".into());
            PgTls::Plaintext
        }
    };
    PgStore {
        hosts,
        dbname,
        user,
        password_file,
        tls,
        connect_timeout: secs(
            errs,
            "connect_timeout_secs",
            raw.connect_timeout_secs,
            DEFAULT_CONNECT_TIMEOUT,
        ),
        query_timeout: secs(
            errs,
            "query_timeout_secs",
            raw.query_timeout_secs,
            DEFAULT_QUERY_TIMEOUT,
        ),
        pool_size: int(errs, "pool_size", raw.pool_size, DEFAULT_POOL_SIZE, 1..=64),
        journal_max: int(
            errs,
            "journal_max",
            raw.journal_max,
            DEFAULT_JOURNAL_MAX,
            100..=10_000_000,
        ),
    }
}

/// The `[store]` table as `Config::to_toml` writes it (nothing for the default).
pub fn to_toml(kind: &StoreKind) -> String {
    let StoreKind::Postgres(pg) = kind else {
        return String::new();
    };
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let hosts: Vec<String> = pg
        .hosts
        .iter()
        .map(|(h, p)| match h.contains(':') {
            true => q(&format!("[{h}]:{p}")),
            false => q(&format!("{h}:{p}")),
        })
        .collect();
    let mut out = String::from(
        "\n# The shared store (docs/operations.md, \"A shared PostgreSQL store\").\n[store]\nkind = \"postgres\"\n",
    );
    out.push_str(&format!("hosts = [{}]\n", hosts.join(", ")));
    out.push_str(&format!("dbname = {}\n", q(&pg.dbname)));
    out.push_str(&format!("user = {}\n", q(&pg.user)));
    out.push_str(&format!(
        "password_file = {}\n",
        q(&pg.password_file.to_string_lossy())
    ));
    match &pg.tls {
        PgTls::Ca(ca) => out.push_str(&format!("ca_file = {}\n", q(&ca.to_string_lossy()))),
        PgTls::Plaintext => out.push_str("allow_plaintext = true\n"),
    }
    out.push_str(&format!(
        "connect_timeout_secs = {}\nquery_timeout_secs = {}\npool_size = {}\njournal_max = {}\n",
        pg.connect_timeout.as_secs_f64(),
        pg.query_timeout.as_secs_f64(),
        pg.pool_size,
        pg.journal_max
    ));
    out
}

/// The checks that read files: the password file (present, a regular file, not empty,
/// small, readable by its owner only) and the CA file (present).
pub fn check_files(pg: &PgStore) -> Vec<String> {
    let mut errs = Vec::new();
    if let Err(e) = read_password(&pg.password_file) {
        errs.push(e);
    }
    if let PgTls::Ca(ca) = &pg.tls {
        if let Err(e) = std::fs::metadata(ca) {
            errs.push(format!("[store] ca_file {}: {e}", ca.display()));
        }
    }
    errs
}

/// The password, first line, trailing newline removed. Refuses a file that group or
/// others may read: a secret readable by every local user is a leaked secret.
pub fn read_password(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let what = |e: &str| format!("[store] password_file {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| what(&e.to_string()))?;
    if !meta.is_file() {
        return Err(what("not a regular file"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(what(&format!(
            "mode {:04o} lets group or others read it; chmod 0600 (owned by the service user)",
            meta.mode() & 0o7777
        )));
    }
    if meta.len() > MAX_PASSWORD_BYTES {
        return Err(what(&format!("larger than {MAX_PASSWORD_BYTES} bytes")));
    }
    let bytes =
        sr_fsutil::read_bounded(path, MAX_PASSWORD_BYTES).map_err(|e| what(&e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| what("not UTF-8 text"))?;
    let pw = text.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        return Err(what("empty"));
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StoreKind, Vec<String>> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct T {
            store: Option<RawStore>,
        }
        let t: T = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errs = Vec::new();
        let k = validate(&mut errs, t.store);
        if errs.is_empty() {
            Ok(k)
        } else {
            Err(errs)
        }
    }

    const GOOD: &str = r#"
[store]
kind = "postgres"
hosts = ["10.0.0.1:5433", "db2", "[::1]:6432"]
dbname = "status_reporter"
user = "status_reporter"
password_file = "/etc/sr/pg.password"
ca_file = "/etc/sr/ca.pem"
"#;

    #[test]
    fn a_postgres_store_is_parsed_with_defaults() {
        let StoreKind::Postgres(pg) = parse(GOOD).unwrap() else {
            panic!("postgres expected")
        };
        assert_eq!(
            pg.hosts,
            vec![
                ("10.0.0.1".into(), 5433),
                ("db2".into(), 5432),
                ("::1".into(), 6432)
            ]
        );
        assert_eq!(pg.tls, PgTls::Ca("/etc/sr/ca.pem".into()));
        assert_eq!(pg.journal_max, DEFAULT_JOURNAL_MAX);
        assert_eq!(pg.query_timeout, DEFAULT_QUERY_TIMEOUT);
        assert_eq!(parse("").unwrap(), StoreKind::Sqlite);
        assert_eq!(
            parse("[store]\nkind = \"sqlite\"").unwrap(),
            StoreKind::Sqlite
        );
    }

    #[test]
    fn a_written_store_table_parses_back_identically() {
        let kind = parse(GOOD).unwrap();
        assert_eq!(parse(&to_toml(&kind)).unwrap(), kind);
        assert_eq!(to_toml(&StoreKind::Sqlite), "");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = parse(
            r#"
[store]
kind = "postgres"
hosts = ["db1:0", "db 2:5432", "a:b:c", "[zz]:1", ""]
dbname = ""
password_file = ""
allow_plaintext = true
ca_file = "/x"
query_timeout_secs = -1
pool_size = 0
journal_max = 1
"#,
        )
        .unwrap_err();
        let all = errs.join("\n");
        for needle in [
            "\"db1:0\"",
            "\"db 2:5432\"",
            "\"a:b:c\"",
            "\"[zz]:1\"",
            "hosts: \"\"",
            "dbname",
            "user is required",
            "password_file is required",
            "exclude each other",
            "query_timeout_secs",
            "pool_size",
            "journal_max",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
        assert_eq!(errs.len(), 12, "{all}");
    }

    #[test]
    fn unknown_keys_kinds_and_hostile_values_are_errors() {
        let e = parse("[store]\nkind = \"postgres\"\nhost = \"x\"").unwrap_err();
        assert!(e[0].contains("unknown field `host`"), "{e:?}");
        let e = parse("[store]\nkind = \"mysql\\u0007\"").unwrap_err();
        assert!(
            e[0].contains("\\u{7}"),
            "control characters are escaped: {e:?}"
        );
        let e = parse("[store]\nkind = \"sqlite\"\nhosts = [\"a\"]").unwrap_err();
        assert!(e[0].contains("takes no other key"), "{e:?}");
        let e = parse("[store]\nhosts = [\"a\"]").unwrap_err();
        assert!(e[0].contains("kind is required"), "{e:?}");
        let long = "h".repeat(10_000);
        let e = parse(&format!(
            "[store]\nkind = \"postgres\"\nhosts = [\"{long}\"]\ndbname = \"{long}\"\nuser = \"u\\n\"\npassword_file = \"/p\"\nallow_plaintext = true"
        ))
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e.iter().all(|m| m.len() < 200),
            "messages stay bounded: {e:?}"
        );
        let many: Vec<String> = (0..=MAX_HOSTS).map(|i| format!("\"h{i}\"")).collect();
        let e = parse(&format!(
            "[store]\nkind = \"postgres\"\nhosts = [{}]\ndbname = \"d\"\nuser = \"u\"\npassword_file = \"/p\"\nallow_plaintext = true",
            many.join(",")
        ))
        .unwrap_err();
        assert!(e[0].contains("1 to 16"), "{e:?}");
    }

    #[test]
    fn the_password_file_must_exist_be_private_and_hold_a_password() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        let set_mode =
            |m| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        let err = read_password(&p).unwrap_err();
        assert!(err.contains("No such file"), "{err}");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        set_mode(0o644);
        let err = read_password(&p).unwrap_err();
        assert!(
            err.contains("mode 0644") && !err.contains("s3cret"),
            "{err}"
        );
        set_mode(0o600);
        assert_eq!(read_password(&p).unwrap(), "s3cret");
        set_mode(0o400);
        assert_eq!(read_password(&p).unwrap(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_password(&p).unwrap_err().contains("empty"));
        std::fs::write(&p, vec![b'x'; 5000]).unwrap();
        assert!(read_password(&p).unwrap_err().contains("larger than"));
        assert!(read_password(dir.path())
            .unwrap_err()
            .contains("not a regular file"));
        let pg = PgStore {
            hosts: vec![("h".into(), 5432)],
            dbname: "d".into(),
            user: "u".into(),
            password_file: dir.path().join("missing"),
            tls: PgTls::Ca(dir.path().join("missing-ca")),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            pool_size: 1,
            journal_max: 100,
        };
        assert_eq!(check_files(&pg).len(), 2, "both files are reported");
    }
}
