//! Webhooks: endpoints, and the dispatcher that drains the outbox.
//!
//! Deliveries are rows written in the same transaction as their event
//! (`store::sql::insert_event`), so a committed event is never lost; the
//! dispatcher marks one delivered only after a 2xx, so a crash between the
//! POST and the mark sends it again (at-least-once: receivers drop
//! duplicates by `Tessera-Delivery`). Failed attempts are retried with
//! exponential backoff and jitter until `webhook_retry_for` (24 h) has
//! passed since the event, then marked failed. With replicas, one dispatcher
//! runs at a time (job lock in `lib.rs`).

use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;
use futures_util::StreamExt;
use tessera_protocol::webhook::{SIGNATURE_HEADER, signature_header};
use tessera_protocol::wire::{
    DeliveryState, DeliveryView, WebhookInput, WebhookPayload, WebhookView,
};

use crate::error::{Error, Result};
use crate::licenses::LicenseService;
use crate::model::{Attempt, DueDelivery, NewEvent, Webhook, WebhookSecret};

/// Event kinds a webhook may ask for.
pub const EVENT_KINDS: &[&str] = &[
    "*",
    "license.issued",
    "license.extended",
    "license.auto_renewed",
    "license.suspended",
    "license.reinstated",
    "license.revoked",
    "license.exported",
    "license.expiring",
    "license.expired",
    "policy.created",
    "webhook.created",
    "webhook.removed",
];

/// Deliveries attempted per pass, and at once.
const BATCH: u32 = 64;
const CONCURRENCY: usize = 8;
/// Backoff: first retry after about 10 s, doubling, at most an hour apart.
const BACKOFF_BASE_SECS: i64 = 10;
const BACKOFF_CAP_SECS: i64 = 3_600;

/// Delay before retry number `attempt` (1 = the first retry): exponential,
/// capped, with "equal jitter" (half fixed, half random) so retries of many
/// deliveries spread out yet never come back at once.
#[must_use]
pub fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE_SECS.saturating_mul(1_i64 << attempt.saturating_sub(1).min(20));
    let full = exp.min(BACKOFF_CAP_SECS);
    let half = full / 2;
    Duration::seconds(half + rand::random_range(0..=half.max(1)))
}

fn check_url(url: &str) -> Result<()> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2_000
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
    if ok {
        Ok(())
    } else {
        Err(Error::unprocessable(
            "invalid_url",
            "url must be an http:// or https:// URL with a host",
        ))
    }
}

impl LicenseService {
    /// Create a webhook endpoint; the answer carries its secret, once.
    ///
    /// # Errors
    /// 422 for a bad URL, unknown event kinds or a short secret.
    pub async fn create_webhook(&self, input: WebhookInput, actor: &str) -> Result<WebhookView> {
        check_url(&input.url)?;
        if input.events.is_empty() || input.events.len() > EVENT_KINDS.len() {
            return Err(Error::unprocessable(
                "invalid_field",
                "events must name at least one event kind (or \"*\" for all)",
            ));
        }
        for kind in &input.events {
            if !EVENT_KINDS.contains(&kind.as_str()) {
                return Err(Error::unprocessable(
                    "unknown_event_kind",
                    format!(
                        "unknown event kind {kind:?}; known: {}",
                        EVENT_KINDS.join(", ")
                    ),
                ));
            }
        }
        let secret = match input.secret {
            Some(s) if s.len() < 16 || s.len() > 200 || s.chars().any(char::is_control) => {
                return Err(Error::unprocessable(
                    "invalid_secret",
                    "secret must be 16 to 200 characters",
                ));
            }
            Some(s) => s,
            None => {
                let mut bytes = [0u8; 24];
                rand::fill(&mut bytes);
                format!("whsec_{}", hex::encode(bytes))
            }
        };
        let now = self.now();
        let mut kinds = input.events.clone();
        kinds.sort();
        kinds.dedup();
        let webhook = Webhook {
            id: format!("whk_{}", uuid::Uuid::now_v7()),
            url: input.url,
            secret: WebhookSecret(secret.clone()),
            kinds,
            created_at: now,
        };
        let view = webhook.view();
        let event = NewEvent {
            at: now,
            actor: actor.to_owned(),
            kind: "webhook.created",
            before: None,
            after: serde_json::to_value(&view).ok(),
        };
        self.store().create_webhook(&webhook, event).await?;
        tracing::info!(webhook = %webhook.id, actor, "webhook created");
        Ok(WebhookView {
            secret: Some(secret),
            ..view
        })
    }

    /// Webhook endpoints (without secrets).
    ///
    /// # Errors
    /// The store's.
    pub async fn webhooks(&self) -> Result<Vec<WebhookView>> {
        Ok(self
            .store()
            .webhooks()
            .await?
            .iter()
            .map(Webhook::view)
            .collect())
    }

    /// Remove a webhook; its pending deliveries are marked failed.
    ///
    /// # Errors
    /// 404 when unknown.
    pub async fn remove_webhook(&self, id: &str, actor: &str) -> Result<()> {
        let event = NewEvent {
            at: self.now(),
            actor: actor.to_owned(),
            kind: "webhook.removed",
            before: Some(serde_json::json!({ "id": id })),
            after: None,
        };
        if self.store().remove_webhook(id, event).await? {
            tracing::info!(webhook = %id, actor, "webhook removed");
            Ok(())
        } else {
            Err(Error::not_found("webhook", id))
        }
    }

    /// A webhook's deliveries, newest first.
    ///
    /// # Errors
    /// 404 when the webhook is unknown.
    pub async fn deliveries(&self, id: &str, limit: u32) -> Result<Vec<DeliveryView>> {
        let known = self.store().webhooks().await?.iter().any(|w| w.id == id);
        if !known {
            return Err(Error::not_found("webhook", id));
        }
        self.store().deliveries(id, limit).await
    }
}

/// Sends due deliveries.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    svc: Arc<LicenseService>,
    http: reqwest::Client,
}

impl Dispatcher {
    /// A dispatcher for `svc`'s outbox.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(svc: Arc<LicenseService>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(svc.lifecycle().webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tessera-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the webhook HTTP client: {e}")))?;
        Ok(Self { svc, http })
    }

    /// Attempt every delivery due now (in passes of 64); how many attempts.
    ///
    /// # Errors
    /// The store's.
    pub async fn run_once(&self) -> Result<usize> {
        let mut attempted = 0;
        loop {
            let due = self
                .svc
                .store()
                .due_deliveries(self.svc.now(), BATCH)
                .await?;
            let n = due.len();
            let results: Vec<Result<()>> = futures_util::stream::iter(due)
                .map(|d| self.deliver(d))
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for r in results {
                r?;
            }
            attempted += n;
            if n < BATCH as usize {
                return Ok(attempted);
            }
        }
    }

    async fn deliver(&self, d: DueDelivery) -> Result<()> {
        let payload = WebhookPayload {
            delivery: d.id,
            event: d.event,
        };
        let body = serde_json::to_vec(&payload)
            .map_err(|e| Error::Corrupt(format!("encoding a delivery: {e}")))?;
        let sent_at = self.svc.now();
        let started = Instant::now();
        let answer = self
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature_header(&d.secret.0, sent_at.timestamp(), &body),
            )
            .header("Tessera-Event", payload.event.kind.as_str())
            .header("Tessera-Delivery", d.id.to_string())
            .body(body)
            .send()
            .await;
        let millis = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, error) = match answer {
            Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
            Ok(r) => (
                Some(r.status().as_u16()),
                Some(format!("answered {}", r.status())),
            ),
            // Only the kind of failure: the URL may hold credentials.
            Err(e) if e.is_timeout() => (None, Some("timed out".to_owned())),
            Err(e) if e.is_connect() => (None, Some("could not connect".to_owned())),
            Err(_) => (None, Some("request failed".to_owned())),
        };
        let now = self.svc.now();
        let (state, result) = if error.is_none() {
            (DeliveryState::Delivered, "delivered")
        } else if now - d.created_at >= self.svc.lifecycle().webhook_retry_for {
            (DeliveryState::Failed, "failed")
        } else {
            (DeliveryState::Pending, "retry")
        };
        self.svc.metrics().webhook_delivery(result);
        if state != DeliveryState::Delivered {
            tracing::warn!(
                delivery = d.id,
                webhook = %d.webhook_id,
                status,
                error = error.as_deref().unwrap_or(""),
                attempts = d.attempts + 1,
                will_retry = state == DeliveryState::Pending,
                "webhook delivery not accepted"
            );
        }
        self.svc
            .store()
            .record_attempt(&Attempt {
                delivery_id: d.id,
                at: now,
                status,
                error,
                millis,
                state,
                next_at: now + backoff(d.attempts + 1),
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 1..30 {
            let d = backoff(attempt).num_seconds();
            let full = (BACKOFF_BASE_SECS << (attempt - 1).min(20)).min(BACKOFF_CAP_SECS);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} s");
        }
        let spread: std::collections::HashSet<i64> =
            (0..50).map(|_| backoff(8).num_seconds()).collect();
        assert!(spread.len() > 5, "jittered");
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:9/hook").is_ok());
        assert!(check_url("https://hooks.example.com/x").is_ok());
        for bad in ["ftp://x", "http://", "hooks.example.com", "http://a b", ""] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
