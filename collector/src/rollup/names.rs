//! Row keys of a service type's `nodes` map: one row per node id, and no node's name
//! standing in for another's (issue 12).
//!
//! The view is keyed by name, as Cloudify 5.0.5's is, and names are whatever reporters
//! claim. Two node ids with the same name (or names that differ only in case, hidden
//! characters or look-alike letters) would collide, and whichever came last would hide the
//! other: an impostor named like a failing node could stand in its row. So every node of
//! such a group is keyed `name (short node id)`, carries a `duplicate_name` reason and its
//! own name in `name`; a plain name that equals another row's disambiguated key is
//! disambiguated too; and a key still taken falls back to the full node id, then a counter,
//! so no two nodes ever share a key.

use super::NodeInput;
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};

/// How many characters of the node id disambiguate a shared name.
const SHORT_ID: usize = 8;

/// What a name looks like to a reader: lower case, hidden characters dropped, and a few
/// look-alikes folded (Cyrillic and Greek letters that render as Latin ones, `0`/`o`,
/// `1`/`l`/`i`). Two names with the same skeleton are confusable.
pub fn skeleton(name: &str) -> String {
    // Names are mostly ASCII (`node17`, `db-2`): map their bytes directly. The view folds
    // every reporter's name several times per computation at 10,000 nodes (issue 17).
    if name.is_ascii() {
        return name
            .bytes()
            .filter(|b| !b.is_ascii_control())
            .map(|b| char::from(fold_ascii(b.to_ascii_lowercase())))
            .collect();
    }
    name.chars()
        .filter(|c| !sr_protocol::model::is_hidden_char(*c))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'а' | 'α' => 'a',
            'е' | 'ε' => 'e',
            'о' | 'ο' => 'o',
            'р' | 'ρ' => 'p',
            'с' => 'c',
            'х' | 'χ' => 'x',
            'у' => 'y',
            'і' | 'ι' => 'i',
            'ѕ' => 's',
            'ԁ' => 'd',
            'ν' => 'v',
            // The ASCII look-alikes, folded as in the fast path.
            c if c.is_ascii() => char::from(fold_ascii(c as u8)),
            other => other,
        })
        .collect()
}

/// The ASCII look-alikes of [`skeleton`]: `0`/`o`, `1`/`l`/`|`/`i`.
fn fold_ascii(b: u8) -> u8 {
    match b {
        b'0' => b'o',
        b'1' | b'l' | b'|' => b'i',
        other => other,
    }
}

/// One row: its key, and whether the node shares its (confusable) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    pub key: String,
    pub duplicate: bool,
}

/// The row key of each node, in the order given. Keys are unique.
pub fn row_keys<N: Borrow<NodeInput>>(nodes: &[N]) -> Vec<RowKey> {
    let nodes: Vec<&NodeInput> = nodes.iter().map(Borrow::borrow).collect();
    // Each name folded once; hashed, not ordered: only the counts and the keys taken matter,
    // and this runs over every row of every service per view (issue 17).
    let skeletons: Vec<String> = nodes.iter().map(|n| skeleton(&n.name)).collect();
    let mut groups: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for s in &skeletons {
        *groups.entry(s.as_str()).or_default() += 1;
    }
    let shared: Vec<bool> = skeletons.iter().map(|s| groups[s.as_str()] > 1).collect();
    let mut taken: HashSet<String> = HashSet::with_capacity(nodes.len());
    let mut keys: Vec<Option<RowKey>> = vec![None; nodes.len()];
    // Shared names claim their disambiguated keys first, so a node cannot take another's
    // by calling itself `dbA (3d5d0c1e)`.
    let order = (0..nodes.len())
        .filter(|&i| shared[i])
        .chain((0..nodes.len()).filter(|&i| !shared[i]));
    for i in order {
        let n = &nodes[i];
        // The candidates in order, each made only if the one before is taken: the plain
        // name (unless shared), `name (short id)`, `name (node id)`, then a counter.
        let key = if !shared[i] && !taken.contains(n.name.as_str()) {
            n.name.clone()
        } else {
            let short: String = n.node_id.chars().take(SHORT_ID).collect();
            [
                format!("{} ({short})", n.name),
                format!("{} ({})", n.name, n.node_id),
            ]
            .into_iter()
            .find(|k| !taken.contains(k))
            .unwrap_or_else(|| {
                (2..)
                    .map(|c| format!("{} ({}) #{c}", n.name, n.node_id))
                    .find(|k| !taken.contains(k))
                    .expect("an unbounded counter finds a free key")
            })
        };
        taken.insert(key.clone());
        let duplicate = key != n.name;
        keys[i] = Some(RowKey { key, duplicate });
    }
    keys.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(named: &[(&str, &str)]) -> Vec<(String, bool)> {
        let nodes: Vec<NodeInput> = named
            .iter()
            .map(|(id, name)| {
                let mut n = crate::rollup::tests::manager(id, "OK");
                n.name = name.to_string();
                n
            })
            .collect();
        row_keys(&nodes)
            .into_iter()
            .map(|k| (k.key, k.duplicate))
            .collect()
    }

    #[test]
    fn unique_names_are_their_own_keys() {
        assert_eq!(
            keys(&[("a1", "dbA"), ("b2", "dbB")]),
            [("dbA".into(), false), ("dbB".into(), false)]
        );
    }

    #[test]
    fn shared_and_confusable_names_get_the_short_id() {
        let got = keys(&[
            ("3d5d0c1e-real", "dbA"),
            ("evil-1", "dbA"),
            ("evil-2", "dba"),
            ("evil-3", "db\u{0430}"),
        ]);
        assert_eq!(
            got,
            [
                ("dbA (3d5d0c1e)".into(), true),
                ("dbA (evil-1)".into(), true),
                ("dba (evil-2)".into(), true),
                ("dbа (evil-3)".into(), true),
            ]
        );
        assert_eq!(skeleton("db1"), skeleton("DBl"));
        assert_eq!(skeleton("db1\u{200B}"), skeleton("db1"));
        assert_ne!(skeleton("db1"), skeleton("db2"));
    }

    /// The fold as it was before the ASCII fast path (issue 17), char by char.
    fn skeleton_by_chars(name: &str) -> String {
        name.chars()
            .filter(|c| !sr_protocol::model::is_hidden_char(*c))
            .flat_map(char::to_lowercase)
            .map(|c| match c {
                'а' | 'α' => 'a',
                'е' | 'ε' => 'e',
                'о' | 'ο' | '0' => 'o',
                'р' | 'ρ' => 'p',
                'с' => 'c',
                'х' | 'χ' => 'x',
                'у' => 'y',
                'і' | 'ι' | '1' | 'l' | '|' => 'i',
                'ѕ' => 's',
                'ԁ' => 'd',
                'ν' => 'v',
                other => other,
            })
            .collect()
    }

    /// The ASCII fast path folds every ASCII character as the char-by-char fold does, and
    /// names with other characters still go the long way.
    #[test]
    fn skeleton_fast_path_folds_as_the_char_path() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        for name in [
            every_ascii.as_str(),
            "node17",
            "DB-01|L",
            "db1\u{7f}x\t",
            "dbа1",
            "Kelvin\u{212A}0",
            "İl1",
            "db1\u{200B}",
            "",
        ] {
            assert_eq!(skeleton(name), skeleton_by_chars(name), "{name:?}");
        }
    }

    /// The attack of issue 12: a third node names itself like the real node's
    /// disambiguated key. Every node keeps a row of its own.
    #[test]
    fn a_name_that_mimics_a_disambiguated_key_does_not_take_it() {
        let got = keys(&[
            ("legit1", "dbA"),
            ("evil-1", "dbA"),
            ("evil-2", "dbA (legit1)"),
        ]);
        assert_eq!(got[0], ("dbA (legit1)".into(), true));
        assert_eq!(got[1], ("dbA (evil-1)".into(), true));
        assert_eq!(got[2], ("dbA (legit1) (evil-2)".into(), true));
        // Short ids that collide fall back to the full id.
        let got = keys(&[("abcdefgh-1", "x"), ("abcdefgh-2", "x")]);
        assert_eq!(got[0].0, "x (abcdefgh)");
        assert_eq!(got[1].0, "x (abcdefgh-2)");
        let unique: BTreeSet<_> = got.iter().map(|k| &k.0).collect();
        assert_eq!(unique.len(), 2);
    }
}
