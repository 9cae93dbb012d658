//! Fuzzes the galera probe's status-variable parsers and `interpret` over arbitrary
//! `mariadb -N -B` output (`name<TAB>value` lines, `probes/fixtures/galera-10.11`): it
//! must never panic, and an answer that does not say Primary, ready and Synced must not
//! come out OK.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sr_probes::galera::{parse_tsv, Config, Galera, Raw};
use sr_probes::TypedProbe;
use sr_protocol::NodeStatus;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(rows) = parse_tsv(text) else { return };
    let cfg: Config = toml::from_str("user = 'monitor'").expect("the fuzz config parses");
    let finding = Galera::interpret(&cfg, &Raw::Answered { rows, read_only: None });
    let g = finding.facts.galera.as_ref().expect("galera facts are always written");
    if finding.status == NodeStatus::Ok {
        assert!(g.primary() && g.ready == Some(true) && g.local_state.as_deref() == Some("Synced"));
    }
});
