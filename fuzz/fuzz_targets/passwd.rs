//! Fuzzes the `/etc/passwd` parser the CLI uses instead of glibc NSS to find the service
//! user (`sr_fsutil::passwd::find_user`): never a panic on any bytes, and whatever it
//! returns really is on a line that starts with the name asked for.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_fsutil::passwd::find_user;

fuzz_target!(|data: &[u8]| {
    // The first line names the user to look up; the rest is the file.
    let (name, file) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    if let Some(ids) = find_user(file, name) {
        // Some line names the user, with uid and gid fields that are plain decimal digits
        // of those values (leading zeros allowed, as glibc reads them).
        let is_id = |field: Option<&str>, id: u32| {
            field.is_some_and(|f| {
                !f.is_empty()
                    && f.bytes().all(|b| b.is_ascii_digit())
                    && f.trim_start_matches('0').parse::<u32>().unwrap_or(0) == id
            })
        };
        let text = String::from_utf8_lossy(file);
        assert!(
            text.lines().any(|l| {
                let mut f = l.trim_end_matches('\r').split(':');
                f.next() == Some(name)
                    && f.next().is_some()
                    && is_id(f.next(), ids.uid)
                    && is_id(f.next(), ids.gid)
            }),
            "{ids:?} for {name:?} is on no line of the file"
        );
    }
});
