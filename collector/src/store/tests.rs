//! The store's tests: privacy of files, token hashing, users, pins, replay state.

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    (dir, s)
}

#[test]
fn the_store_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state");
    let s = Store::open(&dir).unwrap();
    s.create_token(Role::Db).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(s.path()), 0o600);
    let wal = dir.join(format!("{DB_FILE}-wal"));
    assert_eq!(
        mode(&wal),
        0o600,
        "SQLite's WAL file follows the store's mode"
    );
}

#[test]
fn tokens_are_stored_as_hashes_and_revocable() {
    let (dir, s) = store();
    let (id, secret) = s.create_token_with_id(Role::Db).unwrap();
    assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() > 40);
    assert_eq!(s.lookup_token(&secret).unwrap(), Some(Role::Db));
    assert_eq!(s.lookup_token("srt_nope").unwrap(), None);
    let raw = std::fs::read(dir.path().join(DB_FILE)).unwrap();
    let wal = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))).unwrap_or_default();
    let needle = secret.as_bytes();
    for bytes in [&raw, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "secret stored in clear"
        );
    }
    assert!(s.revoke_token(id).unwrap());
    assert!(!s.revoke_token(id).unwrap(), "second revoke is a no-op");
    assert_eq!(s.lookup_token(&secret).unwrap(), None);
    let listed = s.list_tokens().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_ms.is_some());
}

#[test]
fn users_verify_with_argon2() {
    let (_d, s) = store();
    s.set_user("admin", "correct horse").unwrap();
    assert!(s.verify_user("admin", "correct horse").unwrap());
    assert!(!s.verify_user("admin", "wrong").unwrap());
    assert!(!s.verify_user("nobody", "correct horse").unwrap());
    assert!(s
        .user_hash("admin")
        .unwrap()
        .unwrap()
        .starts_with("$argon2"));
}

fn pin(id: &str, key: &str) -> DurableWrite {
    DurableWrite::Pin {
        node_type: NodeType::Db,
        node_id: id.into(),
        name: format!("{id}-name"),
        key: Some(key.into()),
        private_ip: None,
        at_ms: 1,
    }
}

#[test]
fn a_pin_is_never_replaced_and_forget_clears_it() {
    let (_d, mut s) = store();
    assert_eq!(
        s.commit_durable(&[pin("n1", "A")]).unwrap(),
        vec![Ok(Some("A".to_string()))]
    );
    assert_eq!(
        s.commit_durable(&[pin("n1", "B")]).unwrap(),
        vec![Ok(Some("A".to_string()))]
    );
    s.commit_durable(&[DurableWrite::FlagMismatch {
        node_type: NodeType::Db,
        node_id: "n1".into(),
        key: "B".into(),
    }])
    .unwrap();
    let n = &s.list_nodes().unwrap()[0];
    assert!(n.key_mismatch);
    assert_eq!(n.mismatch_key.as_deref(), Some("B"));
    assert_eq!(s.forget_node("n1-name", Some(NodeType::Broker)).unwrap(), 0);
    assert_eq!(s.forget_node("n1-name", None).unwrap(), 1);
    assert_eq!(
        s.commit_durable(&[pin("n1", "B")]).unwrap(),
        vec![Ok(Some("B".to_string()))]
    );
    assert!(!s.list_nodes().unwrap()[0].key_mismatch);
}

#[test]
fn transitions_are_deduplicated_by_boot_and_seq() {
    let (_d, mut s) = store();
    s.commit_durable(&[pin("n1", "A")]).unwrap();
    let t = |seq| TransitionRow {
        boot_id: "b1".into(),
        seq,
        at_ms: 5,
        service: None,
        from: "OK".into(),
        to: "Fail".into(),
        reasons_json: "[]".into(),
    };
    let w = DurableWrite::Transitions {
        node_type: NodeType::Db,
        node_id: "n1".into(),
        received_ms: 9,
        rows: vec![t(1), t(2)],
    };
    s.commit_durable(std::slice::from_ref(&w)).unwrap();
    s.commit_durable(&[w]).unwrap();
    assert_eq!(s.transitions(NodeType::Db, "n1", 10).unwrap().len(), 2);
}

#[test]
fn latest_is_written_behind_and_restored_with_replay_state() {
    let (d, mut s) = store();
    s.commit_durable(&[pin("n1", "A")]).unwrap();
    let mut row = LatestRow {
        node_type: NodeType::Db,
        node_id: "n1".into(),
        name: "db1".into(),
        private_ip: Some("10.0.0.1".into()),
        received_ms: 100,
        skew_ms: -3,
        signed: true,
        body: b"{}".to_vec(),
        boot_id: Some("b1".into()),
        seq: 7,
    };
    s.write_latest(std::slice::from_ref(&row)).unwrap();
    row.boot_id = Some("b2".into());
    row.seq = 2;
    row.received_ms = 200;
    s.write_latest(std::slice::from_ref(&row)).unwrap();
    // A node that is not pinned (forgotten meanwhile) is not resurrected.
    s.write_latest(&[LatestRow {
        node_id: "ghost".into(),
        ..row.clone()
    }])
    .unwrap();
    drop(s);
    let s = Store::open(d.path()).unwrap();
    let nodes = s.load_nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0].boots,
        vec![("b1".to_string(), 7), ("b2".to_string(), 2)]
    );
    assert_eq!(nodes[0].latest.as_ref().unwrap(), &row);
    assert_eq!(nodes[0].row.name, "db1");
    assert_eq!(s.integrity_check().unwrap(), "ok");
}

#[test]
fn a_forgotten_node_with_a_latest_row_is_not_resurrected_until_pinned_again() {
    let (_d, mut s) = store();
    s.commit_durable(&[pin("n1", "A")]).unwrap();
    let row = LatestRow {
        node_type: NodeType::Db,
        node_id: "n1".into(),
        name: "db1".into(),
        private_ip: None,
        received_ms: 100,
        skew_ms: 0,
        signed: true,
        body: b"{}".to_vec(),
        boot_id: Some("b1".into()),
        seq: 1,
    };
    s.write_latest(std::slice::from_ref(&row)).unwrap();
    assert_eq!(s.forget_node("n1", Some(NodeType::Db)).unwrap(), 1);
    // The flush after the forget: the update finds no row and the node is gone.
    s.write_latest(std::slice::from_ref(&row)).unwrap();
    assert!(s.load_nodes().unwrap().is_empty());
    // First contact again: the next flush inserts the row afresh.
    s.commit_durable(&[pin("n1", "B")]).unwrap();
    s.write_latest(std::slice::from_ref(&row)).unwrap();
    let nodes = s.load_nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].latest.as_ref(), Some(&row));
    assert_eq!(nodes[0].row.pinned_key.as_deref(), Some("B"));
}

fn transition(seq: u64) -> TransitionRow {
    TransitionRow {
        boot_id: "b1".into(),
        seq,
        at_ms: seq as i64,
        service: None,
        from: "OK".into(),
        to: "Fail".into(),
        reasons_json: "[]".into(),
    }
}

fn transitions_of(node_id: &str, received_ms: i64, seqs: std::ops::Range<u64>) -> DurableWrite {
    DurableWrite::Transitions {
        node_type: NodeType::Db,
        node_id: node_id.into(),
        received_ms,
        rows: seqs.map(transition).collect(),
    }
}

/// Issue 12: one node wrote 20,000 transitions in half a second and the table kept them
/// all. Now the store keeps the newest `per_node` of each node, in the same commit.
#[test]
fn twenty_thousand_transitions_from_one_node_keep_only_the_newest() {
    let (_d, mut s) = store();
    s.commit_durable(&[transitions_of("victim", 1, 0..5)])
        .unwrap();
    for batch in 0..20u64 {
        let from = batch * 1000;
        s.commit_durable(&[transitions_of(
            "flooder",
            10 + batch as i64,
            from..from + 1000,
        )])
        .unwrap();
    }
    let kept = Retention::default().per_node;
    let flooder = s.transitions(NodeType::Db, "flooder", usize::MAX).unwrap();
    assert_eq!(flooder.len(), kept);
    assert_eq!(flooder[0].seq, 19_999, "the newest is kept");
    assert_eq!(flooder[kept - 1].seq, 20_000 - kept as u64);
    assert_eq!(s.transitions(NodeType::Db, "victim", 100).unwrap().len(), 5);
    assert_eq!(s.transition_count().unwrap(), kept + 5);
}

#[test]
fn transitions_older_than_the_retention_age_are_swept() {
    let (_d, mut s) = store();
    s.set_retention(Retention {
        max_age_ms: 1000,
        per_node: 100,
        ..Retention::default()
    });
    s.commit_durable(&[
        transitions_of("n1", 0, 0..3),
        transitions_of("n2", 5000, 0..2),
    ])
    .unwrap();
    assert_eq!(s.sweep_old_transitions(5500).unwrap(), 3);
    assert!(s.transitions(NodeType::Db, "n1", 10).unwrap().is_empty());
    assert_eq!(s.transitions(NodeType::Db, "n2", 10).unwrap().len(), 2);
}

/// Issue 12: a 0-byte store started with no token (every agent then got 401) and a store
/// with overwritten pages started and accepted writes. Now each is refused, and the
/// message says what to do.
#[test]
fn a_damaged_store_is_refused_with_a_recovery_path() {
    let damaged = |dir: &Path, problem: &str| {
        let err = Store::preflight(dir).err().expect("refused");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Damaged { .. }), "{text}");
        assert!(text.contains(problem), "{text}");
        assert!(text.contains("Recovery:"), "{text}");
        assert!(text.contains("collector init --force"), "{text}");
    };
    let missing = tempfile::tempdir().unwrap();
    damaged(missing.path(), "does not exist");
    assert!(
        !missing.path().join(DB_FILE).exists(),
        "preflight creates nothing"
    );

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join(DB_FILE), b"").unwrap();
    damaged(empty.path(), "empty (0 bytes)");

    let tokenless = tempfile::tempdir().unwrap();
    drop(Store::open(tokenless.path()).unwrap());
    damaged(tokenless.path(), "holds no token");

    let overwritten = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(overwritten.path()).unwrap();
        s.create_token(Role::Db).unwrap();
        for batch in 0..20 {
            s.commit_durable(&[transitions_of(&format!("n{batch}"), 1, 0..50)])
                .unwrap();
        }
        assert!(
            Store::preflight(overwritten.path()).is_ok(),
            "healthy first"
        );
    }
    // Pages 2.. overwritten, the header page left intact: SQLite opens the file.
    let path = overwritten.path().join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[4096..] {
        *b = 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    damaged(overwritten.path(), "");
}

fn steady_row(id: &str, name: &str, boot: &str, seq: u64) -> LatestRow {
    LatestRow {
        node_type: NodeType::Db,
        node_id: id.into(),
        name: name.into(),
        private_ip: Some("10.0.0.1".into()),
        received_ms: 100 + seq as i64,
        skew_ms: 0,
        signed: true,
        body: b"{}".to_vec(),
        boot_id: Some(boot.into()),
        seq,
    }
}

fn stored_name_and_boots(s: &Store, id: &str) -> (String, Vec<String>) {
    let n = s
        .load_nodes()
        .unwrap()
        .into_iter()
        .find(|n| n.row.node_id == id)
        .unwrap();
    (n.row.name, n.boots.into_iter().map(|b| b.0).collect())
}

/// The write-behind skips a node's name/address and boot statements when it knows the
/// store already holds those values; whatever else wrote them in between (another
/// connection, this connection outside the write-behind) makes it write them again, so
/// the store ends as it did when every flush ran every statement.
#[test]
fn the_write_behind_rewrites_what_another_writer_changed_since() {
    let (d, mut s) = store();
    s.quiet_own_changes().unwrap();
    s.commit_durable(&[pin("n1", "A")]).unwrap();
    s.write_latest(&[steady_row("n1", "db1", "b1", 1)]).unwrap();
    s.write_latest(&[steady_row("n1", "db1", "b1", 2)]).unwrap();
    assert_eq!(
        stored_name_and_boots(&s, "n1"),
        ("db1".into(), vec!["b1".into()])
    );

    // Another connection (the CLI, the shared store's sync task).
    let other = rusqlite::Connection::open(d.path().join(DB_FILE)).unwrap();
    other
        .execute_batch("UPDATE nodes SET name = 'other'; DELETE FROM boots;")
        .unwrap();
    s.write_latest(&[steady_row("n1", "db1", "b1", 3)]).unwrap();
    assert_eq!(
        stored_name_and_boots(&s, "n1"),
        ("db1".into(), vec!["b1".into()])
    );

    // This connection, outside the write-behind.
    s.conn
        .execute_batch("UPDATE nodes SET name = 'own'; DELETE FROM boots;")
        .unwrap();
    s.write_latest(&[steady_row("n1", "db1", "b1", 4)]).unwrap();
    assert_eq!(
        stored_name_and_boots(&s, "n1"),
        ("db1".into(), vec!["b1".into()])
    );

    // Forgotten and pinned again under another name between two flushes: the first
    // row is inserted afresh, with the node's name and its boot.
    assert_eq!(s.forget_node("n1", Some(NodeType::Db)).unwrap(), 1);
    s.commit_durable(&[pin("n1", "B")]).unwrap();
    s.conn
        .execute("UPDATE nodes SET name = 'pinned'", [])
        .unwrap();
    s.write_latest(&[steady_row("n1", "db1", "b1", 5)]).unwrap();
    assert_eq!(
        stored_name_and_boots(&s, "n1"),
        ("db1".into(), vec!["b1".into()])
    );

    // Unchanged rows change nothing else; a changed name and a new boot are written.
    s.write_latest(&[steady_row("n1", "db2", "b2", 10)])
        .unwrap();
    assert_eq!(
        stored_name_and_boots(&s, "n1"),
        ("db2".into(), vec!["b1".into(), "b2".into()])
    );
    // A failed flush (the node row is locked by another writer) leaves nothing believed.
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    s.conn
        .busy_timeout(std::time::Duration::from_millis(10))
        .unwrap();
    assert!(s
        .write_latest(&[steady_row("n1", "db3", "b2", 11)])
        .is_err());
    other.execute_batch("COMMIT").unwrap();
    s.write_latest(&[steady_row("n1", "db3", "b2", 12)])
        .unwrap();
    assert_eq!(stored_name_and_boots(&s, "n1").0, "db3");
}

/// Each new boot is remembered and only the newest `BOOTS_KEPT` stay, in order.
#[test]
fn the_write_behind_keeps_the_newest_boots() {
    let (_d, mut s) = store();
    s.commit_durable(&[pin("n1", "A")]).unwrap();
    let n = BOOTS_KEPT + 5;
    for i in 0..n {
        let seq = 2 * i as u64;
        s.write_latest(&[steady_row("n1", "db1", &format!("b{i:02}"), seq)])
            .unwrap();
        // The same boot again changes nothing.
        s.write_latest(&[steady_row("n1", "db1", &format!("b{i:02}"), seq + 1)])
            .unwrap();
    }
    let want: Vec<String> = (n - BOOTS_KEPT..n).map(|i| format!("b{i:02}")).collect();
    assert_eq!(stored_name_and_boots(&s, "n1").1, want);
}
