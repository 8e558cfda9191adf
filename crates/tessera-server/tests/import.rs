//! Bulk import through `POST /v1/admin/licenses/import` (docs/PROTOCOL.md
//! §30) on both backends: every field of every row lands as sent (checked
//! through the export), customers shared across batches are created once,
//! a batch sent again is not written twice, and a bad batch writes nothing.

use serde_json::{Value, json};
use tessera_testkit::{TestServer, backend_tests};

const STATES: [&str; 3] = ["active", "suspended", "revoked"];

/// Row `i` of the test import: every field set on some rows, left out on others.
fn row(i: u64) -> Value {
    let mut r = json!({
        "row": i,
        "key": format!("IMPORT-KEY-{i:05}"),
        "customer": format!("Customer {}", i % 7),
        "plan": if i.is_multiple_of(2) { "enterprise" } else { "pro" },
        "features": (0..i % 3).map(|f| format!("f{f}")).collect::<Vec<_>>(),
        "state": STATES[(i % 3) as usize],
        "metadata": {"crm": i, "note": "it's \"quoted\""},
    });
    if i.is_multiple_of(2) {
        r["product"] = json!("ee");
    }
    if !i.is_multiple_of(4) {
        r["expires_at"] = json!(format!("2099-01-{:02}T00:00:00Z", 1 + i % 28));
    }
    if i.is_multiple_of(5) {
        r["max_users"] = json!(i);
    }
    if i.is_multiple_of(6) {
        r["max_machines"] = json!(1 + i % 4);
    }
    r
}

fn batch(first: u64, next: u64, rows: Vec<Value>) -> Value {
    json!({"import": "imp-test", "first_row": first, "next_row": next, "rows": rows})
}

async fn exported(s: &TestServer) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = s
            .admin_get(&format!("/v1/admin/licenses/export?limit=500{cursor}"))
            .await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return all,
        }
    }
}

backend_tests! {
    async fn every_field_of_every_row_lands_once(backend: Backend) {
        let s = TestServer::start_on(backend).await;
        assert_eq!(s.admin_post("/v1/admin/products", json!({"name": "ee"})).await.0, 201);
        let first: Vec<Value> = (1..=600).map(row).collect();
        let (status, p) = s.admin_post("/v1/admin/licenses/import", batch(1, 601, first.clone())).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!((p["next_row"].as_u64(), p["imported"].as_u64()), (Some(601), Some(600)));
        // Sent again (a rerun after a lost answer): not written twice.
        let (status, p) = s.admin_post("/v1/admin/licenses/import", batch(1, 601, first)).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["imported"], 600);

        // A batch with a key the first one imported: refused whole, by line.
        let mut second: Vec<Value> = (601..=1200).map(row).collect();
        second[10]["key"] = json!("IMPORT-KEY-00007");
        let (status, p) = s.admin_post("/v1/admin/licenses/import", batch(601, 1201, second.clone())).await;
        assert_eq!(status, 422, "{p}");
        assert_eq!(p["errors"][0]["row"], 611, "{p}");
        assert_eq!(exported(&s).await.len(), 600, "nothing of the bad batch");
        second[10]["key"] = json!("IMPORT-KEY-00611");
        let (status, p) = s.admin_post("/v1/admin/licenses/import", batch(601, 1201, second)).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["imported"], 1200);

        let all = exported(&s).await;
        assert_eq!(all.len(), 1200);
        let mut seen = std::collections::HashSet::new();
        for got in &all {
            let last4 = got["key_last4"].as_str().unwrap();
            let i: u64 = last4.parse().unwrap();
            assert!(seen.insert(i), "row {i} exported twice");
            let want = row(i);
            for field in ["customer", "plan", "features", "state", "metadata", "max_users", "max_machines"] {
                assert_eq!(got[field], want[field], "row {i}: {field} in {got}");
            }
            assert_eq!(got["product"], want.get("product").cloned().unwrap_or(json!("default")), "row {i}: {got}");
            let expires = |v: &Value| v.as_str().map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap());
            assert_eq!(expires(&got["expires_at"]), expires(&want["expires_at"]), "row {i}: {got}");
            assert_eq!(got["revision"], 1);
        }
        let (_, customers) = s.admin_get("/v1/admin/customers?limit=100").await;
        assert_eq!(customers["items"].as_array().unwrap().len(), 7, "{customers}");

        // The keys work as they are.
        let v = s.verdict("IMPORT-KEY-00003").await;
        assert_eq!((v["status"].as_str(), v["features"].as_array().map(Vec::len)), (Some("active"), Some(0)), "{v}");
        let v = s.verdict("IMPORT-KEY-01204").await;
        assert_eq!(v["status"], "not_found", "{v}");
        let v = s.verdict("IMPORT-KEY-00601").await;
        assert_eq!(v["status"], "suspended", "{v}");
        let v = s.verdict("IMPORT-KEY-01199").await;
        assert_eq!(v["status"], "revoked", "{v}");
    }
}
