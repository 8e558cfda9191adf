//! `/openapi.json` describes every API route the routers serve: the routes
//! are read from the router source, so a route added without a
//! `#[utoipa::path]` (or left out of its module's `OpenApi` list) fails here.

use std::collections::BTreeSet;

use serde_json::Value;
use tessera_testkit::TestServer;

/// `(METHOD, path)` of every `.route("…", get(..).post(..))` in a router file.
fn routes_in(source: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut rest = source;
    // `.route(` then the path literal, possibly on the next line (rustfmt).
    while let Some(at) = rest.find(".route(") {
        rest = rest[at + 7..].trim_start();
        let Some(after_quote) = rest.strip_prefix('"') else {
            continue;
        };
        rest = after_quote;
        let end = rest.find('"').unwrap();
        let path = rest[..end].to_owned();
        // The method chain runs to the call's closing parenthesis.
        let mut depth = 1;
        let mut chain_end = end + 1;
        for (i, c) in rest[end + 1..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        chain_end = end + 1 + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let chain = &rest[end + 1..chain_end];
        for method in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{method}(");
            let found = chain.match_indices(&call).any(|(i, _)| {
                i == 0
                    || !chain.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && chain.as_bytes()[i - 1] != b'_'
            });
            if found {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_api_route_is_described() {
    let mut in_code = BTreeSet::new();
    for source in [
        include_str!("../src/http/public.rs"),
        include_str!("../src/http/admin.rs"),
        include_str!("../src/http/backstage.rs"),
        include_str!("../src/http/machines.rs"),
        include_str!("../src/http/quotas.rs"),
        include_str!("../src/http/trials.rs"),
        include_str!("../src/http/policies.rs"),
        include_str!("../src/http/offline.rs"),
        include_str!("../src/http/sites.rs"),
        include_str!("../src/http/access.rs"),
        include_str!("../src/http/import.rs"),
    ] {
        in_code.extend(routes_in(source));
    }
    assert!(
        in_code.len() >= 27,
        "the parser found the routes: {in_code:?}"
    );
    assert!(in_code.contains(&("DELETE".into(), "/v1/admin/webhooks/{id}".into())));
    assert!(in_code.contains(&("POST".into(), "/v1/machines/activate".into())));

    let s = TestServer::start().await;
    let doc: Value = s.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.insert((method.to_uppercase(), path.clone()));
        }
    }
    let missing: Vec<_> = in_code.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
    let stale: Vec<_> = described.difference(&in_code).collect();
    assert!(stale.is_empty(), "described but not served: {stale:?}");

    // Every schema reference resolves.
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("component schemas");
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
    for name in [
        "ValidateRequest",
        "StatusClaims",
        "LicenseView",
        "WebhookView",
        "UsageView",
        "Fleet",
        "ErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    // The admin routes say how to authenticate.
    assert!(
        doc["paths"]["/v1/admin/licenses"]["post"]["security"][0]
            .get("admin_key")
            .is_some()
    );
    assert!(doc["components"]["securitySchemes"]["admin_key"]["scheme"] == "bearer");
}

#[test]
#[ignore = "prints the document: cargo test --test openapi -- --ignored --nocapture"]
fn print_document() {
    println!(
        "{}",
        serde_json::to_string_pretty(&tessera_server::http::openapi::document()).unwrap()
    );
}
