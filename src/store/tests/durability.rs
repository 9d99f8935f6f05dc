//! Durability of the store: SQLite's sync level and file modes, and audit-chain verification
//! in bounded pages (on every backend).

use std::str::FromStr;

use super::*;

async fn pragma_synchronous(store: &Store) -> i64 {
    match store.db() {
        Db::Sqlite(pools) => sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&pools.write)
            .await
            .expect("PRAGMA synchronous"),
        Db::Postgres(_) => unreachable!("SQLite only"),
    }
}

#[tokio::test]
async fn sqlite_syncs_every_commit_unless_told_otherwise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("full.db").display());
    let store = Store::connect(&url).await.expect("store");
    // 2 is FULL, 1 is NORMAL.
    assert_eq!(pragma_synchronous(&store).await, 2);
    store.close().await;

    let url = format!("sqlite://{}", dir.path().join("normal.db").display());
    let options = StoreOptions {
        sqlite_synchronous: SqliteSynchronous::Normal,
    };
    let store = Store::connect_with(&url, options).await.expect("store");
    assert_eq!(pragma_synchronous(&store).await, 1);
    store.close().await;

    assert_eq!(
        SqliteSynchronous::from_str("FULL"),
        Ok(SqliteSynchronous::Full)
    );
    assert!(SqliteSynchronous::from_str("off").is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_private_to_their_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("private.db");
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("store");
    // A write makes SQLite create the WAL and shared-memory files.
    orgs::create(&store, "acme", &Actor::operator())
        .await
        .expect("org");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("read dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, ["private.db", "private.db-shm", "private.db-wal"]);
    store.close().await;
}

/// An org with a chain of `1 + 2 * checks_recorded` events (org.created, agent.created, and
/// one per check).
async fn org_with_chain(store: &Store, checks_recorded: usize) -> String {
    let (org_id, agent) = org_with_agent(store, &[]).await;
    let checker = Checker::new(store, &org_id, None).await;
    for _ in 0..checks_recorded {
        checker.check(&agent.id, "read_file", None).await;
    }
    org_id
}

async fn execute(store: &Store, statement: &str, org_id: &str) -> u64 {
    on_db!(store, |pool| sqlx::query(statement)
        .bind(org_id)
        .execute(pool)
        .await
        .expect(statement)
        .rows_affected())
}

#[tokio::test]
async fn verification_walks_the_chain_page_by_page_and_names_the_first_break() {
    for (store, _dir) in backends().await {
        let org_id = org_with_chain(&store, 10).await;
        let total = audit::list(&store, &org_id).await.unwrap().len() as u64;
        assert!(total >= 12, "{total}");
        // Pages of 3 (and of 1, and of more than the chain) read every event exactly once.
        for page_size in [1, 3, 1000] {
            let verification = audit::verify_chain(&store, &org_id, page_size)
                .await
                .unwrap();
            assert_eq!(
                verification,
                audit::Verification {
                    events_checked: total,
                    checkpoints_checked: 0,
                    broken: None
                },
                "page size {page_size} on {}",
                store.backend_name()
            );
        }

        // A changed event: the break is that event, with its id, and the walk stops there.
        let event_7 = audit::list(&store, &org_id).await.unwrap()[6].clone();
        assert_eq!(event_7.seq, 7);
        execute(
            &store,
            "UPDATE audit_events SET actor = 'key:someone-else' WHERE org_id = $1 AND seq = 7",
            &org_id,
        )
        .await;
        let verification = audit::verify_chain(&store, &org_id, 3).await.unwrap();
        assert_eq!(verification.events_checked, 6);
        let broken = verification.broken.expect("broken");
        assert_eq!(broken.seq, 7);
        assert_eq!(broken.event_id.as_deref(), Some(event_7.id.as_str()));
        assert!(broken.reason.contains("modified"), "{}", broken.reason);
        assert_eq!(audit::verify(&store, &org_id).await.unwrap(), Some(7));
    }
}

#[tokio::test]
async fn a_dropped_event_or_tail_breaks_the_chain() {
    for (store, _dir) in backends().await {
        // A gap: the missing event is named by its sequence number.
        let org_id = org_with_chain(&store, 4).await;
        execute(
            &store,
            "DELETE FROM audit_events WHERE org_id = $1 AND seq = 4",
            &org_id,
        )
        .await;
        let verification = audit::verify_chain(&store, &org_id, 2).await.unwrap();
        assert_eq!(verification.events_checked, 3);
        let broken = verification.broken.expect("broken");
        assert_eq!((broken.seq, broken.event_id), (4, None));
        assert!(broken.reason.contains("missing"), "{}", broken.reason);

        // A dropped tail: every event left links, but the head says more were appended.
        let org_id = org_with_chain(&store, 4).await;
        let total = audit::list(&store, &org_id).await.unwrap().len() as i64;
        execute(
            &store,
            &format!(
                "DELETE FROM audit_events WHERE org_id = $1 AND seq > {}",
                total - 2
            ),
            &org_id,
        )
        .await;
        let verification = audit::verify_chain(&store, &org_id, 2).await.unwrap();
        assert_eq!(verification.events_checked, (total - 2) as u64);
        let broken = verification.broken.expect("broken");
        assert_eq!(broken.seq, total - 1);
        assert!(broken.reason.contains("missing"), "{}", broken.reason);

        // Another org's chain is not affected.
        let intact = org_with_chain(&store, 1).await;
        assert_eq!(audit::verify(&store, &intact).await.unwrap(), None);
    }
}
