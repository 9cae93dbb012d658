//! The cluster-status view written as JSON straight from the roll-up's borrowed rows,
//! each node's row bytes kept between views.
//!
//! At 10,000 nodes an owned [`sr_protocol::view::NodeView`] per row (its strings, reasons
//! and services copied out of the judged input, dropped after encoding) was the largest
//! cost left in a view (issue 17). Here a row is encoded from what it reads ([`RowSrc`],
//! borrowed), and its bytes are kept in a [`RowCache`] beside a copy of that source: the
//! next view reuses them when the node's source is equal, so a change re-encodes only the
//! rows it touched. The bytes are exactly what `serde_json` gives for the owned view
//! (tests below and in `view_cache`).
//!
//! What a row reads is [`RowSrc`] and nothing else: the row's key, its status and the
//! maintenance reason after the cap, and of the judged input every field the row shows
//! (reasons carry the time-dependent text, e.g. "last report N s ago", so time is in the
//! source, never read around it). The node's last report is compared by identity (the
//! cache holds its `Arc`, so the address cannot be reused while compared).

use crate::rollup::{
    duplicate_name_reason, rfc3339_ms, services_of, LatestReport, Row, Rows, ViewParts,
};
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use sr_protocol::{NodeStatus, NodeType, Reason};
use std::collections::HashMap;
use std::sync::Arc;

/// Everything a judged row's bytes are made of, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowSrc<'a> {
    pub key: &'a str,
    pub duplicate: bool,
    pub status: NodeStatus,
    pub window: Option<&'a Reason>,
    pub node_type: NodeType,
    pub node_id: &'a str,
    pub name: &'a str,
    pub version: Option<&'a str>,
    pub private_ip: Option<&'a str>,
    pub role: Option<&'a str>,
    pub reasons: &'a [Reason],
    pub latest: Option<ByAddress<'a>>,
    pub last_seen_ms: Option<i64>,
    pub skew_ms: Option<i64>,
    pub flapping: bool,
    pub key_mismatch: bool,
    pub signed: bool,
    pub unvouched: bool,
}

/// The last report, equal only to itself.
#[derive(Debug, Clone, Copy)]
pub struct ByAddress<'a>(pub &'a Arc<LatestReport>);

impl PartialEq for ByAddress<'_> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(self.0, other.0)
    }
}

impl<'a> RowSrc<'a> {
    pub fn of(row: &'a Row<'a>) -> RowSrc<'a> {
        let n = row.input;
        RowSrc {
            key: &row.key.key,
            duplicate: row.key.duplicate,
            status: row.status,
            window: row.window.as_ref(),
            node_type: n.node_type,
            node_id: &n.node_id,
            name: &n.name,
            version: n.version.as_deref(),
            private_ip: n.private_ip.as_deref(),
            role: n.role.as_deref(),
            reasons: &n.reasons,
            latest: n.latest.as_ref().map(ByAddress),
            last_seen_ms: n.last_seen_ms,
            skew_ms: n.skew_ms,
            flapping: n.flapping,
            key_mismatch: n.key_mismatch,
            signed: n.signed,
            unvouched: n.unvouched,
        }
    }

    /// The row's reason for a shared or confusable name (as `NodeInput::duplicate_reason`).
    fn duplicate_reason(&self) -> Option<Reason> {
        self.duplicate
            .then(|| duplicate_name_reason(self.node_type, self.key, self.name))
    }

    /// The row's value: [`sr_protocol::view::NodeView`]'s fields, in its order, with its
    /// skip rules.
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        #[derive(Serialize)]
        struct RowRef<'a> {
            status: NodeStatus,
            node_id: &'a str,
            version: Option<&'a str>,
            public_ip: Option<&'a str>,
            private_ip: Option<&'a str>,
            services: serde_json::Map<String, serde_json::Value>,
            #[serde(skip_serializing_if = "Reasons::is_empty")]
            reasons: Reasons<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            role: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            last_seen: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            skew_ms: Option<i64>,
            flapping: bool,
            key_mismatch: bool,
            signed: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'a str>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            unvouched: bool,
        }
        let duplicate = self.duplicate_reason();
        let row = RowRef {
            status: self.status,
            node_id: self.node_id,
            version: self.version,
            public_ip: None,
            private_ip: self.private_ip,
            services: services_of(self.latest.map(|l| &**l.0)),
            reasons: Reasons([
                self.reasons,
                duplicate.as_slice(),
                self.window.map_or(&[], std::slice::from_ref),
            ]),
            role: self.role,
            last_seen: self.last_seen_ms.and_then(rfc3339_ms),
            skew_ms: self.skew_ms,
            flapping: self.flapping,
            key_mismatch: self.key_mismatch,
            signed: self.signed,
            name: self.duplicate.then_some(self.name),
            unvouched: self.unvouched,
        };
        serde_json::to_writer(out, &row)
    }
}

/// A row's reasons: the judged input's, the duplicate name's, the maintenance window's.
struct Reasons<'a>([&'a [Reason]; 3]);

impl Reasons<'_> {
    fn is_empty(&self) -> bool {
        self.0.iter().all(|r| r.is_empty())
    }
}

impl Serialize for Reasons<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.iter().map(|r| r.len()).sum()))?;
        for r in self.0.iter().flat_map(|r| r.iter()) {
            seq.serialize_element(r)?;
        }
        seq.end()
    }
}

/// [`RowSrc`], owned: what a cached row's bytes were made from.
struct RowOwned {
    key: String,
    duplicate: bool,
    status: NodeStatus,
    window: Option<Reason>,
    node_type: NodeType,
    node_id: String,
    name: String,
    version: Option<String>,
    private_ip: Option<String>,
    role: Option<String>,
    reasons: Vec<Reason>,
    latest: Option<Arc<LatestReport>>,
    last_seen_ms: Option<i64>,
    skew_ms: Option<i64>,
    flapping: bool,
    key_mismatch: bool,
    signed: bool,
    unvouched: bool,
}

impl RowOwned {
    fn of(s: &RowSrc) -> RowOwned {
        // Destructured without `..`: a field added to `RowSrc` must be kept here too.
        let RowSrc {
            key,
            duplicate,
            status,
            window,
            node_type,
            node_id,
            name,
            version,
            private_ip,
            role,
            reasons,
            latest,
            last_seen_ms,
            skew_ms,
            flapping,
            key_mismatch,
            signed,
            unvouched,
        } = *s;
        RowOwned {
            key: key.to_owned(),
            duplicate,
            status,
            window: window.cloned(),
            node_type,
            node_id: node_id.to_owned(),
            name: name.to_owned(),
            version: version.map(str::to_owned),
            private_ip: private_ip.map(str::to_owned),
            role: role.map(str::to_owned),
            reasons: reasons.to_vec(),
            latest: latest.map(|l| l.0.clone()),
            last_seen_ms,
            skew_ms,
            flapping,
            key_mismatch,
            signed,
            unvouched,
        }
    }

    fn src(&self) -> RowSrc<'_> {
        RowSrc {
            key: &self.key,
            duplicate: self.duplicate,
            status: self.status,
            window: self.window.as_ref(),
            node_type: self.node_type,
            node_id: &self.node_id,
            name: &self.name,
            version: self.version.as_deref(),
            private_ip: self.private_ip.as_deref(),
            role: self.role.as_deref(),
            reasons: &self.reasons,
            latest: self.latest.as_ref().map(ByAddress),
            last_seen_ms: self.last_seen_ms,
            skew_ms: self.skew_ms,
            flapping: self.flapping,
            key_mismatch: self.key_mismatch,
            signed: self.signed,
            unvouched: self.unvouched,
        }
    }
}

struct Entry {
    src: RowOwned,
    /// The row's value (not its key) as JSON.
    bytes: Box<[u8]>,
    /// The [`RowCache::pass`] that last used it.
    pass: u64,
}

/// Row bytes kept between views, one entry per judged row of the last view: entries not
/// used by a view are dropped at its end (a removed node's with the first view after).
#[derive(Default)]
pub struct RowCache {
    rows: HashMap<NodeType, HashMap<String, Entry>>,
    pass: u64,
    /// Rows taken from the cache / encoded, over the cache's life (for the benchmark).
    pub hits: u64,
    pub misses: u64,
}

impl RowCache {
    /// Rows kept.
    pub fn len(&self) -> usize {
        self.rows.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the row's value to `out`, from the cache when its source is unchanged.
    fn write(&mut self, src: &RowSrc, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // By type, then id: looked up without allocating a key.
        let of_type = self.rows.entry(src.node_type).or_default();
        match of_type.get_mut(src.node_id) {
            Some(e) if e.src.src() == *src => {
                e.pass = self.pass;
                out.extend_from_slice(&e.bytes);
                self.hits += 1;
            }
            _ => {
                let start = out.len();
                src.write(out)?;
                let entry = Entry {
                    src: RowOwned::of(src),
                    bytes: out[start..].into(),
                    pass: self.pass,
                };
                of_type.insert(src.node_id.to_owned(), entry);
                self.misses += 1;
            }
        }
        Ok(())
    }
}

/// Writes `parts` as `serde_json` writes its [`ViewParts::into_view`], judged rows from
/// `cache` where they are unchanged (and kept there for the next view).
pub fn write(
    parts: &ViewParts,
    cache: Option<&mut RowCache>,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let mut fresh = RowCache::default();
    let cache = cache.unwrap_or(&mut fresh);
    cache.pass += 1;
    out.extend_from_slice(b"{\"status\":");
    serde_json::to_writer(&mut *out, &parts.status)?;
    out.extend_from_slice(b",\"services\":{");
    for (i, (name, svc)) in parts.services.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, name)?;
        out.extend_from_slice(b":{\"status\":");
        serde_json::to_writer(&mut *out, &svc.status)?;
        out.extend_from_slice(b",\"is_external\":");
        serde_json::to_writer(&mut *out, &svc.is_external)?;
        out.extend_from_slice(b",\"nodes\":");
        match &svc.rows {
            Rows::Views(views) => serde_json::to_writer(&mut *out, views)?,
            Rows::Judged(rows) => {
                out.push(b'{');
                for (j, row) in rows.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, &row.key.key)?;
                    out.push(b':');
                    cache.write(&RowSrc::of(row), out)?;
                }
                out.push(b'}');
            }
        }
        if !svc.reasons.is_empty() {
            out.extend_from_slice(b",\"reasons\":");
            serde_json::to_writer(&mut *out, &svc.reasons)?;
        }
        out.push(b'}');
    }
    out.push(b'}');
    if !parts.reasons.is_empty() {
        out.extend_from_slice(b",\"reasons\":");
        serde_json::to_writer(&mut *out, &parts.reasons)?;
    }
    out.push(b'}');
    let pass = cache.pass;
    for of_type in cache.rows.values_mut() {
        of_type.retain(|_, e| e.pass == pass);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{rollup_parts, NodeInput, NodeRecord, Policy};
    use crate::store::MaintenanceRow;
    use sr_protocol::report::ReportBody;

    const NOW: i64 = 1_800_000_000_000;

    /// A report of `status` (the extension's) from `name`, received `age_ms` before NOW
    /// with `skew_ms`.
    fn latest(name: &str, status: &str, age_ms: i64, skew_ms: i64) -> Arc<LatestReport> {
        let legacy = if status == "Fail" { "Fail" } else { "OK" };
        let body = ReportBody::decode(
            serde_json::json!({
                "reporting_freq": 5, "timestamp": "20261122160000+0000",
                "report": {"status": legacy, "services": {"RabbitMQ": {"status": "Active",
                    "extra_info": {"b": 1, "a": [true, null, 1.5]}}}},
                "status_reporter": {"version": 1, "node_status": status, "node_name": name,
                    "agent_version": "0.1.0", "boot_id": "b", "seq": 1, "facts": {}}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
        .body;
        Arc::new(LatestReport {
            body,
            received_ms: NOW - age_ms,
            skew_ms,
            signed: true,
        })
    }

    fn record(t: NodeType, id: &str, name: &str) -> NodeRecord {
        NodeRecord {
            node_type: t,
            node_id: id.into(),
            name: name.into(),
            private_ip: Some(format!("10.0.0.{}", id.len())),
            key_mismatch: false,
            latest: Some(latest(name, "OK", 1000, 0)),
            status_changes_ms: Vec::new(),
        }
    }

    /// The view's bytes three ways: from the cache carried along, from an empty cache, and
    /// the owned view through `serde_json`; all three must be equal.
    fn check(step: &str, recs: &[NodeRecord], windows: &[MaintenanceRow], cache: &mut RowCache) {
        let policy = Policy::default();
        let mut sorted = recs.to_vec();
        sorted.sort_by_key(|r| r.node_type);
        let mut inputs: Vec<NodeInput> = sorted
            .iter()
            .map(|r| NodeInput::from_record(r, NOW, &policy))
            .collect();
        let windows = crate::maintenance::in_force(windows.to_vec(), &inputs);
        crate::maintenance::mark_inputs(&mut inputs, &windows);
        let mut parts = rollup_parts(&inputs, NOW, &policy);
        crate::maintenance::cap_services(&mut parts, &windows);
        let mut cached = Vec::new();
        write(&parts, Some(cache), &mut cached).unwrap();
        let mut scratch = Vec::new();
        write(&parts, None, &mut scratch).unwrap();
        let owned = serde_json::to_vec(&parts.into_view()).unwrap();
        let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_eq!(show(&scratch), show(&owned), "{step}: from scratch");
        assert_eq!(show(&cached), show(&owned), "{step}: from the row cache");
        let judged = inputs.len();
        assert!(cache.len() <= judged, "{step}: {} rows kept", cache.len());
    }

    fn window(target: &str) -> MaintenanceRow {
        MaintenanceRow {
            target: target.into(),
            reason: "upgrade".into(),
            by: "admin".into(),
            since_ms: NOW - 60_000,
            until_ms: None,
        }
    }

    /// After each change a view's bytes, with rows reused from the views before, equal the
    /// owned view's encoding: new report, status flip, clock skew appearing and going,
    /// maintenance set and cleared (on a node and on a type), a duplicate name, staleness
    /// (time-dependent text), node removal.
    #[test]
    fn cached_rows_equal_a_fresh_encoding_through_changes() {
        let mut recs: Vec<NodeRecord> = (0..4)
            .map(|i| record(NodeType::Manager, &format!("m{i}"), &format!("mgr{i}")))
            .chain((0..3).map(|i| record(NodeType::Broker, &format!("b{i}"), &format!("br{i}"))))
            .chain((0..3).map(|i| record(NodeType::Db, &format!("d{i}"), &format!("db{i}"))))
            .collect();
        let mut cache = RowCache::default();
        let mut windows = Vec::new();
        check("first view", &recs, &windows, &mut cache);
        assert_eq!(cache.misses, 10);
        check("unchanged", &recs, &windows, &mut cache);
        assert_eq!((cache.hits, cache.misses), (10, 10), "every row reused");

        recs[0].latest = Some(latest("mgr0", "OK", 500, 0));
        check("a new report", &recs, &windows, &mut cache);
        assert_eq!(
            cache.misses, 11,
            "only the reporting node's row encoded again"
        );

        recs[1].latest = Some(latest("mgr1", "Fail", 500, 0));
        check("a status flip", &recs, &windows, &mut cache);

        recs[2].latest = Some(latest("mgr2", "OK", 500, 9_000));
        check("clock skew appears", &recs, &windows, &mut cache);
        recs[2].latest = Some(latest("mgr2", "OK", 400, 0));
        check("clock skew goes", &recs, &windows, &mut cache);

        windows.push(window("mgr1"));
        check("maintenance on a node", &recs, &windows, &mut cache);
        windows.push(window("broker"));
        check("maintenance on a type", &recs, &windows, &mut cache);
        windows.clear();
        check("maintenance cleared", &recs, &windows, &mut cache);

        recs.push(record(NodeType::Db, "d9", "db0"));
        check("a duplicate name", &recs, &windows, &mut cache);
        windows.push(window("db0 (d9)"));
        check(
            "maintenance on a disambiguated row key",
            &recs,
            &windows,
            &mut cache,
        );
        windows.clear();

        recs[5].latest = Some(latest("br1", "OK", 60_000, 0));
        check("stale", &recs, &windows, &mut cache);
        recs[5].latest = Some(latest("br1", "OK", 61_000, 0));
        check(
            "stale a second longer (its text changes)",
            &recs,
            &windows,
            &mut cache,
        );
        recs[6].key_mismatch = true;
        recs[6].latest = None;
        check("no report, key mismatch", &recs, &windows, &mut cache);

        let kept = cache.len();
        recs.retain(|r| r.node_id != "m3" && r.node_id != "d9");
        check("nodes removed", &recs, &windows, &mut cache);
        assert_eq!(cache.len(), kept - 2, "a removed node's row is dropped");
        recs.clear();
        check("every node removed", &recs, &windows, &mut cache);
        assert!(cache.is_empty());
    }
}
