//! Webhook endpoints, deliveries and the delivered payload.

use serde::{Deserialize, Serialize};

use super::{DeliveryState, EventView};
use crate::Timestamp;
use crate::ids::WebhookId;

/// `POST /v1/admin/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookInput {
    /// Where deliveries are POSTed (`http://` or `https://`).
    pub url: String,
    /// Event kinds to receive (`license.extended`, `license.expiring`, …) or
    /// `["*"]` for all.
    pub events: Vec<String>,
    /// Signing secret; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A webhook endpoint. The secret appears only in the answer to creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    /// `whk_…`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: WebhookId,
    /// Target URL.
    pub url: String,
    /// Event kinds.
    pub events: Vec<String>,
    /// Created.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The signing secret: only when just created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One event's delivery to one webhook, with its latest attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    /// Delivery id (the `Tessera-Delivery` header).
    pub id: i64,
    /// The webhook.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub webhook: WebhookId,
    /// The event's sequence number.
    pub event_seq: i64,
    /// The event's kind.
    pub kind: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the latest attempt, if it got an answer.
    pub last_status: Option<u16>,
    /// Error of the latest attempt (connection refused, timeout, …).
    pub last_error: Option<String>,
    /// Next attempt, while pending.
    #[serde(with = "crate::time::rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_at: Option<Timestamp>,
    /// Created (with the event).
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// The body of a webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    /// Delivery id (also in `Tessera-Delivery`): the same for every retry,
    /// so receivers can drop duplicates.
    pub delivery: i64,
    /// The event.
    pub event: EventView,
}
