//! Local user lookup by reading `/etc/passwd` directly, never through glibc's NSS.
//!
//! Why not `getpwnam`: the packaged binary links glibc statically (packaging/build.sh).
//! A static glibc still honours `/etc/nsswitch.conf`, and for any source other than
//! `files` (Debian 12 ships `passwd: files systemd`) it dlopens `libnss_<source>.so.2`,
//! which drags the shared libc into a process that already has a static one: a segfault
//! in `collector init` and `configure` whenever the user is not in the file (on a fresh
//! host, or a development machine without the service user).
//!
//! The trade-off: users that exist only in LDAP, SSSD, systemd-homed or another NSS
//! source are not seen. The one user looked up is the package's service user, a local
//! system user that the DEB/RPM scriptlets create with `useradd --system` into
//! `/etc/passwd`, so nothing is lost; a missing user means "do not chown", as before.

use std::path::Path;

/// The system's user database.
pub const PASSWD_PATH: &str = "/etc/passwd";

/// Largest `/etc/passwd` read. Real ones are a few KiB; a host with tens of thousands of
/// local users still fits. Larger is an error, not a truncated (and wrong) answer.
pub const MAX_PASSWD_BYTES: u64 = 8 << 20;

/// A user's numeric ids, as the chown needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
}

/// Looks `name` up in the passwd file at `path` (bounded read). `Ok(None)` when no entry
/// matches; a file that cannot be read, or is too large, is an error.
pub fn lookup_user_in(path: &Path, name: &str) -> std::io::Result<Option<UserIds>> {
    let bytes = crate::read_bounded(path, MAX_PASSWD_BYTES)?;
    Ok(find_user(&bytes, name))
}

/// [`lookup_user_in`] on `/etc/passwd`.
pub fn lookup_user(name: &str) -> std::io::Result<Option<UserIds>> {
    lookup_user_in(Path::new(PASSWD_PATH), name)
}

/// Finds `name` in passwd(5) text: `name:password:uid:gid:gecos:home:shell`, one entry
/// a line. Like glibc's `files` source, the first matching line wins, and lines that are
/// malformed (too few fields, non-numeric ids, not UTF-8) are skipped rather than failing
/// the whole lookup. NIS compat lines (`+name`, `-name`) never match a plain name.
pub fn find_user(passwd: &[u8], name: &str) -> Option<UserIds> {
    if name.is_empty() || name.contains(':') || name.contains('\n') {
        return None;
    }
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        let mut fields = line.trim_end_matches('\r').split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = decimal_id(fields.next()?)?;
        let gid = decimal_id(fields.next()?)?;
        Some(UserIds { uid, gid })
    })
}

/// A uid or gid field: ASCII digits only. `str::parse` alone would also take a sign
/// (`+0`), which no passwd writer produces; such a line is skipped as malformed.
fn decimal_id(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        status-reporter:x:998:997:status-reporter service:/var/lib/status-reporter:/usr/sbin/nologin\n\
        status-reporter:x:5:5:shadowed by the first:/:/bin/false\n";

    #[test]
    fn finds_the_first_matching_entry() {
        assert_eq!(
            find_user(SAMPLE, "status-reporter"),
            Some(UserIds { uid: 998, gid: 997 })
        );
        assert_eq!(find_user(SAMPLE, "root"), Some(UserIds { uid: 0, gid: 0 }));
        assert_eq!(find_user(SAMPLE, "nobody"), None);
    }

    #[test]
    fn a_prefix_or_a_compat_line_is_not_a_match() {
        assert_eq!(find_user(SAMPLE, "status"), None);
        assert_eq!(find_user(SAMPLE, "roo"), None);
        assert_eq!(
            find_user(b"+status-reporter::::::\n", "status-reporter"),
            None
        );
    }

    #[test]
    fn malformed_truncated_and_binary_lines_are_skipped() {
        let text = b"svc\nsvc:x\nsvc:x:12\nsvc:x:abc:1:::\nsvc:x:99999999999:1:::\n\xff\xfe:x:1:1\nsvc:x:7:8:::\n";
        assert_eq!(find_user(text, "svc"), Some(UserIds { uid: 7, gid: 8 }));
        assert_eq!(find_user(b"svc:x:7:", "svc"), None, "a truncated last line");
        assert_eq!(find_user(b"", "svc"), None);
        assert_eq!(
            find_user(b"svc:x:7:8:::\r\n", "svc"),
            Some(UserIds { uid: 7, gid: 8 })
        );
        // Names that could never be one passwd field match nothing.
        assert_eq!(find_user(SAMPLE, ""), None);
        assert_eq!(find_user(SAMPLE, "root:x"), None);
    }

    #[test]
    fn reads_a_file_and_refuses_an_oversized_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        std::fs::write(&p, SAMPLE).unwrap();
        assert_eq!(
            lookup_user_in(&p, "daemon").unwrap(),
            Some(UserIds { uid: 1, gid: 1 })
        );
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_PASSWD_BYTES + 1).unwrap();
        assert!(lookup_user_in(&p, "daemon").is_err());
        assert!(lookup_user_in(&dir.path().join("missing"), "daemon").is_err());
    }

    #[test]
    fn agrees_with_the_system_database_for_local_users() {
        // root is in every /etc/passwd; the answer must match what the kernel-facing
        // ids of this test (run as any user) would chown to.
        let root = lookup_user("root").unwrap().expect("root is a local user");
        assert_eq!(root, UserIds { uid: 0, gid: 0 });
    }

    #[test]
    fn ids_are_plain_decimal() {
        assert_eq!(find_user(b"root:x:+0:0:::\n", "root"), None);
        assert_eq!(find_user(b"root:x: 0:0:::\n", "root"), None);
        assert_eq!(
            find_user(b"root:x:0:02:::\n", "root"),
            Some(UserIds { uid: 0, gid: 2 })
        );
    }
}
