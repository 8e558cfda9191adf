//! Installations: the instance limit and the sightings every path records.

use std::sync::Arc;
use tessera_protocol::wire::EventKind;

use tessera_protocol::InstanceId;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::instances::{Admission, InstanceGate, InstanceRecorder};
use crate::metrics::Metrics;
use crate::model::{InstanceSeen, License, NewEvent};
use crate::store::Store;

/// Admits installations up to the license's limit and records where each
/// was seen (batched).
#[derive(Debug)]
pub struct Installations {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    gate: InstanceGate,
    recorder: InstanceRecorder,
}

impl Installations {
    /// Installations over `store`, with the `gate`'s limit.
    #[must_use]
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        gate: InstanceGate,
    ) -> Self {
        Self {
            recorder: InstanceRecorder::new(store.clone()),
            store,
            clock,
            metrics,
            gate,
        }
    }

    /// The sightings not yet written (flushed by the server's background
    /// task and at shutdown).
    #[must_use]
    pub fn recorder(&self) -> &InstanceRecorder {
        &self.recorder
    }

    /// The limit and its activity window.
    #[must_use]
    pub fn gate(&self) -> &InstanceGate {
        &self.gate
    }

    /// Note a sighting; written at once when the batch is full.
    ///
    /// # Errors
    /// The store's, when the batch is written.
    pub async fn note(&self, seen: InstanceSeen) -> Result<()> {
        if self.recorder.note(seen) {
            self.recorder.flush().await?;
        }
        Ok(())
    }

    /// Whether `instance` of `license` is admitted; a refusal past the
    /// limit is recorded in the audit log (once an hour per instance).
    ///
    /// # Errors
    /// The store's.
    pub async fn admit(&self, license: &License, instance: &InstanceId) -> Result<bool> {
        let now = self.clock.now();
        match self
            .gate
            .admit(&license.id, instance.as_str(), now, &self.recorder)
            .await?
        {
            Admission::Admitted => Ok(true),
            Admission::Refused { first } => {
                self.metrics.validation("instance_limit");
                if first {
                    tracing::warn!(license = %license.id, instance = instance.as_str(), "instance refused: the license's instance limit is reached");
                    self.store
                        .append_event(
                            Some((&license.id, license.revision)),
                            NewEvent {
                                at: now,
                                actor: "authority".to_owned(),
                                kind: EventKind::LicenseInstanceRefused,
                                before: None,
                                after: Some(serde_json::json!({
                                    "instance_id": instance.as_str(),
                                    "max_instances": self.gate.max(),
                                })),
                            },
                        )
                        .await?;
                }
                Ok(false)
            }
        }
    }

    /// 403 for an installation past the instance limit (streams, reports).
    ///
    /// # Errors
    /// 403 `instance_limit`; the store's.
    pub async fn require_admitted(&self, license: &License, instance: &InstanceId) -> Result<()> {
        if self.admit(license, instance).await? {
            Ok(())
        } else {
            Err(Error::Forbidden {
                code: "instance_limit",
                message: format!(
                    "the license's limit of {} installations is reached; validate to get the signed refusal",
                    self.gate.max().unwrap_or(0)
                ),
            })
        }
    }
}
