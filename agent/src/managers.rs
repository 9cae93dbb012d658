//! The manager list: the operator's seeds plus what the managers themselves report.
//!
//! Discovery never replaces the seeds (the 5.0.5 reporter did, and lost operator-given
//! addresses). A discovered `private_ip` whose host is already a seed is that seed, on
//! the seed's port, because `GET /managers` names hosts, not ports. The discovered part
//! is persisted in `state_dir/managers.json`, atomically, and only when it changed.

use crate::config::ManagerAddr;
use sr_fsutil as fsutil;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "managers.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Persisted {
    discovered: Vec<String>,
}

/// The current seeds and discovered managers.
#[derive(Debug, Clone)]
pub struct ManagerSet {
    seeds: Vec<ManagerAddr>,
    discovered: Vec<ManagerAddr>,
    file: PathBuf,
}

impl ManagerSet {
    /// Seeds from the config plus whatever a previous run discovered; an unreadable
    /// state file is ignored (discovery will refill it).
    pub fn load(seeds: Vec<ManagerAddr>, state_dir: &Path) -> Self {
        let file = state_dir.join(STATE_FILE);
        let mut set = ManagerSet {
            seeds,
            discovered: Vec::new(),
            file,
        };
        if let Ok(bytes) = fsutil::read_bounded(&set.file, 64 * 1024) {
            if let Ok(p) = serde_json::from_slice::<Persisted>(&bytes) {
                set.discovered = set.normalise(&p.discovered);
            }
        }
        set
    }

    /// Every manager to push to: seeds first, then discovered ones.
    pub fn all(&self) -> Vec<ManagerAddr> {
        self.seeds
            .iter()
            .chain(self.discovered.iter())
            .cloned()
            .collect()
    }

    /// Replaces the seeds (on reload); discovered entries that became seeds are dropped.
    pub fn set_seeds(&mut self, seeds: Vec<ManagerAddr>) {
        self.seeds = seeds;
        let hosts: Vec<String> = self.discovered.iter().map(|a| a.host.clone()).collect();
        self.discovered = self.normalise(&hosts);
    }

    fn normalise(&self, ips: &[String]) -> Vec<ManagerAddr> {
        let mut out: Vec<ManagerAddr> = Vec::new();
        for ip in ips.iter().take(crate::push::MAX_DISCOVERED) {
            let Ok(addr) = ip.parse::<ManagerAddr>() else {
                continue;
            };
            if self.seeds.iter().any(|s| s.host == addr.host) || out.contains(&addr) {
                continue;
            }
            out.push(addr);
        }
        out
    }

    /// Merges a freshly read list. Returns `Ok(true)` when the set changed (and was
    /// persisted), `Ok(false)` when nothing changed, `Err` when persisting failed.
    pub fn merge_discovered(&mut self, ips: &[String]) -> Result<bool, String> {
        let discovered = self.normalise(ips);
        if discovered == self.discovered {
            return Ok(false);
        }
        self.discovered = discovered;
        let body = serde_json::to_vec_pretty(&Persisted {
            discovered: self.discovered.iter().map(|a| a.host.clone()).collect(),
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

    #[test]
    fn discovery_merges_with_seeds_and_persists_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = ManagerSet::load(vec![a("127.0.0.1:40001"), a("10.0.0.2")], dir.path());
        let file = dir.path().join(STATE_FILE);
        // A seed's host (any port) is that seed; garbage is ignored.
        assert_eq!(
            set.merge_discovered(&["127.0.0.1".into(), "10.0.0.2".into(), "not an ip!".into()]),
            Ok(false)
        );
        assert!(!file.exists(), "nothing changed, nothing written");
        assert_eq!(
            set.merge_discovered(&["10.0.0.3".into(), "10.0.0.2".into()]),
            Ok(true)
        );
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert_eq!(
            set.all(),
            vec![a("127.0.0.1:40001"), a("10.0.0.2"), a("10.0.0.3")]
        );
        assert_eq!(set.merge_discovered(&["10.0.0.3".into()]), Ok(false));
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            written
        );
        // A restart reloads the discovered part; the seeds still come first.
        let again = ManagerSet::load(vec![a("10.0.0.9")], dir.path());
        assert_eq!(again.all(), vec![a("10.0.0.9"), a("10.0.0.3")]);
        // An empty answer drops discovered managers but never a seed.
        assert_eq!(set.merge_discovered(&[]), Ok(true));
        assert_eq!(set.all(), vec![a("127.0.0.1:40001"), a("10.0.0.2")]);
    }

    #[test]
    fn an_unwritable_state_dir_is_reported() {
        let mut set = ManagerSet::load(
            vec![a("10.0.0.1")],
            Path::new("/proc/definitely/not/writable"),
        );
        assert!(set.merge_discovered(&["10.0.0.5".into()]).is_err());
    }
}
