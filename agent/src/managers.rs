//! The manager list: the operator's seeds plus what the managers themselves report.
//!
//! Discovery never replaces the seeds (the 5.0.5 reporter did, and lost operator-given
//! addresses). A discovered `private_ip` whose host is already a seed is that seed, on
//! the seed's port, because `GET /managers` names hosts, not ports; an answer that does
//! name a port other than the seed's names another manager, and keeps that port.
//!
//! Answers merge rather than replace: each manager's task asks its own manager, and two
//! managers that disagree (one still lists a node the other has dropped, or lists only
//! itself) would otherwise make the list alternate with every refresh, so a collector
//! reachable only through discovery would see this node come and go. An address is
//! dropped only once no answer has named it for a full refresh round, so it takes every
//! manager that answers to agree before the list shrinks. An empty answer says nothing
//! (a manager always lists at least itself) and changes nothing.
//!
//! The discovered part is persisted in `state_dir/managers.json`, ports included,
//! atomically, and only when it changed.

use crate::config::ManagerAddr;
use sr_fsutil as fsutil;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const STATE_FILE: &str = "managers.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Persisted {
    discovered: Vec<String>,
}

/// One manager named by an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    addr: ManagerAddr,
    /// Whether the answer gave the port. A bare host that is a seed's host is that seed;
    /// kept so that a reload that adds such a seed still folds the entry into it, and so
    /// the saved form is what the manager said.
    port_given: bool,
}

impl Named {
    /// Parses one `private_ip` (or one saved entry); `None` for garbage.
    fn parse(s: &str) -> Option<Named> {
        let addr = s.parse::<ManagerAddr>().ok()?;
        // A bare IP (v4 or v6) has no port; `host:port` and `[v6]:port` have one.
        let port_given = s.parse::<IpAddr>().is_err() && s.contains(':');
        Some(Named { addr, port_given })
    }

    /// Whether this entry is one of the seeds (and so is not a discovered manager).
    fn is_seed(&self, seeds: &[ManagerAddr]) -> bool {
        seeds
            .iter()
            .any(|s| s == &self.addr || (s.host == self.addr.host && !self.port_given))
    }

    /// The saved form: what the manager said, so a round trip keeps the port.
    fn saved(&self) -> String {
        if self.port_given {
            self.addr.to_string()
        } else {
            self.addr.host.clone()
        }
    }
}

/// A discovered manager and the last time an answer named it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    named: Named,
    last_named: Instant,
}

/// The non-seed managers named in one answer: parsed, deduplicated, bounded, seeds and
/// garbage left out, in the answer's order.
fn answer_entries(seeds: &[ManagerAddr], ips: &[String]) -> Vec<Named> {
    let mut out: Vec<Named> = Vec::new();
    for ip in ips.iter().take(crate::push::MAX_DISCOVERED) {
        let Some(named) = Named::parse(ip) else {
            continue;
        };
        if named.is_seed(seeds) || out.iter().any(|n| n.addr == named.addr) {
            continue;
        }
        out.push(named);
    }
    out
}

/// The discovered list after one answer arrives at `now`. Pure.
///
/// Entries the answer names are refreshed (and new ones appended, up to
/// `MAX_DISCOVERED`, so a hostile manager cannot grow the list without bound); an entry
/// the answer omits is kept until no answer has named it for `round`. An empty answer
/// changes nothing, so a broken manager cannot empty the list.
fn merge_answer(
    known: &[Known],
    seeds: &[ManagerAddr],
    ips: &[String],
    now: Instant,
    round: Duration,
) -> Vec<Known> {
    // Empty means no address at all; an answer naming only seeds is a real answer
    // (the cluster is just the seeds) and lets unnamed entries age out.
    if !ips.iter().any(|ip| Named::parse(ip).is_some()) {
        return known.to_vec();
    }
    let answer = answer_entries(seeds, ips);
    let mut out: Vec<Known> = Vec::new();
    for k in known {
        if let Some(n) = answer.iter().find(|n| n.addr == k.named.addr) {
            out.push(Known {
                named: n.clone(),
                last_named: now,
            });
        } else if now.saturating_duration_since(k.last_named) < round {
            out.push(k.clone());
        }
    }
    for n in answer {
        if out.len() >= crate::push::MAX_DISCOVERED {
            break;
        }
        if !out.iter().any(|k| k.named.addr == n.addr) {
            out.push(Known {
                named: n,
                last_named: now,
            });
        }
    }
    out
}

/// The current seeds and discovered managers.
#[derive(Debug, Clone)]
pub struct ManagerSet {
    seeds: Vec<ManagerAddr>,
    discovered: Vec<Known>,
    file: PathBuf,
}

impl ManagerSet {
    /// Seeds from the config plus whatever a previous run discovered; an unreadable
    /// state file is ignored (discovery will refill it). Loaded entries count as named
    /// now, so a restart gives every manager a full round to name them again.
    pub fn load(seeds: Vec<ManagerAddr>, state_dir: &Path) -> Self {
        let file = state_dir.join(STATE_FILE);
        let mut set = ManagerSet {
            seeds,
            discovered: Vec::new(),
            file,
        };
        if let Ok(bytes) = fsutil::read_bounded(&set.file, 64 * 1024) {
            if let Ok(p) = serde_json::from_slice::<Persisted>(&bytes) {
                let now = Instant::now();
                set.discovered = answer_entries(&set.seeds, &p.discovered)
                    .into_iter()
                    .map(|named| Known {
                        named,
                        last_named: now,
                    })
                    .collect();
            }
        }
        set
    }

    /// Every manager to push to: seeds first, then discovered ones.
    pub fn all(&self) -> Vec<ManagerAddr> {
        self.seeds
            .iter()
            .cloned()
            .chain(self.discovered.iter().map(|k| k.named.addr.clone()))
            .collect()
    }

    /// Replaces the seeds (on reload); discovered entries that became seeds are dropped,
    /// the others keep their ports and when they were last named.
    pub fn set_seeds(&mut self, seeds: Vec<ManagerAddr>) {
        self.seeds = seeds;
        let seeds = &self.seeds;
        self.discovered.retain(|k| !k.named.is_seed(seeds));
    }

    /// Merges an answer read at `now`; `round` is how long an address may go unnamed
    /// before it is dropped (longer than one refresh interval of every manager).
    /// Returns `Ok(true)` when the set changed (and was persisted), `Ok(false)` when
    /// nothing changed, `Err` when persisting failed.
    pub fn merge_discovered(
        &mut self,
        ips: &[String],
        now: Instant,
        round: Duration,
    ) -> Result<bool, String> {
        let merged = merge_answer(&self.discovered, &self.seeds, ips, now, round);
        let changed = !merged
            .iter()
            .map(|k| &k.named)
            .eq(self.discovered.iter().map(|k| &k.named));
        self.discovered = merged;
        if !changed {
            return Ok(false);
        }
        let body = serde_json::to_vec_pretty(&Persisted {
            discovered: self.discovered.iter().map(|k| k.named.saved()).collect(),
        })
        .expect("a list of strings serializes");
        fsutil::create_private_dir(self.file.parent().unwrap_or(Path::new(".")))
            .map_err(|e| e.to_string())?;
        fsutil::atomic_write(&self.file, &body, 0o644, None)
            .map_err(|e| format!("cannot save {}: {e}", self.file.display()))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> ManagerAddr {
        s.parse().unwrap()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// How long an address may go unnamed in these tables: two refreshes of 13 s.
    const ROUND: Duration = Duration::from_secs(26);

    /// Feeds `answers` (seconds since start, the answer's `private_ip`s) to
    /// [`merge_answer`] in order and checks the discovered list after each one.
    fn check(seeds: &[&str], answers: &[(u64, &[&str])], expected: &[&[&str]]) {
        assert_eq!(answers.len(), expected.len(), "one expectation per answer");
        let seeds: Vec<ManagerAddr> = seeds.iter().map(|s| a(s)).collect();
        let start = Instant::now();
        let mut known: Vec<Known> = Vec::new();
        for ((secs, ips), want) in answers.iter().zip(expected) {
            let now = start + Duration::from_secs(*secs);
            known = merge_answer(&known, &seeds, &strings(ips), now, ROUND);
            let got: Vec<ManagerAddr> = known.iter().map(|k| k.named.addr.clone()).collect();
            let want: Vec<ManagerAddr> = want.iter().map(|s| a(s)).collect();
            assert_eq!(got, want, "after the answer {ips:?} at {secs} s");
        }
    }

    #[test]
    fn two_disagreeing_managers_do_not_make_the_list_alternate() {
        // Manager 10.0.0.2 still lists 10.0.0.3; 10.0.0.4 has dropped it. Their answers
        // interleave, one refresh each every 13 s.
        let full: &[&str] = &["10.0.0.2", "10.0.0.3", "10.0.0.4"];
        let short: &[&str] = &["10.0.0.2", "10.0.0.4"];
        check(
            &["10.0.0.1"],
            &[
                (0, full),
                (6, short),
                (13, full),
                (19, short),
                (26, full),
                (32, short),
            ],
            &[full, full, full, full, full, full],
        );
    }

    #[test]
    fn an_address_goes_only_when_no_answer_names_it_for_a_full_round() {
        let both: &[&str] = &["10.0.0.2", "10.0.0.3"];
        let one: &[&str] = &["10.0.0.2"];
        check(
            &["10.0.0.1"],
            &[(0, both), (13, one), (25, one), (26, one), (27, both)],
            &[both, both, both, one, both],
        );
        // An answer that names only the seeds is an answer too: the others age out.
        check(
            &["10.0.0.1"],
            &[(0, both), (26, &["10.0.0.1"])],
            &[both, &[]],
        );
    }

    #[test]
    fn an_empty_answer_never_empties_the_list() {
        let both: &[&str] = &["10.0.0.2", "10.0.0.3"];
        check(
            &["10.0.0.1"],
            &[(0, both), (100, &[]), (200, &["not an ip!"]), (300, &[])],
            &[both, both, both, both],
        );
    }

    #[test]
    fn answers_are_deduplicated_and_keep_their_ports() {
        check(
            &["10.0.0.1:40001"],
            &[
                // A bare seed host is that seed; the same host on another port named
                // explicitly is another manager; repeats and spellings of one address
                // count once.
                (
                    0,
                    &[
                        "10.0.0.1",
                        "10.0.0.1:40002",
                        "10.0.0.3",
                        "10.0.0.3:53333",
                        "10.0.0.3",
                        "[fd00::1]:40005",
                        "fd00::2",
                    ],
                ),
                (1, &["10.0.0.1:40001", "10.0.0.3:40003"]),
            ],
            &[
                &["10.0.0.1:40002", "10.0.0.3", "[fd00::1]:40005", "fd00::2"],
                &[
                    "10.0.0.1:40002",
                    "10.0.0.3",
                    "[fd00::1]:40005",
                    "fd00::2",
                    "10.0.0.3:40003",
                ],
            ],
        );
    }

    #[test]
    fn a_seed_is_never_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let seeds = vec![a("10.0.0.1"), a("10.0.0.2:40002")];
        let mut set = ManagerSet::load(seeds.clone(), dir.path());
        let start = Instant::now();
        for (secs, ips) in [
            (0, strings(&["10.0.0.5"])),
            (100, strings(&["10.0.0.6"])),
            (200, strings(&[])),
            (300, strings(&["10.0.0.1", "10.0.0.2"])),
        ] {
            let _ = set.merge_discovered(&ips, start + Duration::from_secs(secs), ROUND);
            assert_eq!(set.all()[..2], seeds[..], "after {ips:?}");
        }
        assert_eq!(set.all(), seeds);
    }

    #[test]
    fn ports_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = ManagerSet::load(vec![a("127.0.0.1:40001")], dir.path());
        let answer = strings(&["127.0.0.1:40002", "127.0.0.1:40003", "10.0.0.4"]);
        assert_eq!(
            set.merge_discovered(&answer, Instant::now(), ROUND),
            Ok(true)
        );
        let saved = std::fs::read(dir.path().join(STATE_FILE)).unwrap();
        let saved: Persisted = serde_json::from_slice(&saved).unwrap();
        assert_eq!(saved.discovered, answer, "saved as the managers said it");
        let again = ManagerSet::load(vec![a("127.0.0.1:40001")], dir.path());
        assert_eq!(again.all(), set.all());
        assert_eq!(
            again.all(),
            vec![
                a("127.0.0.1:40001"),
                a("127.0.0.1:40002"),
                a("127.0.0.1:40003"),
                a("10.0.0.4")
            ]
        );
        // A reload keeps the ports too, and folds into a new seed what it now names.
        let mut again = again;
        again.set_seeds(vec![a("127.0.0.1:40001"), a("10.0.0.4:40004")]);
        assert_eq!(
            again.all(),
            vec![
                a("127.0.0.1:40001"),
                a("10.0.0.4:40004"),
                a("127.0.0.1:40002"),
                a("127.0.0.1:40003")
            ]
        );
    }

    #[test]
    fn discovery_merges_with_seeds_and_persists_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = ManagerSet::load(vec![a("127.0.0.1:40001"), a("10.0.0.2")], dir.path());
        let file = dir.path().join(STATE_FILE);
        let now = Instant::now();
        // A seed's host (any port) is that seed; garbage is ignored.
        assert_eq!(
            set.merge_discovered(
                &["127.0.0.1".into(), "10.0.0.2".into(), "not an ip!".into()],
                now,
                ROUND
            ),
            Ok(false)
        );
        assert!(!file.exists(), "nothing changed, nothing written");
        assert_eq!(
            set.merge_discovered(&["10.0.0.3".into(), "10.0.0.2".into()], now, ROUND),
            Ok(true)
        );
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert_eq!(
            set.all(),
            vec![a("127.0.0.1:40001"), a("10.0.0.2"), a("10.0.0.3")]
        );
        assert_eq!(
            set.merge_discovered(&["10.0.0.3".into()], now, ROUND),
            Ok(false)
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            written
        );
        // A restart reloads the discovered part; the seeds still come first.
        let again = ManagerSet::load(vec![a("10.0.0.9")], dir.path());
        assert_eq!(again.all(), vec![a("10.0.0.9"), a("10.0.0.3")]);
        // An empty answer changes nothing (it used to drop every discovered manager);
        // seeds are never dropped.
        assert_eq!(set.merge_discovered(&[], now + ROUND, ROUND), Ok(false));
        assert_eq!(
            set.all(),
            vec![a("127.0.0.1:40001"), a("10.0.0.2"), a("10.0.0.3")]
        );
    }

    #[test]
    fn an_unwritable_state_dir_is_reported() {
        let mut set = ManagerSet::load(
            vec![a("10.0.0.1")],
            Path::new("/proc/definitely/not/writable"),
        );
        assert!(set
            .merge_discovered(&["10.0.0.5".into()], Instant::now(), ROUND)
            .is_err());
    }
}
