//! The hot path a product calls on every request: `has_feature`, and a
//! feature handle resolved once (`client.feature("sso")`), against a plain
//! `AtomicBool` load in the same run. Two of the license's five
//! features end on their own before it (docs/PROTOCOL.md §20), so the
//! checks run on a verdict that carries per-feature expiry; one is metered
//! (§22), for `consume` (uncontended: one thread) and `remaining`.
//!
//! `cargo bench -p tessera-client --bench verdict`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tessera_client::Client;
use tessera_protocol::wire::LicenseExport;
use tessera_protocol::{LicenseToken, SigningKey, Status, StatusClaims, sign};

fn offline_client(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> Client {
    let key = SigningKey::generate(&mut rand::rng());
    let token = LicenseToken::generate(&mut rand::rng());
    let now = tessera_protocol::time::whole_seconds(Utc::now());
    let claims = StatusClaims {
        lic: Some("lic_01936b2e-7c3a-7def-8a12-0123456789ab".into()),
        product: None,
        tfp: token.fingerprint(),
        iid: None,
        nonce: None,
        mfp: None,
        machine: None,
        status: Status::Active,
        valid: true,
        plan: Some("enterprise".into()),
        features: ["reports", "audit", "sso", "scim", "api_calls"]
            .map(String::from)
            .to_vec(),
        entitlements: ["audit", "sso"]
            .map(|f| {
                let end = now + Duration::days(180);
                (
                    f.to_owned(),
                    tessera_protocol::Entitlement {
                        expires_at: Some(end),
                        quota: None,
                    },
                )
            })
            .into_iter()
            .chain([(
                "api_calls".to_owned(),
                tessera_protocol::Entitlement {
                    expires_at: None,
                    // As large as a quota goes: the bench never exhausts it.
                    quota: Some(
                        tessera_protocol::Quota::parse("9007199254740992/month")
                            .expect("a quota")
                            .as_of(now, 0),
                    ),
                },
            )])
            .collect(),
        max_users: Some(100),
        on_expiry: Default::default(),
        enforcement: Default::default(),
        seats_exceeded: false,
        customer: Some("Bench".into()),
        valid_from: Some(now),
        expires_at: Some(now + Duration::days(365)),
        rev: 1,
        iat: now,
        refresh_after: now + Duration::hours(1),
        exp: now + Duration::days(365),
    };
    let export = LicenseExport {
        format: LicenseExport::FORMAT.into(),
        license: claims.lic.clone().unwrap_or_default(),
        document: sign(&claims, &key).expect("signing"),
    };
    let file = dir.join("bench.license");
    std::fs::write(&file, serde_json::to_string(&export).expect("json")).expect("write");
    let _guard = runtime.enter();
    Client::builder()
        .public_key(key.public_key().clone())
        .offline_file(&file)
        .token(token.expose_secret())
        .start()
        .expect("client starts")
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let client = offline_client(&runtime, dir.path());
    assert!(client.has_feature("sso"));
    let flag = AtomicBool::new(true);

    let mut group = c.benchmark_group("hot_path");
    group.bench_function("atomic_bool_load", |b| {
        b.iter(|| black_box(&flag).load(Ordering::Acquire));
    });
    group.bench_function("has_feature", |b| {
        b.iter(|| black_box(&client).has_feature(black_box("sso")));
    });
    let sso = client.feature("sso");
    assert!(sso.is_enabled());
    group.bench_function("feature_handle", |b| {
        b.iter(|| black_box(&sso).is_enabled());
    });
    let nope = client.feature("nope");
    assert!(!nope.is_enabled());
    group.bench_function("feature_handle_missing", |b| {
        b.iter(|| black_box(&nope).is_enabled());
    });
    group.bench_function("has_feature_missing", |b| {
        b.iter(|| black_box(&client).has_feature(black_box("nope")));
    });
    assert!(client.consume("api_calls", 1).is_ok());
    group.bench_function("consume", |b| {
        b.iter(|| black_box(&client).consume(black_box("api_calls"), black_box(1)));
    });
    group.bench_function("remaining", |b| {
        b.iter(|| black_box(&client).remaining(black_box("api_calls")));
    });
    group.bench_function("verdict_arc", |b| {
        b.iter(|| black_box(&client).verdict());
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
