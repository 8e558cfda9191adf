//! Offline activation (docs/PROTOCOL.md §25): an isolated machine's
//! request, carried by hand, answered with a document bound to that
//! machine and to the request's nonce, taking a place like an online
//! activation.

use tessera_protocol::offline::OfflineRequest;
use tessera_protocol::wire::{LicenseState, OfflineActivation, OfflineActivationRequest};

use super::Machines;
use super::fields::lifetime_field;
use crate::error::{Error, Result};

impl Machines {
    /// Answer an offline activation request.
    ///
    /// # Errors
    /// 400 `malformed` for a request that does not read back (a misread
    /// character fails its checksum), 404 when no license has its token,
    /// 409 `ambiguous_token` when two do, 409 `license_revoked`, 422 for a
    /// bad `ttl` or a floating license.
    pub async fn offline_activation(
        &self,
        req: &OfflineActivationRequest,
        actor: &str,
    ) -> Result<OfflineActivation> {
        let ttl = lifetime_field("ttl", &req.ttl)?;
        let request = OfflineRequest::decode(&req.request)?;
        let mut found = self
            .shared
            .store
            .licenses_by_token_fingerprint(&request.tfp)
            .await?;
        let license = match found.len() {
            0 => {
                return Err(Error::not_found(
                    "license",
                    format!("token {}", request.tfp),
                ));
            }
            1 => found.remove(0),
            _ => {
                return Err(Error::conflict(
                    "ambiguous_token",
                    "two licenses share this token fingerprint: activate the machine online, \
                     or export the license for it",
                ));
            }
        };
        if license.state == LicenseState::Revoked {
            return Err(Error::conflict(
                "license_revoked",
                "a revoked license cannot be activated offline",
            ));
        }
        let id = license.id.to_string();
        let signed = self
            .activate_offline(
                license,
                request.mfp,
                request.nonce,
                ttl,
                request.app_version,
            )
            .await?;
        let claims = &signed.claims;
        tracing::info!(license = %id, actor, status = claims.status.as_str(), "offline activation answered");
        Ok(OfflineActivation {
            format: OfflineActivation::FORMAT.to_owned(),
            license: id,
            machine: claims.machine.as_ref().and_then(|m| m.id.clone()),
            status: claims.status,
            valid_until: claims.exp,
            document: signed.document.clone(),
        })
    }
}
