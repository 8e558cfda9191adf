//! Talking to the authority: `POST /v1/validate`, with failover between
//! several server URLs, bounded answers, and every failure classified.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{IF_NONE_MATCH, RETRY_AFTER};
use tessera_protocol::wire::{ErrorBody, ValidateRequest, ValidateResponse};

use crate::error::Error;

/// Largest answer read: a document is at most 16 KiB, its decoded claims
/// about as much again.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the authority answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A document (still to be verified).
    Document(String),
    /// `304`: the held revision is current.
    NotModified,
}

/// HTTP client for one or more authority URLs.
#[derive(Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    servers: Vec<String>,
    current: AtomicUsize,
}

impl Transport {
    pub(crate) fn new(servers: Vec<String>, timeout: Duration) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("tessera-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot set up HTTP: {e}")))?;
        let servers = servers
            .into_iter()
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect();
        Ok(Self {
            http,
            servers,
            current: AtomicUsize::new(0),
        })
    }

    /// The URL the next request goes to.
    pub(crate) fn current(&self) -> &str {
        &self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()]
    }

    /// After a failure, the next request goes to the next URL.
    fn fail_over(&self) {
        if self.servers.len() > 1 {
            self.current.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One validation round trip.
    pub(crate) async fn validate(
        &self,
        request: &ValidateRequest,
        if_none_match: Option<&str>,
    ) -> Result<Answer, Error> {
        let result = self.try_validate(request, if_none_match).await;
        if let Err(e) = &result
            && e.is_unreachable()
        {
            self.fail_over();
        }
        result
    }

    async fn try_validate(
        &self,
        request: &ValidateRequest,
        if_none_match: Option<&str>,
    ) -> Result<Answer, Error> {
        let mut req = self
            .http
            .post(format!("{}/v1/validate", self.current()))
            .json(request);
        if let Some(tag) = if_none_match {
            req = req.header(IF_NONE_MATCH, tag);
        }
        let mut response = req.send().await.map_err(classify)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Answer::NotModified);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Error::InvalidAnswer(format!(
                    "answer larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body).map_or_else(
                |_| snippet(&body),
                |e| format!("{} ({})", e.error.message, e.error.code),
            );
            return Err(Error::HttpStatus {
                status: status.as_u16(),
                message,
                retry_after,
            });
        }
        let answer: ValidateResponse = serde_json::from_slice(&body)
            .map_err(|_| Error::InvalidAnswer(format!("not JSON: {}", snippet(&body))))?;
        Ok(Answer::Document(answer.document))
    }
}

/// The start of a body, printable, for error messages.
fn snippet(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text
    }
}

fn classify(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout
    } else {
        // The error chain holds the useful part ("connection refused").
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        Error::Network(message)
    }
}
