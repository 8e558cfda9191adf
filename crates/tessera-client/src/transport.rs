//! Talking to the authority: `POST /v1/validate`, with failover between
//! several server URLs, bounded answers, and every failure classified.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{IF_NONE_MATCH, RETRY_AFTER};
use tessera_protocol::wire::{AckRequest, ErrorBody, ValidateRequest, ValidateResponse};

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
    /// For change streams: no overall timeout (a stream lives for days);
    /// idleness is caught by the read timeout instead.
    stream_http: reqwest::Client,
    servers: Vec<String>,
    current: AtomicUsize,
    timeout: Duration,
}

impl Transport {
    pub(crate) fn new(servers: Vec<String>, timeout: Duration) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("tessera-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot set up HTTP: {e}")))?;
        let stream_http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("tessera-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot set up HTTP: {e}")))?;
        let servers = servers
            .into_iter()
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect();
        Ok(Self {
            http,
            stream_http,
            servers,
            current: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The URL the next request goes to.
    pub(crate) fn current(&self) -> &str {
        &self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()]
    }

    /// After a failure, the next request goes to the next URL.
    pub(crate) fn fail_over(&self) {
        if self.servers.len() > 1 {
            self.current.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One validation round trip. When the current URL cannot give an
    /// authoritative answer, each other URL is tried once, in order; the
    /// next call starts from the one that answered.
    pub(crate) async fn validate(
        &self,
        request: &ValidateRequest,
        if_none_match: Option<&str>,
    ) -> Result<Answer, Error> {
        let mut result = self.try_validate(request, if_none_match).await;
        for _ in 1..self.servers.len() {
            match &result {
                Err(e) if e.is_unreachable() => {
                    self.fail_over();
                    result = self.try_validate(request, if_none_match).await;
                }
                _ => break,
            }
        }
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
        self.post_document("/v1/validate", request, if_none_match)
            .await
    }

    /// `POST /v1/machines/{action}` (`activate`, `deactivate`): a document
    /// bound to this machine, from the current URL.
    pub(crate) async fn machine(
        &self,
        action: &str,
        request: &impl serde::Serialize,
    ) -> Result<Answer, Error> {
        self.post_document(&format!("/v1/machines/{action}"), request, None)
            .await
    }

    async fn post_document(
        &self,
        path: &str,
        request: &impl serde::Serialize,
        if_none_match: Option<&str>,
    ) -> Result<Answer, Error> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.current()))
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
        let body = read_capped(&mut response, self.timeout).await?;
        if !status.is_success() {
            return Err(refusal(status.as_u16(), &body, retry_after));
        }
        let answer: ValidateResponse = serde_json::from_slice(&body)
            .map_err(|_| Error::InvalidAnswer(format!("not JSON: {}", snippet(&body))))?;
        Ok(Answer::Document(answer.document))
    }

    /// `POST /v1/instances/ack`: report the held revision.
    pub(crate) async fn ack(
        &self,
        token: &str,
        instance_id: &str,
        revision: u64,
    ) -> Result<(), Error> {
        let body = AckRequest {
            token: token.to_owned(),
            instance_id: instance_id.to_owned(),
            revision,
        };
        self.report("/v1/instances/ack", &body, "revision report refused")
            .await
    }

    /// `POST /v1/usage`: report the product's user count.
    pub(crate) async fn usage(
        &self,
        token: &str,
        instance_id: &str,
        users: u32,
    ) -> Result<(), Error> {
        let body = tessera_protocol::wire::UsageRequest {
            token: token.to_owned(),
            instance_id: instance_id.to_owned(),
            users,
        };
        self.report("/v1/usage", &body, "usage report refused")
            .await
    }

    /// `POST /v1/consumption`: one consumption report (§22).
    pub(crate) async fn consumption(
        &self,
        token: &str,
        instance_id: &str,
        seq: u64,
        amounts: &std::collections::BTreeMap<String, u64>,
    ) -> Result<tessera_protocol::wire::ConsumptionView, Error> {
        let body = tessera_protocol::wire::ConsumptionRequest {
            token: token.to_owned(),
            instance_id: instance_id.to_owned(),
            seq,
            amounts: amounts.clone(),
        };
        self.post_json("/v1/consumption", &body, "not a consumption answer")
            .await
    }

    /// `POST /v1/trials`: this machine's trial of `policy`.
    pub(crate) async fn trial(
        &self,
        policy: &str,
        fingerprint: &str,
        email: Option<&str>,
    ) -> Result<tessera_protocol::wire::TrialResponse, Error> {
        let body = tessera_protocol::wire::TrialRequest {
            policy: policy.to_owned(),
            fingerprint: fingerprint.to_owned(),
            email: email.map(str::to_owned),
        };
        self.post_json("/v1/trials", &body, "not a trial answer")
            .await
    }

    /// `POST /v1/trials/convert`.
    pub(crate) async fn convert_trial(&self, trial_token: &str, token: &str) -> Result<(), Error> {
        let body = tessera_protocol::wire::ConvertTrialRequest {
            trial_token: trial_token.to_owned(),
            token: token.to_owned(),
        };
        self.report("/v1/trials/convert", &body, "trial conversion refused")
            .await
    }

    /// POST `body` and read a JSON answer (errors as [`Error::HttpStatus`]
    /// with the authority's message).
    async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        what: &str,
    ) -> Result<T, Error> {
        let mut response = self
            .http
            .post(format!("{}{path}", self.current()))
            .json(body)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        let body = read_capped(&mut response, self.timeout).await?;
        if !status.is_success() {
            return Err(refusal(status.as_u16(), &body, None));
        }
        serde_json::from_slice(&body)
            .map_err(|_| Error::InvalidAnswer(format!("{what}: {}", snippet(&body))))
    }

    /// POST a report whose answer only matters as success or failure.
    async fn report<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
        refused: &'static str,
    ) -> Result<(), Error> {
        let response = self
            .http
            .post(format!("{}{path}", self.current()))
            .json(body)
            .send()
            .await
            .map_err(classify)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Error::HttpStatus {
                status: response.status().as_u16(),
                message: refused.into(),
                retry_after: None,
            })
        }
    }

    /// Open `GET /v1/watch` for `token`.
    pub(crate) async fn open_stream(
        &self,
        token: &str,
        instance_id: &str,
        last_event_id: Option<u64>,
        read_timeout: Duration,
    ) -> Result<EventStream, Error> {
        let mut req = self
            .stream_http
            .get(format!("{}/v1/watch", self.current()))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .header("tessera-instance", instance_id);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let opened = tokio::time::timeout(read_timeout, req.send())
            .await
            .map_err(|_| Error::Timeout)
            .and_then(|r| r.map_err(classify));
        let response = match opened {
            Ok(r) => r,
            Err(e) => {
                self.fail_over();
                return Err(e);
            }
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let mut response = response;
            // An error page is read like any answer: at most 64 KiB, within
            // the read timeout; a larger or slower one is cut off, not held.
            let body = read_capped(&mut response, read_timeout)
                .await
                .unwrap_or_default();
            if status.is_server_error() {
                self.fail_over();
            }
            return Err(refusal(status.as_u16(), &body, retry_after));
        }
        Ok(EventStream {
            response,
            buffer: Vec::new(),
            read_timeout,
        })
    }
}

/// A server-sent event: `status` carries a document to hold; `machines`
/// (a license that counts machines) announces that a place was taken or
/// freed, and the machine asks for its own answer.
#[derive(Debug)]
pub(crate) struct StatusEvent {
    pub data: String,
    pub announcement: bool,
}

/// An open change stream, read event by event.
#[derive(Debug)]
pub(crate) struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    read_timeout: Duration,
}

impl EventStream {
    /// The next `status` event. Comments (keep-alives) reset the read
    /// timeout; other event types are skipped.
    pub(crate) async fn next(&mut self) -> Result<StatusEvent, Error> {
        loop {
            while let Some(end) = find_event_end(&self.buffer) {
                let raw: Vec<u8> = self.buffer.drain(..end.1).collect();
                if let Some(ev) = parse_event(&raw[..end.0]) {
                    return Ok(ev);
                }
            }
            let chunk = tokio::time::timeout(self.read_timeout, self.response.chunk())
                .await
                .map_err(|_| Error::Timeout)?
                .map_err(classify)?
                .ok_or_else(|| Error::Network("the stream ended".into()))?;
            if self.buffer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Error::InvalidAnswer(
                    "stream event larger than 64 KiB".into(),
                ));
            }
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

/// An error answer as [`Error::HttpStatus`]: the authority's message and
/// code, or the start of whatever else came (a proxy's page).
fn refusal(status: u16, body: &[u8], retry_after: Option<u64>) -> Error {
    let message = serde_json::from_slice::<ErrorBody>(body).map_or_else(
        |_| snippet(body),
        |e| format!("{} ({})", e.error.message, e.error.code),
    );
    Error::HttpStatus {
        status,
        message,
        retry_after,
    }
}

/// Read a whole body, at most [`MAX_ANSWER_BYTES`] and within `timeout`:
/// a body from the network is never held beyond that, however large or
/// slow the sender makes it.
async fn read_capped(
    response: &mut reqwest::Response,
    timeout: Duration,
) -> Result<Vec<u8>, Error> {
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Error::InvalidAnswer(format!(
                    "answer larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| Error::Timeout)?
}

/// (end of the event's text, end including the blank line).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_event(raw: &[u8]) -> Option<StatusEvent> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut kind = "message";
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => kind = value,
            "data" => data.push(value),
            _ => {}
        }
    }
    (matches!(kind, "status" | "machines") && !data.is_empty()).then(|| StatusEvent {
        data: data.join("\n"),
        announcement: kind == "machines",
    })
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
