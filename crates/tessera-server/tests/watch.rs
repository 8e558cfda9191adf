//! `/v1/watch`, acks and the fleet view.

use std::time::Duration;

use serde_json::json;
use tessera_protocol::LicenseToken;
use tessera_testkit::sse::{Item, SseStream};
use tessera_testkit::{Options, TestServer, assert_error, backend_tests};

const T: Duration = Duration::from_secs(5);

async fn open(s: &TestServer, token: &str, extra: &[(&str, &str)]) -> SseStream {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    match SseStream::open(&s.url, &headers).await {
        Ok(s) => s,
        Err(r) => panic!("watch refused: {} {}", r.status(), r.text().await.unwrap()),
    }
}

/// A watch for `token` that must be refused: its status and error code.
async fn refused(s: &TestServer, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let opened = SseStream::open(&s.url, &[("authorization", &auth)]).await;
    let res = opened.err().expect("the watch was accepted");
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

backend_tests! {
    async fn the_first_event_is_the_current_document_then_every_change(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let mut stream = open(&s, &token, &[("tessera-instance", "i-1")]).await;
        let headers = stream.response.headers().clone();
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["x-accel-buffering"], "no");

        let (rev, doc) = stream.next_status(T).await.unwrap();
        assert_eq!(rev, 1);
        let verified = s.claims(&doc, &token);
        assert_eq!(verified.rev, 1);
        assert!(
            verified.iid.is_none(),
            "one signature serves every watcher"
        );

        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "1d"}))
        .await;
        let (rev, doc) = stream.next_status(T).await.unwrap();
        assert_eq!(rev, 2);
        assert_eq!(s.claims(&doc, &token).rev, 2);
        s.act(&id, "suspend").await;
        let (rev, doc) = stream.next_status(T).await.unwrap();
        assert_eq!(rev, 3);
        let c = s.claims(&doc, &token);
        assert_eq!(c.status, tessera_protocol::Status::Suspended);
        s.act(&id, "reinstate").await;
        assert_eq!(stream.next_revision(T).await, 4);

        // Revoked: the revoked document, then the end of the stream.
        s.act(&id, "revoke").await;
        let (rev, doc) = stream.next_status(T).await.unwrap();
        assert_eq!(rev, 5);
        let c = s.claims(&doc, &token);
        assert_eq!(c.status, tessera_protocol::Status::Revoked);
        assert_eq!(
            stream.next(T).await,
            None,
            "the stream ends after a revocation"
        );
    }

    async fn last_event_id_resumes_without_repeating_the_held_revision(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "1d"}))
        .await;
        // Holding revision 1: the current (2) comes first.
        let mut behind = open(&s, &token, &[("last-event-id", "1")]).await;
        assert_eq!(behind.next_status(T).await.unwrap().0, 2);
        // Holding 2: nothing until the next change.
        let mut current = open(&s, &token, &[("last-event-id", "2")]).await;
        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "1d"}))
        .await;
        assert_eq!(current.next_status(T).await.unwrap().0, 3);
        assert_eq!(behind.next_status(T).await.unwrap().0, 3);
        let auth = format!("Bearer {token}");
        let bad = SseStream::open(&s.url, &[("authorization", &auth), ("last-event-id", "x")])
            .await
            .err()
            .unwrap();
        assert_eq!(bad.status(), 400);
    }

    async fn wrong_or_revoked_tokens_cannot_open_a_stream(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let unknown = LicenseToken::generate(&mut rand::rng());
        for auth in [
            None,
            Some("Bearer tsr_nonsense".to_owned()),
            Some(format!("Bearer {}", unknown.expose_secret())),
            Some(format!("Basic {token}")),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            let res = SseStream::open(&s.url, &headers)
                .await
                .err()
                .expect("refused");
            assert_eq!(res.status(), 401);
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
        s.act(&id, "revoke").await;
        assert_eq!(refused(&s, &token).await, (403, "license_revoked".into()));
    }

    async fn watcher_limits_answer_503_and_keep_alives_flow(backend: Backend) {
        let limits = tessera_server::Limits {
            max_watchers: 3,
            max_watchers_per_license: 2,
            keep_alive: Duration::from_millis(200),
            ..tessera_server::Limits::default()
        };
        let s = TestServer::start_with(Options {
            backend: backend.clone(),
            limits: Some(limits),
            ..Options::default()
        })
        .await;
        let (_, a) = s.issue_default().await;
        let (_, b) = s.issue_default().await;
        let mut first = open(&s, &a, &[]).await;
        let _second = open(&s, &a, &[]).await;
        let per_license = refused(&s, &a).await;
        assert_eq!(per_license, (503, "too_many_watchers".into()));
        let _third = open(&s, &b, &[]).await;
        assert_eq!(refused(&s, &b).await.0, 503, "total limit");
        let auth = format!("Bearer {b}");
        // A closed stream frees its place.
        drop(_third);
        let mut freed = None;
        for _ in 0..50 {
            if let Ok(s) = SseStream::open(&s.url, &[("authorization", &auth)]).await {
                freed = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(freed.is_some(), "the place was freed");
        // Keep-alive comments on an idle stream.
        assert!(matches!(first.next(T).await, Some(Item::Event { .. })));
        assert_eq!(first.next(T).await, Some(Item::Comment));
        assert_eq!(first.next(T).await, Some(Item::Comment));
    }

    async fn the_fleet_view_shows_streams_and_delivery_after_ack(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let mut a = open(&s, &token, &[("tessera-instance", "i-a")]).await;
        let _b = open(&s, &token, &[("tessera-instance", "i-b")]).await;
        a.next_status(T).await.unwrap();
        let ack = |instance: &str, revision: u64| {
            s.request(
                "POST",
                "/v1/instances/ack",
                Some(json!({"token": token, "instance_id": instance, "revision": revision})),
                None,
            )
        };
        assert_eq!(ack("i-a", 1).await.0, 204);
        let fleet = s.fleet(&id).await;
        assert_eq!(fleet["summary"]["total"], 2);
        assert_eq!(fleet["summary"]["current"], 1);
        assert_eq!(fleet["summary"]["connected"], 2);
        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "1d"}))
        .await;
        assert_eq!(a.next_status(T).await.unwrap().0, 2);
        let fleet = s.fleet(&id).await;
        assert_eq!(
            (
                fleet["revision"].as_u64(),
                fleet["summary"]["current"].as_u64()
            ),
            (Some(2), Some(0))
        );
        assert_eq!(ack("i-a", 2).await.0, 204);
        assert_eq!(ack("i-b", 2).await.0, 204);
        let fleet = s.fleet(&id).await;
        assert_eq!(fleet["summary"]["current"], 2, "{fleet}");
        let i = fleet["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == "i-a")
            .unwrap();
        assert_eq!(
            (i["held_revision"].as_u64(), i["stream_connected"].as_bool()),
            (Some(2), Some(true))
        );
        // Closing the stream shows as disconnected.
        drop(a);
        let mut disconnected = false;
        for _ in 0..100 {
            let fleet = s.fleet(&id).await;
            if fleet["summary"]["connected"] == 1 {
                disconnected = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(disconnected, "a closed stream shows as disconnected");
        // Bad acks.
        assert_error(&ack("i-a", 9).await, 422, "revision_from_the_future");
        let got = s.request("POST", "/v1/instances/ack", Some(json!({"token": "tsr_x", "instance_id": "i", "revision": 1})), None).await;
        assert_error(&got, 401, "unauthorized");
    }

    async fn a_thousand_watchers_all_receive_one_change(backend: Backend) {
        let (s, id, token) = TestServer::with_license(backend.clone()).await;
        let mut streams = Vec::new();
        for _ in 0..1000 {
            let mut stream = open(&s, &token, &[]).await;
            assert_eq!(stream.next_revision(T).await, 1);
            streams.push(stream);
        }
        s.admin_post(&format!("/v1/admin/licenses/{id}/extend"), json!({"by": "1d"}))
        .await;
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|mut st| {
                tokio::spawn(async move { st.next_status(Duration::from_secs(20)).await.unwrap().0 })
            })
            .collect();
        let mut received = 0;
        for t in tasks {
            assert_eq!(t.await.unwrap(), 2);
            received += 1;
        }
        assert_eq!(received, 1000);
    }
}
