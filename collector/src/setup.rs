//! Setting up a collector: its config file, its store, its tokens and its admin user.
//!
//! Two steps, as the agent's `configure` has ([`plan`] → [`apply`]), so the policy lives
//! in one place and both `collector init` and the quickstart use it:
//! - a token for every role the collector will serve (`collector init` issues one per
//!   role; the in-process quickstart only the manager's and the admin's);
//! - the reader user `admin`, whose password is the admin token (HTTP Basic for `cfy`);
//! - for the packaged service, the config (0600), the state directory and the database
//!   belong to the service user, or the service could not read them after a root `init`;
//! - for the packaged service, every path in the config is absolute (made so against the
//!   directory `init` ran in), since the service starts elsewhere;
//! - for the packaged service given the CA, the operator's client file beside the config
//!   ([`crate::client_file`]: the local collector's address, the CA and the admin token,
//!   0640 root and the service group), so `cluster status` on the manager needs no flags.
//!
//! Secrets are returned to the caller to show once; only their hashes are stored.

use crate::config::Config;
use crate::store::{Role, Store, StoreError};
use std::path::{Path, PathBuf};

/// The reader user whose password is the admin token.
pub const ADMIN_USER: &str = "admin";

/// Who the collector being set up is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The packaged service: its config file is written to `config_path`, every role gets
    /// a token and the files belong to the service user (when that user exists). With
    /// `client`, the operator's client file is written beside the config.
    Service {
        config_path: PathBuf,
        client: Option<ClientTarget>,
    },
    /// A collector run in-process on this host (the quickstart): no config file, tokens
    /// for this host's manager agent and for the reader, files owned by the caller.
    InProcess,
}

/// What `collector init` knows for the client file: the CA that signed the collector's
/// certificate, and the address to reach it by (default: [`crate::client_file::manager_for`]
/// of the listen address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTarget {
    pub ca_path: Option<PathBuf>,
    pub manager: Option<String>,
}

/// A checked plan: what [`apply`] will do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub cfg: Config,
    /// Where the config is written (0600); `None`: not written.
    pub config_path: Option<PathBuf>,
    /// Roles to issue a token for, in this order. Admin gets the `admin` user too.
    pub roles: Vec<Role>,
    /// The config, state directory and database are chowned to this user if it exists.
    pub owner: Option<&'static str>,
    /// The operator's client file to write, with the admin token [`apply`] issues.
    pub client: Option<ClientPlan>,
}

/// Where the client file goes and what it says besides the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPlan {
    pub path: PathBuf,
    pub manager: String,
    pub ca_path: Option<PathBuf>,
}

/// What [`apply`] issued: each role's token secret, to be shown once.
#[derive(Debug, Clone)]
pub struct Issued {
    pub tokens: Vec<(Role, String)>,
}

impl Issued {
    pub fn token(&self, role: Role) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, t)| t.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("giving {} to {user}", path.display())]
    Chown {
        path: PathBuf,
        user: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Plans the setup of `cfg` for `target`.
pub fn plan(cfg: Config, target: Target) -> Plan {
    match target {
        Target::Service {
            config_path,
            client,
        } => {
            let config_path = absolute(&config_path);
            let client = client.map(|c| ClientPlan {
                path: config_path
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .join(crate::client_file::FILE_NAME),
                manager: c
                    .manager
                    .unwrap_or_else(|| crate::client_file::manager_for(cfg.listen, cfg.plain_http)),
                ca_path: c.ca_path.map(|p| absolute(&p)),
            });
            Plan {
                cfg: with_absolute_paths(cfg),
                config_path: Some(config_path),
                roles: Role::ALL.to_vec(),
                owner: Some(sr_fsutil::SERVICE_USER),
                client,
            }
        }
        Target::InProcess => Plan {
            cfg,
            config_path: None,
            roles: vec![Role::Manager, Role::Admin],
            owner: None,
            client: None,
        },
    }
}

/// `path` made absolute against the current directory (not resolving symlinks: the
/// operator's path is kept as written). Left as given if the directory is unknown.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `cfg` with its state directory, certificate and key paths absolute.
fn with_absolute_paths(mut cfg: Config) -> Config {
    cfg.state_dir = absolute(&cfg.state_dir);
    if let Some(tls) = cfg.tls.as_mut() {
        tls.cert_path = absolute(&tls.cert_path);
        tls.key_path = absolute(&tls.key_path);
    }
    cfg
}

/// Writes the config, creates the store, gives both to the owner and issues the tokens.
pub fn apply(plan: &Plan) -> Result<Issued, SetupError> {
    if let Some(path) = &plan.config_path {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| SetupError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        sr_fsutil::atomic_write(path, plan.cfg.to_toml().as_bytes(), 0o600, plan.owner).map_err(
            |source| SetupError::Write {
                path: path.clone(),
                source,
            },
        )?;
    }
    let store = Store::open(&plan.cfg.state_dir)?;
    if let Some(user) = plan.owner {
        for owned in [plan.cfg.state_dir.clone(), store.path().to_path_buf()] {
            sr_fsutil::chown_to_user(&owned, user).map_err(|source| SetupError::Chown {
                path: owned,
                user,
                source,
            })?;
        }
    }
    let mut tokens = Vec::with_capacity(plan.roles.len());
    for &role in &plan.roles {
        tokens.push((role, store.create_token(role)?));
    }
    let issued = Issued { tokens };
    if let Some(admin) = issued.token(Role::Admin) {
        store.set_user(ADMIN_USER, admin)?;
        if let Some(client) = &plan.client {
            write_client_file(client, admin, plan.owner)?;
        }
    }
    Ok(issued)
}

/// The client file: written 0640 by the caller (root on a manager), then given to the
/// service user's group so that group may read it and nobody else.
fn write_client_file(
    client: &ClientPlan,
    token: &str,
    group_of: Option<&'static str>,
) -> Result<(), SetupError> {
    let file = crate::client_file::ClientFile {
        manager: client.manager.clone(),
        ca_path: client.ca_path.clone(),
        token: token.to_string(),
    };
    let path = &client.path;
    sr_fsutil::atomic_write(
        path,
        file.to_toml().as_bytes(),
        crate::client_file::MODE,
        None,
    )
    .map_err(|source| SetupError::Write {
        path: path.clone(),
        source,
    })?;
    if let Some(user) = group_of {
        sr_fsutil::chgrp_to_users_group(path, user).map_err(|source| SetupError::Chown {
            path: path.clone(),
            user,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_setup_issues_every_role_and_the_admin_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/collector.toml");
        let cfg = Config::new(dir.path().join("state"), "c.pem", "k.pem");
        let issued = apply(&plan(
            cfg,
            Target::Service {
                config_path: path.clone(),
                client: None,
            },
        ))
        .unwrap();
        assert_eq!(
            issued.tokens.iter().map(|t| t.0).collect::<Vec<_>>(),
            Role::ALL
        );
        assert!(Config::load(&path).is_ok());
        let store = Store::open(&dir.path().join("state")).unwrap();
        let admin = issued.token(Role::Admin).unwrap();
        assert!(store.verify_user(ADMIN_USER, admin).unwrap());
        assert_eq!(store.lookup_token(admin).unwrap(), Some(Role::Admin));
    }

    /// `collector init --state-dir state --cert c.pem` run in one directory, the service
    /// started in another: the config it wrote must still find the store and the files.
    #[test]
    fn a_service_config_names_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::new("state", "c.pem", "tls/k.pem");
        let p = plan(
            cfg,
            Target::Service {
                config_path: "etc/collector.toml".into(),
                client: None,
            },
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(p.cfg.state_dir, cwd.join("state"));
        let tls = p.cfg.tls.as_ref().unwrap();
        assert_eq!(tls.cert_path, cwd.join("c.pem"));
        assert_eq!(tls.key_path, cwd.join("tls/k.pem"));
        assert_eq!(p.config_path, Some(cwd.join("etc/collector.toml")));
        let written = Config::from_toml(&p.cfg.to_toml()).unwrap();
        assert!(written.state_dir.is_absolute(), "{}", p.cfg.to_toml());
        drop(dir);
    }

    /// With the CA, `init` leaves a client file that `cluster status` can use as it is:
    /// the loopback address of a collector listening everywhere, the CA, the admin token,
    /// and a mode that [`crate::client_file::load`] accepts.
    #[test]
    fn a_service_setup_with_a_ca_writes_the_client_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/collector.toml");
        let mut cfg = Config::new(dir.path().join("state"), "c.pem", "k.pem");
        cfg.listen = "0.0.0.0:53333".parse().unwrap();
        let issued = apply(&plan(
            cfg,
            Target::Service {
                config_path: path.clone(),
                client: Some(ClientTarget {
                    ca_path: Some(dir.path().join("ca.pem")),
                    manager: None,
                }),
            },
        ))
        .unwrap();
        let client = dir.path().join("etc/client.toml");
        let mode = std::fs::metadata(&client).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let read = crate::client_file::load(&client).unwrap();
        assert_eq!(read.manager, "https://127.0.0.1:53333");
        assert_eq!(read.ca_path, Some(dir.path().join("ca.pem")));
        assert_eq!(read.token, issued.token(Role::Admin).unwrap());
        let store = Store::open(&dir.path().join("state")).unwrap();
        assert_eq!(store.lookup_token(&read.token).unwrap(), Some(Role::Admin));
    }

    #[test]
    fn an_in_process_setup_writes_no_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        let cfg = Config::new(dir.path().join("state"), "c.pem", "k.pem");
        let issued = apply(&plan(cfg, Target::InProcess)).unwrap();
        assert!(!path.exists());
        assert!(issued.token(Role::Manager).is_some());
        assert!(issued.token(Role::Db).is_none());
    }
}
