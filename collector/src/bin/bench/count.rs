//! `collector-bench --count`: instructions per verified report, counted by callgrind, beside
//! the same count for the bare hyper + rustls server and for one Ed25519 verification, all
//! in one run.
//!
//! Timings on a shared 2-core VM move with the neighbours' load; instruction counts barely
//! do, so a change to the ingest path can be proven by them. (`perf stat -e instructions`
//! would be cheaper, but this VM exposes no hardware counters: "not supported".)
//!
//! Method: the collector (`--serve-collector`), then the bare server (`--serve-bare`), each
//! run under `valgrind --tool=callgrind --instr-atstart=no`. The collector's first-contact
//! round (pins, first rows) and one steady round run uncounted, so that the write-behind
//! the counted window catches from before it is steady work too (until 2026-11-29 it caught
//! part of the first contact's rows); then `callgrind_control -i on` and `-z`, one
//! steady round of `--nodes` verified reports (default 2,000) over `--conns` keep-alive TLS
//! connections (default 4, so their handshakes weigh little), and `callgrind_control -d`.
//! That dump holds the steady round and nothing else; the bare server gets the same
//! requests the same way. User-space instructions only: the kernel's TCP and syscall work
//! is not counted (the timing benchmark's `/proc` CPU figures hold it). Under valgrind the
//! CPU offers no AVX-512, so the figures are for the AVX2 code paths.
//!
//! The dumps are kept in `--out DIR` (default a new directory under /tmp) for
//! `callgrind_annotate`; the breakdown printed here is made from them: self (exclusive)
//! cost summed by function group, which adds up to the total, and the inclusive cost of the
//! entry points of the ingest steps.

use super::{run_load, Child, Setup};
use std::path::{Path, PathBuf};
use std::process::Command;

type Error = Box<dyn std::error::Error>;

/// Groups of functions by their (demangled) name; a function's self cost goes to the first
/// group one of whose patterns its name contains. The order matters: specific before broad.
const SELF_GROUPS: &[(&str, &[&str])] = &[
    (
        "Ed25519 verify (ring or dalek: curve25519, SHA-512)",
        &[
            "curve25519",
            "x25519",
            "ed25519",
            "sha512",
            "sha2::sha512",
            "ring::digest::sha2::sha2_64",
        ],
    ),
    (
        "body digest (SHA-256)",
        &["sha256", "ring::digest::sha2::sha2_32"],
    ),
    (
        "TLS record layer and rustls (AES-GCM, ChaCha, rustls)",
        &["aes", "gcm", "chacha", "poly1305", "rustls", "ring::aead"],
    ),
    (
        "TLS handshakes (ECDHE, certificate signature: 4 connections)",
        &[
            "p256",
            "p384",
            "ecp_nistz",
            "bn_",
            "limbs",
            "ring::ec::suite_b",
            "ring::arithmetic",
            "ring::rsa",
        ],
    ),
    (
        "SQLite and the write-behind",
        &[
            "sqlite3",
            "rusqlite",
            "sr_collector::writer",
            "sr_collector::store",
        ],
    ),
    (
        "JSON (serde_json, the report decode, the 200 body)",
        &[
            "serde_json",
            "serde::",
            "serde_core",
            "sr_protocol::report",
            "sr_protocol::model",
        ],
    ),
    (
        "router and middleware (axum, tower, matchit)",
        &["axum", "tower", "matchit"],
    ),
    (
        "HTTP (hyper, http, httparse)",
        &["hyper", "http::", "httparse", "http_body"],
    ),
    ("tokio runtime and I/O", &["tokio", "mio::"]),
    ("tracing", &["tracing"]),
    (
        "allocation (malloc, free, realloc)",
        &[
            "malloc",
            "free",
            "realloc",
            "calloc",
            "alloc::alloc",
            "__rust_alloc",
            "__rust_dealloc",
            "__rdl_",
        ],
    ),
    (
        "memcpy, memmove, memset, memcmp",
        &["memcpy", "memmove", "memset", "memcmp", "bcmp", "strlen"],
    ),
    (
        "locks and atomics (pthread, futex)",
        &["pthread", "futex", "lll_lock", "parking_lot", "std::sync"],
    ),
    (
        "the collector's own code (ingest, state, signing glue)",
        &["sr_collector", "sr_protocol"],
    ),
    (
        "libc syscall wrappers",
        &[
            "libc.so",
            "__GI_",
            "syscall",
            "epoll",
            "clock_gettime",
            "__vdso",
        ],
    ),
];

/// "One verify": what `--micro` times and the goal counts once.
const VERIFY: &str = "sr_protocol::signing::SignedEnvelope::verify";

/// Entry points whose inclusive cost (callees included) says what a step costs; the
/// largest inclusive cost among the functions containing the pattern is shown.
const INCLUSIVE: &[(&str, &str)] = &[
    ("the report handler (`ingest::handle`)", "sr_collector::ingest::handle"),
    ("signature check: header parse, payload, SHA-256, verify", "sr_collector::ingest::verify::check_signature"),
    ("  one verify as the micro-benchmark times it (`SignedEnvelope::verify`: payload, body SHA-256, Ed25519)", VERIFY),
    ("    the Ed25519 verification alone, ring", "EdDSAParameters as ring::signature::VerificationAlgorithm>::verify"),
    ("    the Ed25519 verification alone, dalek", "sr_protocol::signing::verify_with"),
    ("token lookup (`Memory::role_of`)", "sr_collector::state::Memory::role_of"),
    ("pin and replay check", "sr_collector::ingest::trust::check_pin_and_replay"),
    ("report decode (`ReportBody::decode`)", "sr_protocol::report::ReportBody::decode"),
    ("commit (memory update, events)", "sr_collector::ingest::commit::commit"),
    ("write-behind (the writer thread; its per-flush part is inflated, see above)", "sr_collector::writer::run"),
    ("rustls: decrypt and process records", "rustls::conn::ConnectionCore<Data>::process_new_packets"),
    ("TLS stream reads (decrypt included)", "tokio_rustls::common::Stream<IO,C>::read_io"),
    ("axum router", "axum::routing::Router"),
    ("hyper connection dispatcher", "hyper::proto::h1::dispatch::Dispatcher"),
    ("malloc", "malloc"),
    ("free", "free"),
];

pub fn run(nodes: usize, conns: usize) -> Result<(), Error> {
    for tool in ["valgrind", "callgrind_control", "callgrind_annotate"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!("--count needs {tool} (apt-get install valgrind)").into());
        }
    }
    let args: Vec<String> = std::env::args().collect();
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--out takes a directory")?),
        None => std::env::temp_dir().join(format!("collector-count-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out)?;
    let dir = std::env::temp_dir().join(format!("collector-bench-count-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = count(&dir, &out, nodes, conns);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn count(dir: &Path, out: &Path, nodes: usize, conns: usize) -> Result<(), Error> {
    let setup = Setup::new(dir, nodes, 3)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let steady = setup.rounds_prepared[2].clone();

    // The collector: round 1 (first contact) and round 2 (steady) uncounted, round 3
    // counted. Round 2 is there for the write-behind: the counted window's first flushes
    // write the rows of the round before it, which must be steady rows (one UPDATE each),
    // not round 1's first rows (insert, node row, boot, trim), as with two rounds.
    let collector = Child::spawn_with(callgrind(out, "collector")?, "--serve-collector", dir)?;
    let pid = collector.server.pid();
    let mut first = rt.block_on(run_load(
        pid,
        collector.addr,
        &setup.ca,
        &setup.tokens,
        setup.rounds_prepared[0].clone(),
        conns,
    ));
    let warm = rt.block_on(run_load(
        pid,
        collector.addr,
        &setup.ca,
        &setup.tokens,
        setup.rounds_prepared[1].clone(),
        conns,
    ));
    first.errors += warm.errors;
    control(pid, &["-i", "on"])?;
    control(pid, &["-z"])?;
    let counted = rt.block_on(run_load(
        pid,
        collector.addr,
        &setup.ca,
        &setup.tokens,
        steady.clone(),
        conns,
    ));
    let collector_dump = dump(out, "collector", pid)?;
    drop(collector);

    let bare = Child::spawn_with(callgrind(out, "bare")?, "--serve-bare", dir)?;
    let pid = bare.server.pid();
    control(pid, &["-i", "on"])?;
    control(pid, &["-z"])?;
    let bare_run = rt.block_on(run_load(
        pid,
        bare.addr,
        &setup.ca,
        &setup.tokens,
        steady.clone(),
        conns,
    ));
    let bare_dump = dump(out, "bare", pid)?;
    drop(bare);

    let errors = first.errors + counted.errors + bare_run.errors;
    if errors > 0 {
        return Err(format!(
            "{errors} non-200 answers: the count would not be of verified reports"
        )
        .into());
    }
    let n = steady.len() as f64;
    let c_self = annotate(&collector_dump, false)?;
    let c_incl = annotate(&collector_dump, true)?;
    let b_self = annotate(&bare_dump, false)?;
    // The PROGRAM TOTALS row comes first.
    let (c_total, b_total) = (c_self[0].0 as f64, b_self[0].0 as f64);
    let (c_self, b_self) = (&c_self[1..], &b_self[1..]);
    let verify = largest(&c_incl, VERIFY) as f64 / n;

    println!("Instructions (callgrind Ir, user space) per request, one steady round of {nodes} reports over {conns} connections; dumps in {}", out.display());
    println!();
    println!("| measure | instructions per request |");
    println!("|---|---|");
    println!(
        "| collector, verified report (whole process) | {:.0} |",
        c_total / n
    );
    println!(
        "| bare hyper + rustls server, same request | {:.0} |",
        b_total / n
    );
    println!("| one verify (`SignedEnvelope::verify` inclusive, in the collector; verifier: {}) | {verify:.0} |", verifier_name());
    let goal = 1.2 * (b_total / n + verify);
    println!(
        "| collector / (bare + verify); goal ≤ 1.2 | {:.2} ({}: goal is ≤ {goal:.0}) |",
        c_total / n / (b_total / n + verify),
        if c_total / n <= goal {
            "met"
        } else {
            "not met"
        }
    );
    println!(
        "| collector minus bare minus verify: the collector's own work | {:.0} |",
        c_total / n - b_total / n - verify
    );
    println!();
    println!("| self cost by group | collector | bare server |");
    println!("|---|---|---|");
    let c_groups = groups(c_self);
    let b_groups = groups(b_self);
    for ((name, c), (_, b)) in c_groups.iter().zip(&b_groups) {
        println!(
            "| {name} | {:.0} ({:.1} %) | {:.0} |",
            *c as f64 / n,
            *c as f64 * 100.0 / c_total,
            *b as f64 / n
        );
    }
    println!();
    println!("| inclusive cost of an entry point (collector) | per report |");
    println!("|---|---|");
    for (name, pattern) in INCLUSIVE {
        println!("| {name} | {:.0} |", largest(&c_incl, pattern) as f64 / n);
    }
    println!();
    println!("The ten largest self costs in the collector (per report):");
    for (ir, f) in c_self.iter().take(10) {
        println!(
            "  {:>9.0}  {}",
            *ir as f64 / n,
            f.chars().take(150).collect::<String>()
        );
    }
    Ok(())
}

/// This binary (or `--server-bin PATH`, e.g. an earlier build to compare with) under
/// callgrind, instrumentation off until `callgrind_control -i on`.
fn callgrind(out: &Path, name: &str) -> Result<Command, Error> {
    let args: Vec<String> = std::env::args().collect();
    let server = match args.iter().position(|a| a == "--server-bin") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--server-bin takes a path")?),
        None => std::env::current_exe()?,
    };
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--instr-atstart=no")
        .arg(format!("--callgrind-out-file={}/{name}.%p", out.display()))
        .arg(format!("--log-file={}/{name}.valgrind.log", out.display()))
        .arg(server);
    Ok(cmd)
}

fn verifier_name() -> &'static str {
    match std::env::var("COLLECTOR_BENCH_VERIFIER").as_deref() {
        Ok("ring") => "ring",
        _ => "the product's (dalek)",
    }
}

fn control(pid: u32, args: &[&str]) -> Result<(), Error> {
    let status = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("callgrind_control {args:?} {pid} failed").into());
    }
    Ok(())
}

/// `callgrind_control -d`, and the file the dump went to (`NAME.PID.1`).
fn dump(out: &Path, name: &str, pid: u32) -> Result<PathBuf, Error> {
    control(pid, &["-d"])?;
    let file = out.join(format!("{name}.{pid}.1"));
    if !file.exists() {
        return Err(format!("no dump at {}", file.display()).into());
    }
    Ok(file)
}

/// `callgrind_annotate`'s function list: (instructions, "file:function [object]"), largest
/// first, after its PROGRAM TOTALS row (file ""). `inclusive`: callees included.
fn annotate(file: &Path, inclusive: bool) -> Result<Vec<(u64, String)>, Error> {
    let output = Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg("--threshold=100")
        .arg("--auto=no")
        .arg(file)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "callgrind_annotate {}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut rows = Vec::new();
    // Rows look like `1,234,567 (12.34%)  file:function [object]`; the totals row says
    // PROGRAM TOTALS and is not a function.
    for line in text.lines() {
        let line = line.trim();
        let Some((num, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(ir) = num.replace(',', "").parse::<u64>() else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map(|(_, r)| r.trim_start()).unwrap_or(r),
            None => rest,
        };
        if rest.starts_with("PROGRAM TOTALS") {
            rows.insert(0, (ir, String::new()));
            continue;
        }
        if rest.is_empty() {
            continue;
        }
        rows.push((ir, rest.to_string()));
    }
    Ok(rows)
}

/// The largest cost among the functions whose name contains `pattern`.
fn largest(rows: &[(u64, String)], pattern: &str) -> u64 {
    rows.iter()
        .filter(|(_, f)| f.contains(pattern))
        .map(|(ir, _)| *ir)
        .max()
        .unwrap_or(0)
}

/// Self costs summed by [`SELF_GROUPS`], with "other" last.
fn groups(rows: &[(u64, String)]) -> Vec<(&'static str, u64)> {
    let mut sums: Vec<(&'static str, u64)> = SELF_GROUPS.iter().map(|(g, _)| (*g, 0)).collect();
    sums.push(("other", 0));
    for (ir, f) in rows {
        // File, function and object together: C code has no crate path in its name, but
        // its file says where it comes from.
        let slot = SELF_GROUPS
            .iter()
            .position(|(_, pats)| pats.iter().any(|p| f.contains(p)))
            .unwrap_or(SELF_GROUPS.len());
        sums[slot].1 += ir;
    }
    sums
}
