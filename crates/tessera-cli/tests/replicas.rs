//! Two authority processes on one PostgreSQL database: changes made on one
//! reach watchers on the other; losing one loses nothing. Skipped (with a
//! printed reason) without `TESSERA_TEST_POSTGRES_URL`; `.ci/run` sets it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tessera_client::{Client, VerdictState};
use tessera_testkit::process::{ServerProcess, free_addr};
use tessera_testkit::sse::SseStream;
use tessera_testkit::{Backend, TestDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

struct Cluster {
    _db: TestDatabase,
    dir: tempfile::TempDir,
    a: Option<ServerProcess>,
    b: ServerProcess,
    admin_key: String,
}

/// A cluster with one license of `duration` issued through A:
/// `(cluster, license id, token)`.
async fn licensed_cluster(test: &str, duration: &str) -> Option<(Cluster, String, String)> {
    let c = cluster(test).await?;
    let body = json!({"customer": "Acme", "plan": "p", "duration": duration});
    let (id, token) = c.a().issue(body).await;
    Some((c, id, token))
}

async fn cluster(test: &str) -> Option<Cluster> {
    let Backend::Postgres(url) = Backend::postgres(test)? else {
        return None;
    };
    let db = TestDatabase::create(&url).await;
    let dir = tempfile::tempdir().unwrap();
    // One signing key for every replica.
    let key_file = dir.path().join("signing.key");
    let key = tessera_protocol::SigningKey::generate(&mut rand::rng());
    std::fs::write(&key_file, key.to_paserk()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = [
        "--database-url",
        db.url.as_str(),
        "--signing-key-file",
        key_file.to_str().unwrap(),
        "--rate-limit",
        "0",
    ];
    let a = ServerProcess::start_with(
        BIN,
        &dir.path().join("a"),
        free_addr(),
        "a.log",
        &extra,
        None,
    );
    let admin_key = a.admin_key.clone();
    let b = ServerProcess::start_with(
        BIN,
        &dir.path().join("b"),
        free_addr(),
        "b.log",
        &extra,
        Some(&admin_key),
    );
    assert_eq!(a.public_key, b.public_key);
    Some(Cluster {
        _db: db,
        dir,
        a: Some(a),
        b,
        admin_key,
    })
}

impl Cluster {
    fn a(&self) -> &ServerProcess {
        self.a.as_ref().unwrap()
    }

    /// A change stream on B for `token`, past its first document (rev 1).
    async fn watch_on_b(&self, token: &str) -> SseStream {
        let auth = format!("Bearer {token}");
        let mut stream = SseStream::open(self.b.url(), &[("authorization", &auth)])
            .await
            .unwrap_or_else(|r| panic!("watch on B refused: {}", r.status()));
        let first = stream.next_status(Duration::from_secs(5)).await.unwrap();
        assert_eq!(first.0, 1);
        stream
    }
}

#[tokio::test]
async fn a_watcher_on_one_replica_sees_a_change_made_through_the_other() {
    let Some((c, id, token)) = licensed_cluster(
        "a_watcher_on_one_replica_sees_a_change_made_through_the_other",
        "30d",
    )
    .await
    else {
        return;
    };
    let mut stream = c.watch_on_b(&token).await;
    let started = std::time::Instant::now();
    let (code, v) = c
        .a()
        .admin(
            &format!("/v1/admin/licenses/{id}/extend"),
            json!({"by": "1d"}),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(stream.next_revision(Duration::from_secs(5)).await, 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "crossed replicas in {:?}",
        started.elapsed()
    );
    // And B's validation answers reflect it (its cache was refreshed by the notification).
    let (_, v) =
        c.b.process
            .post("/v1/validate", json!({"token": token}), None)
            .await;
    assert_eq!(v["verdict"]["rev"], 2);
    let _ = &c.admin_key;
    let _ = c.dir.path();
}

#[tokio::test]
async fn killing_a_replica_mid_use_leaves_the_client_on_the_other_with_no_wrong_verdict() {
    let Some(mut c) =
        cluster("killing_a_replica_mid_use_leaves_the_client_on_the_other_with_no_wrong_verdict")
            .await
    else {
        return;
    };
    let (id, token) = c.a().issue_for("Acme", "30d").await;
    let key = tessera_protocol::PublicKey::from_paserk(&c.b.public_key).unwrap();
    let state = tempfile::tempdir().unwrap();
    let client = Client::builder()
        .servers([c.a().url().to_owned(), c.b.url().to_owned()])
        .public_key(key)
        .state_dir(state.path())
        .token(&token)
        .request_timeout(Duration::from_secs(3))
        .start()
        .unwrap();
    let mut rx = client.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|v| v.is_valid() && v.connected),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(client.current_server().as_deref(), Some(c.a().url()));
    // Every verdict from here on is recorded.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = {
        let seen = seen.clone();
        let mut rx = client.subscribe();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let v = rx.borrow_and_update().clone();
                seen.lock()
                    .unwrap()
                    .push((v.state, v.license.as_ref().map(|l| l.revision)));
            }
        })
    };

    c.a.take().unwrap().process.kill9();
    let (code, _) =
        c.b.admin(
            &format!("/v1/admin/licenses/{id}/extend"),
            json!({"by": "30d"}),
        )
        .await;
    assert_eq!(code, 200);
    tokio::time::timeout(
        Duration::from_secs(40),
        rx.wait_for(|v| v.license.as_ref().is_some_and(|l| l.revision == 2)),
    )
    .await
    .expect("the change reached the client through B")
    .unwrap();
    let v = client.refresh().await.expect("a refresh goes to B");
    assert_eq!(v.state, VerdictState::Valid);
    assert_eq!(client.current_server().as_deref(), Some(c.b.url()));
    recorder.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|(state, _)| *state == VerdictState::Valid),
        "a verdict other than valid was published: {seen:?}"
    );
    let revisions: Vec<u64> = seen.iter().filter_map(|(_, r)| *r).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] <= w[1]),
        "revision went back: {revisions:?}"
    );
}

#[tokio::test]
async fn concurrent_extends_on_both_replicas_never_duplicate_or_skip_a_revision() {
    let Some((c, id, _)) = licensed_cluster(
        "concurrent_extends_on_both_replicas_never_duplicate_or_skip_a_revision",
        "1d",
    )
    .await
    else {
        return;
    };
    let (_, before) = c
        .a()
        .admin(
            &format!("/v1/admin/licenses/{id}/extend"),
            json!({"by": "1d"}),
        )
        .await;
    let start_expiry =
        chrono::DateTime::parse_from_rfc3339(before["expires_at"].as_str().unwrap()).unwrap();
    let urls = [c.a().url().to_owned(), c.b.url().to_owned()];
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let url = urls[i % 2].clone();
        let (http, key, id) = (http.clone(), c.admin_key.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(format!("{url}/v1/admin/licenses/{id}/extend"))
                .bearer_auth(key)
                .json(&json!({"by": "1d"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.unwrap()["revision"]
                .as_u64()
                .unwrap()
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort_unstable();
    assert_eq!(revisions, (3..=32).collect::<Vec<u64>>());
    let (_, license) = c.b.admin_get(&format!("/v1/admin/licenses/{id}")).await;
    assert_eq!(license["revision"], 32);
    let expiry =
        chrono::DateTime::parse_from_rfc3339(license["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expiry - start_expiry,
        chrono::Duration::days(30),
        "each extension counted once"
    );
    let (_, events) =
        c.b.admin_get(&format!("/v1/admin/events?license={id}&after=0&limit=100"))
            .await;
    let revs: Vec<u64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        // Changes only: the scheduler's expiry warnings name the revision
        // they were raised at but change nothing.
        .filter(|e| !e["kind"].as_str().unwrap().starts_with("license.expir"))
        .filter_map(|e| e["revision"].as_u64())
        .collect();
    assert_eq!(
        revs,
        (1..=32).collect::<Vec<u64>>(),
        "one event per revision, in order"
    );
}

#[tokio::test]
async fn notifications_lost_while_a_listener_reconnects_are_recovered_by_resync() {
    let Some((c, id, token)) = licensed_cluster(
        "notifications_lost_while_a_listener_reconnects_are_recovered_by_resync",
        "30d",
    )
    .await
    else {
        return;
    };
    let mut stream = c.watch_on_b(&token).await;
    // Cut B's LISTEN connection, and change the license at once through A:
    // the notification is sent while B is not listening.
    let replica = c.b.process.banner_value("replica");
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&c._db.url).await.unwrap();
    let (killed,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND query ILIKE 'LISTEN%') t",
    )
    .bind(format!("tessera {replica}"))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(killed, 1, "B's listener connection found");
    c.a()
        .admin(
            &format!("/v1/admin/licenses/{id}/extend"),
            json!({"by": "1d"}),
        )
        .await;
    assert_eq!(stream.next_revision(Duration::from_secs(15)).await, 2);
    let logs = c.b.process.logs();
    assert!(
        logs.contains("resynchronised after a listener reconnect"),
        "{logs}"
    );
}
