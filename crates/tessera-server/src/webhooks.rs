//! Webhooks: endpoints, and the dispatcher that drains the outbox.
//!
//! Deliveries are rows written in the same transaction as their event
//! (`Store::insert_event`, in `store/events.rs`), so a committed event is never lost; the
//! dispatcher marks one delivered only after a 2xx, so a crash between the
//! POST and the mark sends it again (at-least-once: receivers drop
//! duplicates by `Tessera-Delivery`). Failed attempts are retried with
//! exponential backoff and jitter until `webhook_retry_for` (24 h) has
//! passed since the event, then marked failed. With replicas, one dispatcher
//! runs at a time (job lock in `lib.rs`).

use std::sync::Arc;
use std::time::Instant;
use tessera_protocol::WebhookId;

use chrono::Duration;
use futures_util::StreamExt;
use tessera_protocol::webhook::{SIGNATURE_HEADER, signature_header};
use tessera_protocol::wire::{
    DeliveryState, DeliveryView, EventKind, WebhookInput, WebhookPayload, WebhookView,
};

use crate::clock::Clock;
use crate::config::Lifecycle;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{Attempt, DueDelivery, NewEvent, Webhook, WebhookSecret};
use crate::secrets::SecretBox;
use crate::store::Store;

/// What a webhook asks for instead of kinds: every event.
pub const ALL_EVENTS: &str = "*";

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

fn check_url(url: &str, targets: WebhookTargets) -> Result<()> {
    let parsed = reqwest::Url::parse(url).ok();
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 2_000
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && parsed.as_ref().is_some_and(|u| u.host_str().is_some());
    let Some(parsed) = parsed.filter(|_| ok) else {
        return Err(Error::unprocessable(
            "invalid_url",
            "url must be an http:// or https:// URL with a host",
        ));
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::unprocessable(
            "invalid_url",
            "url must not carry credentials (user:pass@): use the signing secret",
        ));
    }
    if let Some(ip) = literal_ip(&parsed)
        && targets == WebhookTargets::PublicOnly
        && !is_public(ip)
    {
        return Err(Error::unprocessable(
            "private_webhook_target",
            format!(
                "{ip} is a loopback, private, link-local or otherwise internal address; \
                 start the server with --allow-private-webhooks to allow it"
            ),
        ));
    }
    Ok(())
}

/// Which webhook targets are allowed. Safe by default: public addresses
/// only, so the delivery log cannot be used to probe the authority's own
/// network (or its cloud metadata service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookTargets {
    /// Only globally routable addresses, checked after DNS resolution at
    /// every delivery (a name that re-binds to 127.0.0.1 is refused).
    #[default]
    PublicOnly,
    /// Any address (`--allow-private-webhooks`): receivers on the same
    /// host or private network.
    AllowPrivate,
}

/// The URL's host as an IP address, if it is one.
fn literal_ip(url: &reqwest::Url) -> Option<std::net::IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(v4.into()),
        url::Host::Ipv6(v6) => Some(v6.into()),
        url::Host::Domain(_) => None,
    }
}

/// Whether `ip` is an ordinary public address: not loopback, private,
/// link-local, shared (CGNAT), multicast, broadcast, documentation or
/// unspecified, in IPv4 or IPv6 (including IPv4-mapped IPv6).
#[must_use]
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

/// DNS for deliveries: the system resolver, keeping only public addresses
/// (unless private targets are allowed). The connection uses exactly the
/// addresses checked here, so a name cannot pass a check and then
/// re-bind to an internal address for the request.
#[derive(Debug, Clone, Copy)]
struct CheckedResolver;

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<std::net::SocketAddr> =
                found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the webhook host resolves only to internal addresses".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Webhook endpoints: create, list, remove, and their deliveries.
#[derive(Debug)]
pub struct Webhooks {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    secrets: Arc<SecretBox>,
    lifecycle: Lifecycle,
    metrics: Arc<Metrics>,
}

impl Webhooks {
    /// Webhooks over `store`, sealing secrets with `secrets`.
    #[must_use]
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        secrets: Arc<SecretBox>,
        lifecycle: Lifecycle,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            clock,
            secrets,
            lifecycle,
            metrics,
        }
    }

    fn now(&self) -> tessera_protocol::Timestamp {
        self.clock.now()
    }

    /// Create a webhook endpoint; the answer carries its secret, once.
    ///
    /// # Errors
    /// 422 for a bad URL, unknown event kinds or a short secret.
    pub async fn create_webhook(&self, input: WebhookInput, actor: &str) -> Result<WebhookView> {
        check_url(&input.url, self.lifecycle.webhook_targets)?;
        if input.events.is_empty() || input.events.len() > EventKind::ALL.len() + 1 {
            return Err(Error::unprocessable(
                "invalid_field",
                "events must name at least one event kind (or \"*\" for all)",
            ));
        }
        for kind in &input.events {
            if kind != ALL_EVENTS && kind.parse::<EventKind>().is_err() {
                let known: Vec<String> = std::iter::once(ALL_EVENTS.to_owned())
                    .chain(EventKind::ALL.iter().map(ToString::to_string))
                    .collect();
                return Err(Error::unprocessable(
                    "unknown_event_kind",
                    format!("unknown event kind {kind:?}; known: {}", known.join(", ")),
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
            id: WebhookId::from_uuid_text(&uuid::Uuid::now_v7().to_string())?,
            url: input.url,
            secret: WebhookSecret(self.secrets.seal(&secret)?),
            kinds,
            created_at: now,
        };
        let view = webhook.view();
        let event = NewEvent {
            at: now,
            actor: actor.to_owned(),
            kind: EventKind::WebhookCreated,
            before: None,
            after: serde_json::to_value(&view).ok(),
        };
        self.store.create_webhook(&webhook, event).await?;
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
            .store
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
            kind: EventKind::WebhookRemoved,
            before: Some(serde_json::json!({ "id": id })),
            after: None,
        };
        let removed = match WebhookId::parse(id) {
            Ok(wid) => self.store.remove_webhook(&wid, event).await?,
            Err(_) => false,
        };
        if removed {
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
        let unknown = || Error::not_found("webhook", id);
        let wid = WebhookId::parse(id).map_err(|_| unknown())?;
        let known = self.store.webhooks().await?.iter().any(|w| w.id == wid);
        if !known {
            return Err(unknown());
        }
        self.store.deliveries(&wid, limit).await
    }
}

/// Sends due deliveries.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    svc: Arc<Webhooks>,
    http: reqwest::Client,
}

impl Dispatcher {
    /// A dispatcher for `svc`'s outbox.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(svc: Arc<Webhooks>) -> Result<Self> {
        let mut http = reqwest::Client::builder()
            .timeout(svc.lifecycle.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, past the check below.
            .no_proxy();
        if svc.lifecycle.webhook_targets == WebhookTargets::PublicOnly {
            http = http.dns_resolver(Arc::new(CheckedResolver));
        }
        let http = http
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
            let due = self.svc.store.due_deliveries(self.svc.now(), BATCH).await?;
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
        // Checked again at delivery: a URL stored before the check existed,
        // or an address literal (which never goes through DNS).
        if let Err(e) = check_url(&d.url, self.svc.lifecycle.webhook_targets) {
            return self
                .record(&d, None, Some(format!("refused: {e}")), 0)
                .await;
        }
        let secret = match self.svc.secrets.open(&d.secret.0) {
            Ok(secret) => secret,
            Err(e) => return self.record(&d, None, Some(e.to_string()), 0).await,
        };
        let payload = WebhookPayload {
            delivery: d.id,
            event: d.event.clone(),
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
                signature_header(&secret, sent_at.timestamp(), &body),
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
            Err(e) if e.is_connect() && refused_as_internal(&e) => (
                None,
                Some("refused: the host resolves only to internal addresses".to_owned()),
            ),
            Err(e) if e.is_connect() => (None, Some("could not connect".to_owned())),
            Err(_) => (None, Some("request failed".to_owned())),
        };
        self.record(&d, status, error, millis).await
    }

    /// Log one attempt and schedule the next (or give up after
    /// `webhook_retry_for`).
    async fn record(
        &self,
        d: &DueDelivery,
        status: Option<u16>,
        error: Option<String>,
        millis: i64,
    ) -> Result<()> {
        let now = self.svc.now();
        let (state, result) = if error.is_none() {
            (DeliveryState::Delivered, "delivered")
        } else if now - d.created_at >= self.svc.lifecycle.webhook_retry_for {
            (DeliveryState::Failed, "failed")
        } else {
            (DeliveryState::Pending, "retry")
        };
        self.svc.metrics.webhook_delivery(result);
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
            .store
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

/// Whether a connect error came from [`CheckedResolver`].
fn refused_as_internal(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.to_string().contains("only to internal addresses") {
            return true;
        }
        source = s.source();
    }
    false
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
        let any = WebhookTargets::AllowPrivate;
        assert!(check_url("http://127.0.0.1:9/hook", any).is_ok());
        assert!(check_url("https://hooks.example.com/x", any).is_ok());
        for bad in ["ftp://x", "http://", "hooks.example.com", "http://a b", ""] {
            assert!(check_url(bad, any).is_err(), "{bad}");
        }
    }

    #[test]
    fn webhooks_to_internal_addresses_are_refused() {
        let public = WebhookTargets::PublicOnly;
        for bad in [
            "http://127.0.0.1:9/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/x",
            "http://192.168.1.1/x",
            "http://172.16.0.1/x",
            "http://100.64.0.1/x",
            "http://0.0.0.0/x",
            "http://224.0.0.1/x",
            "http://[::1]/x",
            "http://[fe80::1]/x",
            "http://[fd00::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "https://user:pass@hooks.example.com/x",
        ] {
            assert!(check_url(bad, public).is_err(), "{bad}");
        }
        assert!(
            check_url(
                "https://user:pass@hooks.example.com/x",
                WebhookTargets::AllowPrivate
            )
            .is_err()
        );
        assert!(check_url("https://hooks.example.com/x", public).is_ok());
        assert!(check_url("http://93.184.215.14/x", public).is_ok());
        assert!(check_url("http://[2606:4700::1111]/x", public).is_ok());
    }
}
