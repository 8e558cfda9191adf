//! Machines (docs/PROTOCOL.md §19): this machine's fingerprint, taking a
//! place by itself, and the activate/deactivate round trips.

use std::sync::Arc;

use tessera_protocol::wire::{ActivateRequest, machine_fingerprint_hash};
use tessera_protocol::{LicenseToken, Status, VerifiedDocument};

use crate::engine::{Evidence, Inner, random_nonce};
use crate::error::Error;
use crate::transport::Answer;
use crate::verdict::Verdict;

impl Inner {
    /// This machine's fingerprint for `token`: the configured one, or one
    /// derived from the host's machine id (else the persisted instance id)
    /// and the token, so it is no cross-vendor tracking id.
    pub(crate) fn fingerprint(&self, token: &LicenseToken) -> String {
        let instance = self.lock().instance_id.to_string();
        machine_fingerprint(self.settings.fingerprint.as_deref(), &instance, token)
    }

    /// A license that counts machines says this one has no place: take one
    /// (on start, or after a lease ran out) unless it gave its place up.
    pub(crate) fn should_activate(&self, doc: &VerifiedDocument) -> bool {
        let c = doc.claims();
        c.machine.is_some()
            && match c.status {
                Status::LeaseExpired => true,
                Status::NotActivated => !self.lock().machine_given_up,
                _ => false,
            }
    }

    /// A machine that held a place now has none (released by the vendor):
    /// it stays without one until asked ([`crate::Client::activate_machine`]).
    pub(crate) fn note_machine_ended(&self, doc: &VerifiedDocument) {
        if doc.claims().status == Status::NotActivated {
            let mut held = self.lock();
            let held_place = held
                .document
                .as_ref()
                .is_some_and(|d| d.claims().mfp.is_some() && d.claims().status.is_valid());
            if held_place {
                held.machine_given_up = true;
            }
        }
    }

    /// `POST /v1/machines/{action}` for this machine and apply the answer.
    pub(crate) async fn machine_round_trip(
        self: Arc<Self>,
        token: LicenseToken,
        action: &str,
        activating: bool,
    ) -> Result<Arc<Verdict>, Error> {
        let Some(transport) = &self.transport else {
            return Err(Error::NoServer);
        };
        let fingerprint = self.fingerprint(&token);
        let nonce = random_nonce();
        let components = match &self.settings.components {
            Some(given) => given.clone(),
            None => host_components(),
        };
        let request = ActivateRequest {
            token: token.expose_secret().to_owned(),
            fingerprint: fingerprint.clone(),
            components: hashed_components(&components, &token),
            hostname: host_name(),
            platform: Some(format!(
                "{}-{}",
                std::env::consts::OS,
                std::env::consts::ARCH
            )),
            nonce: Some(nonce.clone()),
            ..ActivateRequest::default()
        };
        let text = match transport.machine(action, &request).await {
            Ok(Answer::Document(text)) => text,
            Ok(Answer::NotModified) => {
                let e = Error::InvalidAnswer("304 to a machine request".into());
                self.record_failure(&e);
                return Err(e);
            }
            Err(e) => {
                self.record_failure(&e);
                return Err(e);
            }
        };
        let expect = self
            .settings
            .expect(&token)
            .with_machine(machine_fingerprint_hash(&fingerprint))
            .with_nonce(nonce);
        let doc = self.verified(&text, &expect)?;
        {
            let mut held = self.lock();
            held.machine_given_up = action == "deactivate";
        }
        self.accept(doc, activating.then_some(token), Evidence::Nonce)
            .await
    }
}

/// The configured fingerprint, or one derived from the host's machine id
/// (else the persisted `instance` id) and the token.
pub(crate) fn machine_fingerprint(
    explicit: Option<&str>,
    instance: &str,
    token: &LicenseToken,
) -> String {
    if let Some(fp) = explicit {
        return fp.to_owned();
    }
    let base = host_machine_id().unwrap_or_else(|| instance.to_owned());
    machine_fingerprint_hash(&format!("tessera-machine/1|{base}|{}", token.fingerprint()))
}

/// The host's machine id (systemd's `/etc/machine-id`), read once.
pub(crate) fn host_machine_id() -> Option<String> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.trim().to_owned())
            .find(|t| !t.is_empty())
    })
    .clone()
}

/// Components as sent: each hashed with the token (like the default
/// fingerprint, so none is a cross-vendor tracking id), duplicates dropped.
pub(crate) fn hashed_components(components: &[String], token: &LicenseToken) -> Vec<String> {
    let mut hashed: Vec<String> = components
        .iter()
        .map(|c| {
            machine_fingerprint_hash(&format!("tessera-component/1|{c}|{}", token.fingerprint()))
        })
        .collect();
    hashed.sort();
    hashed.dedup();
    hashed
}

/// The host's components that can be read: `hostname:`, `mac:` (the first
/// non-zero address of a network interface other than loopback), `cpu:`
/// (the model) and `disk:` (the root file system, as the kernel was told).
pub(crate) fn host_components() -> Vec<String> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let mut found = Vec::new();
    if let Some(h) = host_name() {
        found.push(format!("hostname:{h}"));
    }
    let mut macs: Vec<String> = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| read(&format!("{}/address", e.path().display())))
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty() && a.chars().any(|c| c != '0' && c != ':'))
        .collect();
    macs.sort();
    if let Some(mac) = macs.first() {
        found.push(format!("mac:{mac}"));
    }
    let cpu = read("/proc/cpuinfo").and_then(|info| {
        info.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
    });
    if let Some(cpu) = cpu.filter(|c| !c.is_empty()) {
        found.push(format!("cpu:{cpu}"));
    }
    let root = read("/proc/cmdline").and_then(|line| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("root="))
            .map(str::to_owned)
    });
    if let Some(root) = root {
        found.push(format!("disk:{root}"));
    }
    found
}

/// The host name, for the vendor's machine list.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_sent_hashed_per_license() {
        let (t1, t2) = (
            LicenseToken::generate(&mut rand::rng()),
            LicenseToken::generate(&mut rand::rng()),
        );
        let given = [
            "mac:00:11:22:33:44:55".to_owned(),
            "cpu:x".to_owned(),
            "cpu:x".to_owned(),
        ];
        let one = hashed_components(&given, &t1);
        assert_eq!(one.len(), 2, "duplicates dropped");
        assert!(
            one.iter().all(|h| !h.contains("00:11") && h.len() == 32),
            "{one:?}"
        );
        assert_eq!(one, hashed_components(&given, &t1), "stable");
        assert!(
            hashed_components(&given, &t2)
                .iter()
                .all(|h| !one.contains(h)),
            "per license"
        );
        // The host's own, where they can be read, are `kind:value`.
        for c in host_components() {
            assert!(
                ["hostname:", "mac:", "cpu:", "disk:"]
                    .iter()
                    .any(|k| c.starts_with(k)),
                "{c}"
            );
        }
    }
}
