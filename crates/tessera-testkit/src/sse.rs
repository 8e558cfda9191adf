//! A minimal server-sent-events reader for tests of `/v1/watch`.

use std::time::Duration;

/// One event or comment read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `event:` / `id:` / `data:`.
    Event {
        event: String,
        id: Option<String>,
        data: String,
    },
    /// A `:` comment (keep-alive).
    Comment,
}

/// An open stream.
pub struct SseStream {
    pub response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// Open `GET {url}/v1/watch` with these headers.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Self, reqwest::Response> {
        let mut req = reqwest::Client::new().get(format!("{url}/v1/watch"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = req.send().await.unwrap();
        if !response.status().is_success() {
            return Err(response);
        }
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next item, or `None` when the stream ended; panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Item> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let raw = raw.trim_end();
                if raw.starts_with(':') {
                    return Some(Item::Comment);
                }
                let (mut event, mut id, mut data) = (String::from("message"), None, Vec::new());
                for line in raw.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match field {
                        "event" => event = value,
                        "id" => id = Some(value),
                        "data" => data.push(value),
                        _ => {}
                    }
                }
                return Some(Item::Event {
                    event,
                    id,
                    data: data.join("\n"),
                });
            }
            let chunk = tokio::time::timeout(timeout, self.response.chunk())
                .await
                .expect("stream item in time")
                .ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `status` event's (revision, document), skipping comments.
    pub async fn next_status(&mut self, timeout: Duration) -> Option<(u64, String)> {
        self.next_event("status", timeout).await
    }

    /// The next event's (revision, document), skipping comments; it must
    /// be of kind `kind` (`status`, `machines`).
    pub async fn next_event(&mut self, kind: &str, timeout: Duration) -> Option<(u64, String)> {
        loop {
            match self.next(timeout).await? {
                Item::Comment => {}
                Item::Event { event, id, data } => {
                    assert_eq!(event, kind);
                    return Some((id.unwrap().parse().unwrap(), data));
                }
            }
        }
    }

    /// The revision of the next `status` event; panics when none arrives
    /// within `timeout`.
    pub async fn next_revision(&mut self, timeout: Duration) -> u64 {
        let (rev, _) = self
            .next_status(timeout)
            .await
            .expect("no status event in time");
        rev
    }
}
