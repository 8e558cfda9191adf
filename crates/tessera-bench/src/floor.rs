//! `http-floor`: the HTTP floor for `POST /v1/validate` on this machine —
//! the same HTTP stack as the authority (axum over hyper HTTP/1, tokio's
//! multi-threaded runtime) doing nothing but what every validation must:
//! read the JSON body, decode it, and send an answer as long as a real
//! one. `GET /healthz` answers as the authority's does. A validation's
//! ratio to `/healthz` measured against this server is the most any
//! implementation of the endpoint could reach here.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, ETAG};
use axum::routing::{get, post};

#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Length of each validation answer, in bytes (the authority's answer
    /// for a license with a few features is about 1,091).
    #[arg(long, default_value_t = 1091)]
    answer_bytes: usize,
}

pub async fn run(a: FloorArgs) -> anyhow::Result<()> {
    // A JSON object of exactly `answer_bytes` bytes.
    let pad = a.answer_bytes.saturating_sub(r#"{"document":""}"#.len());
    let answer = Bytes::from(format!(r#"{{"document":"{}"}}"#, "x".repeat(pad)));
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/v1/validate",
            post(move |axum::Json(request): axum::Json<serde_json::Value>| {
                let answer = answer.clone();
                async move {
                    std::hint::black_box(request);
                    (
                        [(CONTENT_TYPE, "application/json"), (ETAG, "\"1-1\"")],
                        answer,
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
