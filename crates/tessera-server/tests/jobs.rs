//! Jobs that must run on one replica at a time take a lock.

use tessera_server::store::Store;
use tessera_testkit::{Backend, TestDatabase};

#[tokio::test]
async fn a_job_lock_is_held_by_one_replica_at_a_time() {
    let Some(Backend::Postgres(url)) =
        Backend::postgres("a_job_lock_is_held_by_one_replica_at_a_time")
    else {
        return;
    };
    let db = TestDatabase::create(&url).await;
    let a = Store::postgres(&db.url, "r-a".into()).await.unwrap();
    let b = Store::postgres(&db.url, "r-b".into()).await.unwrap();
    let held = a
        .try_job_lock("scheduler")
        .await
        .unwrap()
        .expect("A gets it");
    assert!(
        b.try_job_lock("scheduler").await.unwrap().is_none(),
        "B must wait"
    );
    let other = b
        .try_job_lock("reaper")
        .await
        .unwrap()
        .expect("another job is free");
    held.release().await;
    let again = b
        .try_job_lock("scheduler")
        .await
        .unwrap()
        .expect("B gets it once released");
    // A lock dropped without release goes with its connection, not to the pool.
    drop(again);
    let mut got = None;
    for _ in 0..50 {
        if let Some(l) = a.try_job_lock("scheduler").await.unwrap() {
            got = Some(l);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    got.expect("a dropped lock is released").release().await;
    other.release().await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn sqlite_grants_job_locks_to_its_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::sqlite(&dir.path().join("t.db"), "r-1".into())
        .await
        .unwrap();
    let a = store.try_job_lock("scheduler").await.unwrap();
    assert!(a.is_some());
    a.unwrap().release().await;
}
