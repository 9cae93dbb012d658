//! Which programs the HA quickstart runs, from which Debian packages, and installing the
//! missing ones: said first, then done with `apt-get` when run as root and agreed to
//! (`--yes`, or a `y` at the prompt on a terminal); otherwise the command is printed and
//! the quickstart stops with an error.

use anyhow::{bail, Context};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The programs, where Debian installs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub patroni: PathBuf,
    pub etcd: PathBuf,
    /// `/usr/lib/postgresql/N/bin`, the newest complete one.
    pub pg_bin: PathBuf,
    /// The server script itself, not `/usr/sbin/rabbitmq-server`: that wrapper `su`s to the
    /// `rabbitmq` user and the system's cookie when run as root.
    pub rabbitmq_server: PathBuf,
    pub epmd: PathBuf,
}

/// One program that is missing, with the package that brings it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub what: &'static str,
    pub package: &'static str,
}

/// The tools under `root` (`/` but in tests), or what is missing.
pub fn find(root: &Path) -> Result<Tools, Vec<Missing>> {
    let mut missing = Vec::new();
    let mut file = |rel: &str, what: &'static str, package: &'static str| {
        let p = root.join(rel);
        if !is_executable(&p) {
            missing.push(Missing { what, package });
        }
        p
    };
    let patroni = file("usr/bin/patroni", "Patroni", "patroni");
    let etcd = file("usr/bin/etcd", "etcd", "etcd-server");
    let rabbitmq_server = file(
        "usr/lib/rabbitmq/bin/rabbitmq-server",
        "RabbitMQ",
        "rabbitmq-server",
    );
    // brought by rabbitmq-server's dependencies; named on its own for a partial install
    let epmd = file("usr/bin/epmd", "epmd (Erlang)", "erlang-base");
    let pg_bin = super::services::find_pg_bin(root);
    if pg_bin.is_none() {
        missing.push(Missing {
            what: "PostgreSQL (postgres, initdb, psql, pg_rewind)",
            package: "postgresql",
        });
    }
    if !missing.is_empty() {
        // erlang-base comes with rabbitmq-server: don't list it twice
        if missing.iter().any(|m| m.package == "rabbitmq-server") {
            missing.retain(|m| m.package != "erlang-base");
        }
        return Err(missing);
    }
    Ok(Tools {
        patroni,
        etcd,
        pg_bin: pg_bin.expect("checked above"),
        rabbitmq_server,
        epmd,
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The `apt-get install` command for `missing` (without recommends: the lab found them
/// unnecessary, and they double the download).
pub fn install_command(missing: &[Missing]) -> Vec<String> {
    let mut packages: Vec<&str> = missing.iter().map(|m| m.package).collect();
    packages.dedup();
    let mut cmd = vec![
        "apt-get".to_string(),
        "install".into(),
        "-y".into(),
        "--no-install-recommends".into(),
    ];
    cmd.extend(packages.into_iter().map(String::from));
    cmd
}

/// The tools, installing what is missing when allowed. `yes`: install without asking.
pub fn ensure(yes: bool) -> anyhow::Result<Tools> {
    let missing = match find(Path::new("/")) {
        Ok(t) => return Ok(t),
        Err(m) => m,
    };
    let cmd = install_command(&missing);
    let list: Vec<String> = missing
        .iter()
        .map(|m| format!("  {} (package {})", m.what, m.package))
        .collect();
    let debian =
        Path::new("/etc/debian_version").is_file() && is_executable(Path::new("/usr/bin/apt-get"));
    if !debian {
        bail!(
            "the HA quickstart needs, and this host lacks:\n{}\nIt installs them only on \
             Debian and Ubuntu (apt-get). Install them yourself, or run the one-host \
             `status-reporter quickstart` (no --ha), which needs none of them",
            list.join("\n")
        );
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the HA quickstart needs, and this host lacks:\n{}\nInstall them as root, then \
             run it again:\n  sudo apt-get update && sudo {}\n(or run the one-host \
             `status-reporter quickstart`, which needs none of them)",
            list.join("\n"),
            cmd.join(" ")
        );
    }
    // When the package lists were never fetched (a fresh container), install would fail
    // with "Unable to locate package".
    let update = !has_package_lists(Path::new("/var/lib/apt/lists"));
    println!("The HA quickstart needs these programs, which are not installed:");
    println!("{}", list.join("\n"));
    println!("It will run:");
    if update {
        println!("  apt-get update");
    }
    println!("  {}", cmd.join(" "));
    println!(
        "Debian may start the packages' own services (etcd, postgresql, rabbitmq-server) on \
         their default ports; the quickstart uses none of them and picks its own ports."
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not installing without --yes (standard input is not a terminal to ask on)");
        }
        print!("Install them now? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("nothing installed (answer was not yes)");
        }
    }
    if update {
        run_apt(&["apt-get".to_string(), "update".into()])?;
    }
    run_apt(&cmd)?;
    find(Path::new("/")).map_err(|still| {
        anyhow::anyhow!(
            "apt-get succeeded but these are still missing: {}",
            still.iter().map(|m| m.what).collect::<Vec<_>>().join(", ")
        )
    })
}

fn has_package_lists(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
    })
}

fn run_apt(cmd: &[String]) -> anyhow::Result<()> {
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| format!("cannot run {}", cmd[0]))?;
    if !status.success() {
        bail!("`{}` failed ({status})", cmd.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn touch_exe(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn an_empty_host_needs_four_packages_and_one_command() {
        let root = tempfile::tempdir().unwrap();
        let missing = find(root.path()).unwrap_err();
        let pkgs: Vec<&str> = missing.iter().map(|m| m.package).collect();
        assert_eq!(
            pkgs,
            ["patroni", "etcd-server", "rabbitmq-server", "postgresql"]
        );
        assert_eq!(
            install_command(&missing).join(" "),
            "apt-get install -y --no-install-recommends patroni etcd-server rabbitmq-server postgresql"
        );
    }

    #[test]
    fn a_complete_host_is_found_and_a_partial_one_names_only_the_gap() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for f in [
            "usr/bin/patroni",
            "usr/bin/etcd",
            "usr/lib/rabbitmq/bin/rabbitmq-server",
            "usr/lib/postgresql/15/bin/postgres",
            "usr/lib/postgresql/15/bin/initdb",
            "usr/lib/postgresql/15/bin/psql",
            "usr/lib/postgresql/15/bin/pg_rewind",
        ] {
            touch_exe(r, f);
        }
        let missing = find(r).unwrap_err();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].package, "erlang-base");
        touch_exe(r, "usr/bin/epmd");
        let t = find(r).unwrap();
        assert_eq!(t.pg_bin, r.join("usr/lib/postgresql/15/bin"));
        // not executable is missing
        std::fs::set_permissions(
            r.join("usr/bin/etcd"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert_eq!(find(r).unwrap_err()[0].package, "etcd-server");
    }
}
