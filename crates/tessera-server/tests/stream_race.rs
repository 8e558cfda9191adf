//! Hardening item 13: a change stream opened at the moment of a change
//! could stay on the old revision. A failpoint (`fail`, enabled for tests)
//! widens the window between the stream's first read and its subscription,
//! so the race is met in most trials instead of one in a thousand; with
//! the fix (subscribe, then read again) none may be stuck. Its own test
//! binary: the failpoint is process-wide.

use std::time::Duration as StdDuration;

use serde_json::json;
use tessera_testkit::sse::SseStream;
use tessera_testkit::{Options, TestServer};

/// Half the streams pause `ms` between their first read and subscribing.
fn widen_the_window(ms: u64) -> fail::FailScenario<'static> {
    let scenario = fail::FailScenario::setup();
    fail::cfg("watch-after-first-read", &format!("50%sleep({ms})")).unwrap();
    scenario
}

/// Open a stream and make a change at the same moment, `trials` times,
/// each on a fresh license (revision 1 → 2) with the change shifted by
/// 0–`spread_ms`; count the streams that never reach revision 2.
async fn stream_change_races(
    watch_on: &TestServer,
    change_on: &TestServer,
    trials: usize,
    spread_ms: u64,
) -> usize {
    let mut stuck = 0;
    for trial in 0..trials {
        let (id, token) = change_on.issue_default().await;
        let auth = format!("Bearer {token}");
        let path = format!("/v1/admin/licenses/{id}/extend");
        let headers = [("authorization", auth.as_str())];
        let shift = StdDuration::from_micros(rand::random_range(0..spread_ms * 1_000));
        let (opened, (status, v)) = tokio::join!(SseStream::open(&watch_on.url, &headers), async {
            tokio::time::sleep(shift).await;
            change_on.admin_post(&path, json!({"by": "1d"})).await
        });
        assert_eq!(status, 200, "{v}");
        let mut stream = opened.unwrap_or_else(|_| panic!("trial {trial}: stream refused"));
        let reached = tokio::time::timeout(StdDuration::from_secs(3), async {
            while let Some((rev, _)) = stream.next_status(StdDuration::from_secs(60)).await {
                if rev >= 2 {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !reached {
            stuck += 1;
        }
    }
    stuck
}

/// Item 13: a stream opened at the moment of a change could stay on the old
/// revision (7 of 1,500 across replicas, 1 of 1,500 on one). Subscribe
/// first, then read, then send what is newest: none may be stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_during_a_change_never_misses_it() {
    let _failpoints = widen_the_window(3);
    let s = TestServer::start_with(Options {
        rate_limit: 0,
        ..Options::default()
    })
    .await;
    assert_eq!(
        stream_change_races(&s, &s, 1_500, 3).await,
        0,
        "stuck streams on one replica"
    );
    // Revocations: the stream must end with the revoked document.
    for _ in 0..50 {
        let (id, token) = s.issue_default().await;
        let path = format!("/v1/admin/licenses/{id}/revoke");
        let auth = format!("Bearer {token}");
        let headers = [("authorization", auth.as_str())];
        let (opened, (status, _)) = tokio::join!(
            SseStream::open(&s.url, &headers),
            s.admin("POST", &path, None)
        );
        assert_eq!(status, 200);
        // Refused outright (revoked before it opened) is right too.
        if let Ok(mut stream) = opened {
            let mut last = 0;
            while let Some((rev, _)) = tokio::time::timeout(
                StdDuration::from_secs(3),
                stream.next_status(StdDuration::from_secs(60)),
            )
            .await
            .expect("the stream ends after the revocation")
            {
                last = rev;
            }
            assert_eq!(last, 2, "ended on the revoked revision");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_during_a_change_on_another_replica_never_misses_it() {
    // Across replicas the change arrives by NOTIFY: a wider window.
    let _failpoints = widen_the_window(25);
    let Some(replicas) = TestServer::postgres_replicas("stream race across replicas", 2).await
    else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    assert_eq!(
        stream_change_races(b, a, 1_500, 25).await,
        0,
        "stuck streams across replicas"
    );
}
