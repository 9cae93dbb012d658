//! sr-fsutil: small file helpers with the guarantees the agent and the collector's setup
//! need: bounded reads, atomic writes (temp file, fsync, rename, fsync of the directory)
//! with an explicit mode and owner, and the PEM framing of the node key.
//!
//! A crate of its own so that both sides use one copy without the collector depending on
//! the agent. Not in sr-tls: these are plain file operations (with `nix` for ownership),
//! which the TLS crate has no use for; not in sr-protocol, which does no I/O.
//!
//! Atomic writes matter because the original's non-atomic writes left half-written
//! files behind on crashes and full disks; a reader here sees the old file or the new
//! one, never a mix.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub mod passwd;

/// The system user the packaged service runs as; files it must read are chowned to it.
pub const SERVICE_USER: &str = "status-reporter";

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the file is too large")]
    TooLarge,
    /// A FIFO, a device (a symlink to `/dev/zero`), a socket or a directory: reading it
    /// could block forever or never end.
    #[error("not a regular file")]
    NotRegular,
}

impl From<ReadError> for std::io::Error {
    /// For callers whose errors carry an `io::Error`: the reason stays in the message.
    fn from(e: ReadError) -> std::io::Error {
        match e {
            ReadError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// Creates `dir` (and missing parents) readable by its owner only: the state dir holds
/// the agent's sequence numbers and delivery state. An existing directory keeps its mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The one way the agent, the collector and the CLI read a file they are given (configs,
/// keys, certificates, token files): at most `limit` bytes, and only a regular file
/// (symlinks to one are followed). A longer file is an error rather than a truncation.
///
/// The file is opened non-blocking, so a FIFO cannot hang the open, and its type is
/// checked on the open descriptor (no race with a swapped path) before a byte is read.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(ReadError::NotRegular);
    }
    read_limited(file, limit)
}

/// Like [`read_bounded`] for a path, or standard input for `-` (a token piped in).
pub fn read_bounded_or_stdin(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    if path.as_os_str() == "-" {
        return read_limited(std::io::stdin().lock(), limit);
    }
    read_bounded(path, limit)
}

/// Longest token file accepted (tokens are ~50 characters).
pub const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// A token from a file, or standard input for `-`: bounded like every read, trimmed of
/// surrounding whitespace (editors add a newline). Keeps the token out of the command
/// line, where `/proc/PID/cmdline` would show it.
pub fn read_token_file(path: &Path) -> Result<String, ReadError> {
    let bytes = read_bounded_or_stdin(path, MAX_TOKEN_FILE_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the token is not UTF-8 text",
        ))
    })?;
    Ok(text.trim().to_string())
}

fn read_limited(file: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge);
    }
    Ok(buf)
}

/// Writes `bytes` to `path` atomically with `mode`. The temp file lives in the same
/// directory, so the rename never crosses filesystems. When `owner` is given and that
/// user exists, the file is chowned to it (only root can; failures are returned).
pub fn atomic_write(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<&str>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode given to open() is filtered by the umask; set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if let Some(user) = owner {
            chown_to_user(&tmp, user)?;
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Chowns `path` to `user` (and that user's primary group) if the user is in
/// `/etc/passwd`; a missing user is not an error (development machines have none).
/// Looked up in the file, never through NSS: see [`passwd`] for why and what that misses.
pub fn chown_to_user(path: &Path, user: &str) -> std::io::Result<()> {
    let Some(ids) = passwd::lookup_user(user)? else {
        return Ok(());
    };
    std::os::unix::fs::chown(path, Some(ids.uid), Some(ids.gid))
}

/// Gives `path` to `user`'s primary group, keeping its owner: a file root owns that the
/// service group may read (the client file). A missing user is not an error, as in
/// [`chown_to_user`].
pub fn chgrp_to_users_group(path: &Path, user: &str) -> std::io::Result<()> {
    let Some(ids) = passwd::lookup_user(user)? else {
        return Ok(());
    };
    std::os::unix::fs::chown(path, None, Some(ids.gid))
}

/// Whether a directory exists and this process may create files in it, tested by
/// creating (and removing) a probe file, so root-squash, read-only mounts and ACLs
/// are all covered.
pub fn check_writable_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!(
            "{} does not exist or is not a directory",
            dir.display()
        ));
    }
    let probe = dir.join(format!(
        ".status-reporter-write-test.{}",
        std::process::id()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("cannot write in {}: {e}", dir.display())),
    }
}

/// PEM-encodes `der` with the given label, wrapped at 64 columns.
pub fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block with `label`; `None` for anything else.
pub fn pem_decode(pem: &[u8], label: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    B64.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_the_mode_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        atomic_write(&p, b"one", 0o600, None).unwrap();
        atomic_write(&p, b"two", 0o600, None).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn bounded_reads_refuse_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![b'x'; 11]).unwrap();
        assert!(matches!(read_bounded(&p, 10), Err(ReadError::TooLarge)));
        assert_eq!(read_bounded(&p, 11).unwrap().len(), 11);
    }

    #[test]
    fn bounded_reads_refuse_fifos_devices_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        // A FIFO nobody writes to: a plain open would block forever.
        let fifo = dir.path().join("ca.pem");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(
            read_bounded(&fifo, 1 << 20),
            Err(ReadError::NotRegular)
        ));
        // A symlink to /dev/zero: a plain read never ends.
        let zero = dir.path().join("zero.pem");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read_bounded(&zero, 1 << 20),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(
            read_bounded(dir.path(), 1 << 20),
            Err(ReadError::NotRegular)
        ));
        // A symlink to a regular file is still read.
        let real = dir.path().join("real");
        std::fs::write(&real, b"ok").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read_bounded(&link, 10).unwrap(), b"ok");
    }

    #[test]
    fn pem_round_trips_and_refuses_other_labels() {
        let der = (0..200u8).collect::<Vec<_>>();
        let pem = pem_encode(&der, "PRIVATE KEY");
        assert_eq!(pem_decode(pem.as_bytes(), "PRIVATE KEY").unwrap(), der);
        assert!(pem_decode(pem.as_bytes(), "CERTIFICATE").is_none());
        assert!(pem_decode(b"garbage", "PRIVATE KEY").is_none());
    }
}
