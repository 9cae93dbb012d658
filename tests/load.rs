//! Keeps the load generator (`collector/examples/loadgen.rs`) from rotting: a 200-node,
//! 5-second run against the real collector binary must be clean (every valid report
//! accepted, every garbage request and replay refused, the view right, a clean exit).
//! The real load run is a documented command, not part of the suite: see RELIABILITY.md.

#[allow(dead_code)]
#[path = "../collector/examples/loadgen.rs"]
mod loadgen;

#[test]
fn a_short_load_run_is_clean() {
    let o = loadgen::Options {
        nodes: 200,
        secs: 8,
        freq: 1.0,
        conns: 16,
        bin: env!("CARGO_BIN_EXE_status-reporter").into(),
    };
    let out = loadgen::run(&o);
    assert!(out.clean(), "{out:#?}");
    assert!(out.valid_accepted > 200, "{out:#?}");
    assert!(
        out.garbage_sent > 0 && out.replays_sent > 0,
        "the mix did not include garbage and replays: {out:#?}"
    );
}
