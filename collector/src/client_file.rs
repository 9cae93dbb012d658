//! The operator's client file, `/etc/status-reporter/client.toml`: where `cluster status`
//! (and `history`, `watch`, `maintenance`) on a manager find the local collector, the CA
//! its certificate is checked against, and an admin token, when no flag names them, as
//! `cfy` finds its profile.
//!
//! `collector init --ca-path CA` writes it ([`crate::setup`]) beside the collector config,
//! mode 0640, owner root, group the service user's (readable by root and the service group
//! only: it holds an admin token). The CLI reads it through [`load`], which refuses a file
//! that others could read or that anyone but its owner could change ([`check_mode`]),
//! before parsing a byte of it.
//!
//! The directory is `/etc/status-reporter`, or `$STATUS_REPORTER_ETC` ([`ETC_ENV`]): for
//! tests and packaging, which run the real binary against a directory of their own.

use std::path::{Path, PathBuf};

/// The directory the packaged files live in.
pub const DEFAULT_ETC: &str = "/etc/status-reporter";
/// Overrides [`DEFAULT_ETC`] (tests and packaging only).
pub const ETC_ENV: &str = "STATUS_REPORTER_ETC";
/// The file's name inside that directory (and beside the collector config `init` writes).
pub const FILE_NAME: &str = "client.toml";
/// The file's mode: owner read/write, group read, nothing for others.
pub const MODE: u32 = 0o640;
/// Longest file read: a few short keys.
const MAX_BYTES: u64 = 16 * 1024;
/// Longest value of any key.
const MAX_VALUE: usize = 4096;

/// What the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFile {
    /// The collector: `host:port` or an `https://` (or, for plain-HTTP test setups,
    /// `http://`) URL.
    pub manager: String,
    /// The CA the collector's certificate is verified against; `None` only for `http://`.
    pub ca_path: Option<PathBuf>,
    /// An admin token.
    pub token: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    manager: Option<String>,
    ca_path: Option<PathBuf>,
    token: Option<String>,
}

/// The client file's path: `$STATUS_REPORTER_ETC/client.toml`, else under `/etc`.
/// `etc_env` is the variable's value (passed in, so tests need not set the environment).
pub fn default_path(etc_env: Option<&std::ffi::OsStr>) -> PathBuf {
    match etc_env.filter(|v| !v.is_empty()) {
        Some(dir) => Path::new(dir).join(FILE_NAME),
        None => Path::new(DEFAULT_ETC).join(FILE_NAME),
    }
}

impl ClientFile {
    /// Parses and validates the file's text, every problem at once.
    pub fn from_toml(text: &str) -> Result<ClientFile, Vec<String>> {
        let raw: Raw = toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().into()])?;
        let mut errs = Vec::new();
        let manager = raw.manager.unwrap_or_default();
        let plain = manager.starts_with("http://");
        if manager.trim().is_empty() {
            errs.push("manager: missing (the collector's host:port or https:// URL)".into());
        } else if manager.len() > MAX_VALUE || manager.chars().any(char::is_control) {
            errs.push("manager: not a host:port or URL".into());
        } else if manager.contains("://") && !plain && !manager.starts_with("https://") {
            errs.push("manager: only https:// (or http:// for tests) URLs".into());
        }
        match &raw.ca_path {
            None if !plain => errs
                .push("ca_path: missing (the CA that signed the collector's certificate)".into()),
            Some(p) if p.as_os_str().is_empty() || p.as_os_str().len() > MAX_VALUE => {
                errs.push("ca_path: empty or too long".into())
            }
            _ => {}
        }
        let token = raw.token.unwrap_or_default();
        if token.trim().is_empty() {
            errs.push("token: missing (an admin token)".into());
        } else if token.len() > MAX_VALUE || token.trim().chars().any(|c| c.is_control()) {
            errs.push("token: not a token".into());
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(ClientFile {
            manager,
            ca_path: raw.ca_path,
            token: token.trim().to_string(),
        })
    }

    /// The text [`crate::setup`] writes: every key, commented.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut out = String::from(
            "# Written by `status-reporter collector init`: what `status-reporter cluster status`\n\
             # (and history, watch, maintenance) use on this host when no flag names them.\n\
             # Holds an admin token: keep it mode 0640, root and the service group only.\n",
        );
        out.push_str(&format!("manager = {}\n", q(&self.manager)));
        if let Some(ca) = &self.ca_path {
            out.push_str(&format!("ca_path = {}\n", q(&ca.display().to_string())));
        }
        out.push_str(&format!("token = {}\n", q(&self.token)));
        out
    }
}

/// Why a credential file with this mode and owner must not be used, if it must not:
/// anyone but its owner could change it (group or world writable), anyone at all could
/// read the token in it (world readable), or it belongs to neither root nor the caller
/// (someone else planted it). Pure, for tests.
pub fn check_mode(path: &Path, mode: u32, owner: u32, caller: u32) -> Result<(), String> {
    let shown = path.display();
    if mode & 0o022 != 0 {
        return Err(format!(
            "{shown} is group- or world-writable (mode {:04o}): refusing to use its credential; \
             chmod 640 {shown}",
            mode & 0o7777
        ));
    }
    if mode & 0o004 != 0 {
        return Err(format!(
            "{shown} is world-readable (mode {:04o}): its admin token may have leaked; \
             chmod 640 {shown} and consider revoking the token",
            mode & 0o7777
        ));
    }
    if owner != 0 && owner != caller {
        return Err(format!(
            "{shown} belongs to uid {owner}, neither root nor you: refusing to use its credential"
        ));
    }
    Ok(())
}

/// Reads `path`: its mode and owner checked on the open file first ([`check_mode`]),
/// then a bounded read, then [`ClientFile::from_toml`]. Every error names the file.
pub fn load(path: &Path) -> Result<ClientFile, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let caller = unsafe { libc::geteuid() };
    check_mode(path, meta.mode(), meta.uid(), caller)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("{shown} is larger than {MAX_BYTES} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    ClientFile::from_toml(&text).map_err(|errs| format!("{shown}: {}", errs.join("; ")))
}

/// What `collector init` puts in the file for a collector listening on `listen`: the same
/// port on loopback when it listens on every address (the certificate must then name
/// 127.0.0.1 or ::1; `--client-manager` says otherwise), else the address itself.
pub fn manager_for(listen: std::net::SocketAddr, plain_http: bool) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let scheme = if plain_http { "http" } else { "https" };
    format!(
        "{scheme}://{}",
        std::net::SocketAddr::new(ip, listen.port())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ClientFile {
        ClientFile {
            manager: "https://127.0.0.1:53333".into(),
            ca_path: Some("/etc/cloudify/ssl/ca.pem".into()),
            token: "srt_abc".into(),
        }
    }

    #[test]
    fn what_setup_writes_reads_back() {
        let f = file();
        assert_eq!(ClientFile::from_toml(&f.to_toml()), Ok(f));
        let plain = ClientFile {
            manager: "http://127.0.0.1:1".into(),
            ca_path: None,
            token: "t".into(),
        };
        assert_eq!(ClientFile::from_toml(&plain.to_toml()), Ok(plain));
    }

    #[test]
    fn unknown_keys_and_every_missing_key_are_errors() {
        let e = ClientFile::from_toml("manager = 'm'\nca_path = 'c'\ntoken = 't'\nport = 1\n")
            .unwrap_err();
        assert!(e[0].contains("unknown field `port`"), "{e:?}");
        let e = ClientFile::from_toml("").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("manager: missing")));
        assert!(e.iter().any(|m| m.starts_with("ca_path: missing")));
        assert!(e.iter().any(|m| m.starts_with("token: missing")));
    }

    #[test]
    fn malformed_truncated_and_hostile_values_are_refused() {
        for bad in [
            "manager = 'https://m",                    // truncated
            "manager = 1\nca_path = 'c'\ntoken = 't'", // wrong type
            "\u{0}",                                   // not TOML
            "manager = 'ftp://m'\nca_path = 'c'\ntoken = 't'",
            "manager = \"m\\u001b[2J\"\nca_path = 'c'\ntoken = 't'",
            "manager = 'm'\nca_path = ''\ntoken = 't'",
            "manager = 'm'\nca_path = 'c'\ntoken = '   '",
            "manager = 'm'\nca_path = 'c'\ntoken = \"a\\nb\"",
        ] {
            assert!(ClientFile::from_toml(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!(
            "manager = 'm'\nca_path = 'c'\ntoken = '{}'",
            "x".repeat(5000)
        );
        assert!(ClientFile::from_toml(&long).is_err());
    }

    #[test]
    fn only_root_and_the_group_may_read_and_only_the_owner_write() {
        let p = Path::new("/etc/status-reporter/client.toml");
        assert_eq!(check_mode(p, 0o100640, 0, 0), Ok(()));
        assert_eq!(check_mode(p, 0o100600, 1000, 1000), Ok(()));
        assert_eq!(check_mode(p, 0o100440, 0, 1000), Ok(()));
        let e = check_mode(p, 0o100644, 0, 0).unwrap_err();
        assert!(e.contains("world-readable (mode 0644)"), "{e}");
        let e = check_mode(p, 0o100660, 0, 0).unwrap_err();
        assert!(e.contains("group- or world-writable (mode 0660)"), "{e}");
        assert!(check_mode(p, 0o100602, 0, 0).is_err());
        let e = check_mode(p, 0o100600, 1001, 1000).unwrap_err();
        assert!(e.contains("uid 1001"), "{e}");
    }

    #[test]
    fn load_checks_the_mode_before_reading() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, file().to_toml()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path).unwrap_err().contains("world-readable"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(load(&path), Ok(file()));
        std::fs::write(&path, "x".repeat(MAX_BYTES as usize + 1)).unwrap();
        assert!(load(&path).unwrap_err().contains("larger than"));
        let e = load(&dir.path().join("none.toml")).unwrap_err();
        assert!(e.starts_with("cannot read"), "{e}");
        assert!(load(dir.path()).unwrap_err().contains("not a regular file"));
    }

    #[test]
    fn the_directory_is_overridable_for_tests() {
        assert_eq!(
            default_path(None),
            Path::new("/etc/status-reporter/client.toml")
        );
        assert_eq!(
            default_path(Some("".as_ref())),
            Path::new("/etc/status-reporter/client.toml")
        );
        assert_eq!(
            default_path(Some("/tmp/x".as_ref())),
            Path::new("/tmp/x/client.toml")
        );
    }

    #[test]
    fn the_manager_is_the_listen_address_on_loopback_when_it_listens_everywhere() {
        assert_eq!(
            manager_for("0.0.0.0:53333".parse().unwrap(), false),
            "https://127.0.0.1:53333"
        );
        assert_eq!(
            manager_for("[::]:53333".parse().unwrap(), false),
            "https://[::1]:53333"
        );
        assert_eq!(
            manager_for("10.0.0.11:8443".parse().unwrap(), true),
            "http://10.0.0.11:8443"
        );
    }
}
