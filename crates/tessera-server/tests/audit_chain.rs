//! The audit log's hash chain (docs/PROTOCOL.md §27): every event carries
//! the hash of the one before it; a changed, removed or inserted event
//! breaks the chain where it happened; events written before the chain
//! existed are hashed, in order, at start — on both backends.

use serde_json::json;
use sqlx::AnyPool;
use tessera_protocol::audit::{ChainCheck, GENESIS};
use tessera_protocol::wire::EventView;
use tessera_testkit::{Options, Stopped, TestServer, backend_tests};

async fn all_events(s: &TestServer) -> Vec<EventView> {
    let (status, page) = s.admin_get("/v1/admin/events?after=0&limit=1000").await;
    assert_eq!(status, 200, "{page}");
    serde_json::from_value(page["items"].clone()).unwrap()
}

fn check(events: &[EventView]) -> Result<u64, String> {
    let mut chain = ChainCheck::default();
    for e in events {
        chain.next(e)?;
    }
    Ok(chain.checked())
}

/// The stopped server's database, to change behind its back.
async fn database(stopped: &Stopped) -> AnyPool {
    sqlx::any::install_default_drivers();
    let url = match &stopped.database {
        Some(db) => db.url.clone(),
        None => format!(
            "sqlite://{}",
            stopped.dir.path().join("data/tessera.db").display()
        ),
    };
    AnyPool::connect(&url).await.unwrap()
}

backend_tests! {
    async fn every_event_carries_the_hash_of_the_one_before(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let (id, _) = s.issue(json!({"customer": "Acme", "plan": "p", "duration": "30d"})).await;
        s.act(&id, "suspend").await;
        s.act(&id, "reinstate").await;
        s.extend(&id, json!({"by": "30d"})).await;
        let events = all_events(&s).await;
        assert!(events.len() >= 4, "{events:?}");
        assert_eq!(events[0].prev_hash.as_deref(), Some(GENESIS));
        assert_eq!(check(&events), Ok(events.len() as u64));

        // Changed behind the authority's back: the chain names the event.
        let stopped = s.stop().await;
        let db = database(&stopped).await;
        let second = events[1].seq;
        sqlx::query("UPDATE events SET actor = 'someone else' WHERE seq = $1")
            .bind(second)
            .execute(&db)
            .await
            .unwrap();
        db.close().await;
        let s = TestServer::restart(stopped, Options::default()).await;
        let tampered = all_events(&s).await;
        let e = check(&tampered).unwrap_err();
        assert!(e.contains(&format!("event {second} was changed")), "{e}");

        // Removed: the next one no longer follows.
        let stopped = s.stop().await;
        let db = database(&stopped).await;
        sqlx::query("DELETE FROM events WHERE seq = $1").bind(second).execute(&db).await.unwrap();
        db.close().await;
        let s = TestServer::restart(stopped, Options::default()).await;
        let e = check(&all_events(&s).await).unwrap_err();
        assert!(e.contains(&format!("event {} does not follow", events[2].seq)), "{e}");
    }

    async fn events_from_before_the_chain_are_hashed_at_start(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        let (id, _) = s.issue(json!({"customer": "Acme", "plan": "p", "duration": "30d"})).await;
        s.act(&id, "suspend").await;
        let before = all_events(&s).await;
        // As if written before the migration: no hashes.
        let stopped = s.stop().await;
        let db = database(&stopped).await;
        sqlx::query("UPDATE events SET prev_hash = NULL, hash = NULL").execute(&db).await.unwrap();
        db.close().await;
        let s = TestServer::restart(stopped, Options::default()).await;
        s.act(&id, "reinstate").await;
        let after = all_events(&s).await;
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(check(&after), Ok(after.len() as u64));
        // The same hashes as when they were written.
        for (a, b) in before.iter().zip(&after) {
            assert_eq!(a.hash, b.hash, "event {}", a.seq);
        }
    }
}

/// Three replicas on one PostgreSQL database appending at once: one chain.
#[tokio::test]
async fn replicas_writing_at_once_keep_one_chain() {
    let Some(replicas) = TestServer::postgres_replicas("audit chain across replicas", 3).await
    else {
        return;
    };
    let writers = replicas.iter().enumerate().map(|(r, s)| async move {
        for i in 0..15 {
            s.issue_for(&format!("Replica {r} customer {i}"), "30d")
                .await;
        }
    });
    futures_util::future::join_all(writers).await;
    let events = all_events(&replicas[1]).await;
    assert_eq!(events.len(), 45);
    assert_eq!(check(&events), Ok(45));
}
