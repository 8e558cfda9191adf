//! Metered quotas against the real binary (docs/PROTOCOL.md §22): the
//! totals are exact after the authority is killed with `kill -9` in the
//! middle of a stream of consumption reports — every report counted, none
//! twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tessera_client::{Client, Watching};
use tessera_testkit::process::{ServerProcess, eventually, free_addr};

mod common;

use common::Workdir;

async fn used(server: &ServerProcess, id: &str) -> u64 {
    let (status, q) = server
        .admin_get(&format!("/v1/admin/licenses/{id}/quotas/api_calls"))
        .await;
    assert_eq!(status, 200, "{q}");
    q["quota"]["used"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_are_exact_after_a_kill_9_in_the_middle_of_reports() {
    let addr = free_addr();
    let (setup, server) = Workdir::serving(addr, "server1.log");
    let (id, token) = server
        .issue(json!({"customer": "Acme", "plan": "p", "duration": "30d",
                      "features": ["api_calls=1000000000/total/allow"]}))
        .await;
    let key: tessera_client::PublicKey = server.public_key.parse().unwrap();
    let mut clients = Vec::new();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    for dir in &dirs {
        let client = Client::builder()
            .server(server.url())
            .public_key(key.clone())
            .state_dir(dir.path())
            .watch(Watching::Off)
            .consumption_interval(Duration::from_millis(20))
            .token(&token)
            .start()
            .unwrap();
        client.refresh().await.unwrap();
        clients.push(client);
    }
    // Each client consumes steadily; the test keeps the true total.
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut consumers = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, total, stop) = (client.clone(), total.clone(), stop.clone());
        consumers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let amount = 1 + (n * 7 + i as u64) % 13;
                client.consume("api_calls", amount).unwrap();
                total.fetch_add(amount, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    // Killed while reports flow.
    eventually("reports counted", Duration::from_secs(20), async || {
        (used(&server, &id).await > 1_000).then_some(())
    })
    .await;
    server.process.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = setup.server(addr, "server2.log");
    eventually(
        "reports counted again",
        Duration::from_secs(20),
        async || {
            let before = used(&server, &id).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            (used(&server, &id).await > before).then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in consumers {
        c.await.unwrap();
    }
    for client in &clients {
        eventually("everything reported", Duration::from_secs(20), async || {
            client.flush_consumption().await.ok()
        })
        .await;
    }
    let expected = total.load(Ordering::SeqCst);
    assert_eq!(
        used(&server, &id).await,
        expected,
        "every report counted once"
    );
    server.process.terminate();
}
