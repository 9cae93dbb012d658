//! Which collector an operator command talks to, with which CA and which admin token:
//! flags first, then environment variables, then the manager's client file
//! (`/etc/status-reporter/client.toml`, `sr_collector::client_file`), as `cfy` finds its
//! profile. Each of the three is resolved on its own, so `--manager` alone still takes the
//! CA and the token from the file.
//!
//! The file is read only when something is missing, and then refused if others could read
//! or change it. [`resolve_with`] is the pure part the tests drive.

use super::manager::{manager_url, StatusArgs};
use sr_collector::client_file::{self, ClientFile};
use std::path::{Path, PathBuf};

/// Shown under every connection command's `--help`.
pub const WHERE_IT_LOOKS: &str =
    "Where the connection comes from: each of the collector's address, \
its CA and the admin token is taken from its flag, else its variable (STATUS_REPORTER_MANAGER, \
STATUS_REPORTER_CA_PATH, STATUS_REPORTER_TOKEN), else from /etc/status-reporter/client.toml, \
which `collector init --ca-path CA` writes on a manager (mode 0640, root and the \
status-reporter group; a file others can read or write is refused). STATUS_REPORTER_ETC \
replaces /etc/status-reporter (for tests and packaging).";

/// A resolved connection.
pub struct Conn {
    /// `https://host:port` (or `http://` for a plain-HTTP test collector), no trailing `/`.
    pub base_url: String,
    pub tls: sr_tls::TlsClientConfig,
    pub token: String,
}

/// What the flags and variables gave (clap has merged the two).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Given {
    pub manager: Option<String>,
    pub ca_path: Option<PathBuf>,
    /// `--token` or `STATUS_REPORTER_TOKEN`, trimmed.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// Where each value came from, resolved; the token still to be read when from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub manager: String,
    pub ca_path: Option<PathBuf>,
    pub token: TokenSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    Given(String),
    File(PathBuf),
}

/// Flags over the file, one value at a time. `file` is called at most once, and only when
/// a value is missing; its error (a missing or unsafe file) is returned with what was
/// missing and how to give it instead.
pub fn resolve_with(
    given: Given,
    file_path: &Path,
    file: impl FnOnce() -> Result<ClientFile, String>,
) -> Result<Resolved, String> {
    let token_given = given
        .token
        .clone()
        .map(TokenSource::Given)
        .or_else(|| given.token_file.clone().map(TokenSource::File));
    let manager_is_plain = given
        .manager
        .as_deref()
        .is_some_and(|m| m.starts_with("http://"));
    let needs_ca = given.ca_path.is_none() && !manager_is_plain;
    if let (Some(manager), Some(token)) = (&given.manager, &token_given) {
        if !needs_ca {
            return Ok(Resolved {
                manager: manager.clone(),
                ca_path: given.ca_path,
                token: token.clone(),
            });
        }
    }
    let mut missing = Vec::new();
    if given.manager.is_none() {
        missing.push("--manager");
    }
    if needs_ca {
        missing.push("--ca-path");
    }
    if token_given.is_none() {
        missing.push("--token-file (or STATUS_REPORTER_TOKEN)");
    }
    let f = file().map_err(|e| {
        format!(
            "no {} given, and the client file cannot be used: {e}\n(pass them, or run `status-reporter collector init --ca-path CA` on a manager to write {})",
            missing.join(", "),
            file_path.display()
        )
    })?;
    let manager = given.manager.unwrap_or(f.manager);
    let ca_path = given.ca_path.or(f.ca_path);
    if ca_path.is_none() && !manager.starts_with("http://") {
        return Err(format!(
            "no --ca-path given and {} names none for {manager}",
            file_path.display()
        ));
    }
    Ok(Resolved {
        manager,
        ca_path,
        token: token_given.unwrap_or(TokenSource::Given(f.token)),
    })
}

/// The connection for `args`: [`resolve_with`] over the real client file, the token read,
/// the CA loaded. Errors are one line for the operator.
pub fn resolve(args: &StatusArgs) -> Result<Conn, String> {
    let path = client_file::default_path(std::env::var_os(client_file::ETC_ENV).as_deref());
    let given = Given {
        manager: args.manager.clone().filter(|m| !m.trim().is_empty()),
        ca_path: args.ca_path.clone().filter(|p| !p.as_os_str().is_empty()),
        token: args
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        token_file: args.token_file.clone(),
    };
    let r = resolve_with(given, &path, || client_file::load(&path))?;
    let token = match r.token {
        TokenSource::Given(t) => t,
        TokenSource::File(f) => {
            sr_fsutil::read_token_file(&f).map_err(|e| format!("reading {}: {e}", f.display()))?
        }
    };
    let tls = match &r.ca_path {
        Some(ca) => sr_tls::client_config(ca, None).map_err(|e| e.to_string())?,
        // Only for an http:// collector: trusts nothing, so an https:// URL fails closed.
        None => sr_tls::trust_nothing_config(),
    };
    Ok(Conn {
        base_url: manager_url(&r.manager),
        tls,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ClientFile {
        ClientFile {
            manager: "https://127.0.0.1:53333".into(),
            ca_path: Some("/etc/ca.pem".into()),
            token: "srt_file".into(),
        }
    }
    const PATH: &str = "/etc/status-reporter/client.toml";

    #[test]
    fn with_no_flags_everything_comes_from_the_file() {
        let r = resolve_with(Given::default(), PATH.as_ref(), || Ok(file())).unwrap();
        assert_eq!(r.manager, "https://127.0.0.1:53333");
        assert_eq!(r.ca_path, Some("/etc/ca.pem".into()));
        assert_eq!(r.token, TokenSource::Given("srt_file".into()));
    }

    #[test]
    fn each_flag_overrides_its_own_value_only() {
        let given = Given {
            manager: Some("10.0.0.12".into()),
            ..Given::default()
        };
        let r = resolve_with(given, PATH.as_ref(), || Ok(file())).unwrap();
        assert_eq!(r.manager, "10.0.0.12");
        assert_eq!(r.ca_path, Some("/etc/ca.pem".into()));
        assert_eq!(r.token, TokenSource::Given("srt_file".into()));

        let given = Given {
            token_file: Some("/root/admin.token".into()),
            ca_path: Some("/other/ca.pem".into()),
            ..Given::default()
        };
        let r = resolve_with(given, PATH.as_ref(), || Ok(file())).unwrap();
        assert_eq!(r.manager, "https://127.0.0.1:53333");
        assert_eq!(r.ca_path, Some("/other/ca.pem".into()));
        assert_eq!(r.token, TokenSource::File("/root/admin.token".into()));
    }

    #[test]
    fn the_token_flag_or_variable_wins_over_the_token_file() {
        let given = Given {
            token: Some("srt_env".into()),
            token_file: Some("/root/admin.token".into()),
            ..Given::default()
        };
        let r = resolve_with(given, PATH.as_ref(), || Ok(file())).unwrap();
        assert_eq!(r.token, TokenSource::Given("srt_env".into()));
    }

    #[test]
    fn with_every_flag_the_file_is_never_read() {
        let given = Given {
            manager: Some("m".into()),
            ca_path: Some("ca.pem".into()),
            token: Some("t".into()),
            token_file: None,
        };
        let r = resolve_with(given.clone(), PATH.as_ref(), || panic!("the file was read")).unwrap();
        assert_eq!(r.manager, "m");
        // A plain-HTTP collector needs no CA.
        let plain = Given {
            manager: Some("http://127.0.0.1:1".into()),
            ca_path: None,
            ..given
        };
        assert!(resolve_with(plain, PATH.as_ref(), || panic!("read")).is_ok());
    }

    #[test]
    fn a_missing_or_unsafe_file_says_what_was_missing_and_where_it_looked() {
        let given = Given {
            manager: Some("m".into()),
            ..Given::default()
        };
        let e = resolve_with(given, PATH.as_ref(), || {
            Err(client_file::check_mode(PATH.as_ref(), 0o100644, 0, 0).unwrap_err())
        })
        .unwrap_err();
        assert!(e.starts_with("no --ca-path, --token-file"), "{e}");
        assert!(e.contains("world-readable"), "{e}");
        assert!(e.contains(PATH), "{e}");
    }

    #[test]
    fn a_file_without_a_ca_serves_only_plain_http() {
        let no_ca = || {
            Ok(ClientFile {
                ca_path: None,
                ..file()
            })
        };
        let e = resolve_with(Given::default(), PATH.as_ref(), no_ca).unwrap_err();
        assert!(e.contains("names none"), "{e}");
    }
}
