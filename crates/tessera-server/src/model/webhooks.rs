//! Webhook endpoints and their deliveries, as the store keeps them.

use tessera_protocol::wire;
use tessera_protocol::{Timestamp, WebhookId};

/// A webhook endpoint as stored.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `whk_…`.
    pub id: WebhookId,
    /// Target URL.
    pub url: String,
    /// Signing secret (never logged; `Debug` is only for tests' eyes —
    /// see the manual impl below).
    pub secret: WebhookSecret,
    /// Event kinds (`*` = all).
    pub kinds: Vec<String>,
    /// Created.
    pub created_at: Timestamp,
}

impl Webhook {
    /// The admin API's view (without the secret).
    #[must_use]
    pub fn view(&self) -> wire::WebhookView {
        wire::WebhookView {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.kinds.clone(),
            created_at: self.created_at,
            secret: None,
        }
    }
}

/// A webhook's signing secret; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// A delivery whose next attempt is due, with what it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: i64,
    /// Webhook id.
    pub webhook_id: WebhookId,
    /// Target URL.
    pub url: String,
    /// Signing secret.
    pub secret: WebhookSecret,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the event was written (retries stop 24 h later).
    pub created_at: Timestamp,
    /// The event.
    pub event: tessera_protocol::wire::EventView,
}

/// The outcome of one delivery attempt, and what happens next.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Which delivery.
    pub delivery_id: i64,
    /// When it was made.
    pub at: Timestamp,
    /// HTTP status, if an answer came.
    pub status: Option<u16>,
    /// Error text, if none came or it was not 2xx.
    pub error: Option<String>,
    /// How long it took.
    pub millis: i64,
    /// The delivery's state after it.
    pub state: tessera_protocol::wire::DeliveryState,
    /// The next attempt, while pending.
    pub next_at: Timestamp,
}
