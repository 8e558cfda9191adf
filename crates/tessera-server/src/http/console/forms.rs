//! The console's forms and queries, and their translation into the API's
//! requests (the same types the admin API takes).

use serde::Deserialize;
use tessera_protocol::wire::{
    ExtendRequest, IssueLicenseRequest, MachineInput, MachineMode, PolicyInput, RenewalBasis,
};

/// A form that carries the session's CSRF token (see `Posted`).
pub trait HasCsrf {
    /// The token the page put in the form.
    fn csrf(&self) -> &str;
}

macro_rules! has_csrf {
    ($($form:ty),*) => {
        $(impl HasCsrf for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
has_csrf!(
    CsrfForm,
    ExtendForm,
    ReasonForm,
    PolicyForm,
    IssueForm,
    OfflineForm
);

/// The offline activation form: a request file's text (or its code) and
/// how long the response lives.
#[derive(Debug, serde::Deserialize)]
pub struct OfflineForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub request: String,
    #[serde(default)]
    pub ttl: String,
}

/// A text field: `None` when blank.
pub fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    /// The admin key.
    #[serde(default)]
    pub key: String,
}

/// A form with nothing but the token (sign out).
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Extend: by a duration or to a date.
#[derive(Debug, Default, Deserialize)]
pub struct ExtendForm {
    #[serde(default)]
    csrf: String,
    /// A duration.
    #[serde(default)]
    pub by: String,
    /// A date.
    #[serde(default)]
    pub to: String,
}

impl ExtendForm {
    /// The API request.
    pub fn request(&self) -> ExtendRequest {
        ExtendRequest {
            to: optional(&self.to),
            by: optional(&self.by),
        }
    }
}

/// Suspend, reinstate, revoke: an optional reason.
#[derive(Debug, Default, Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    csrf: String,
    /// For the audit log.
    #[serde(default)]
    pub reason: String,
}

/// A new policy.
#[derive(Debug, Default, Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    features: String,
    #[serde(default)]
    refresh_interval: String,
    #[serde(default)]
    offline_grace: String,
    #[serde(default)]
    renewal_basis: String,
    #[serde(default)]
    trial: Option<String>,
    #[serde(default)]
    auto_renew: Option<String>,
    #[serde(default)]
    renew_before: String,
    #[serde(default)]
    on_expiry: String,
    #[serde(default)]
    enforcement: String,
    #[serde(flatten)]
    machines: MachineFields,
}

impl PolicyForm {
    /// The API request, or the sentence to show when the basis is not
    /// one the form offers.
    pub fn input(&self) -> Result<PolicyInput, String> {
        let renewal_basis = self
            .renewal_basis
            .parse::<RenewalBasis>()
            .map_err(|_| format!("Unknown renewal basis {:?}.", self.renewal_basis))?;
        let on_expiry = match self.on_expiry.as_str() {
            "" => tessera_protocol::wire::OnExpiry::default(),
            text => text
                .parse()
                .map_err(|_| format!("Unknown choice on expiry {text:?}."))?,
        };
        let enforcement = match self.enforcement.as_str() {
            "" => tessera_protocol::wire::Enforcement::default(),
            text => text
                .parse()
                .map_err(|_| format!("Unknown enforcement {text:?}."))?,
        };
        Ok(PolicyInput {
            name: self.name.clone(),
            product: optional(&self.product),
            duration: optional(&self.duration),
            features: list(&self.features),
            max_users: None,
            trial: self.trial.is_some(),
            refresh_interval: optional(&self.refresh_interval),
            offline_grace: optional(&self.offline_grace),
            renewal_basis: Some(renewal_basis),
            auto_renew: self.auto_renew.is_some(),
            auto_renew_period: None,
            renew_before: optional(&self.renew_before),
            on_expiry,
            enforcement,
            machines: self.machines.input().map_err(str::to_owned)?,
        })
    }
}

/// The machine fields of the policy and issue forms.
#[derive(Debug, Default, Deserialize)]
pub struct MachineFields {
    #[serde(default)]
    pub max_machines: String,
    #[serde(default)]
    pub floating: Option<String>,
    #[serde(default)]
    pub lease_ttl: String,
    #[serde(default)]
    pub max_borrow: String,
}

impl MachineFields {
    /// The API's machine settings (blank fields: the policy's or the
    /// defaults), or the sentence to show.
    pub fn input(&self) -> Result<MachineInput, &'static str> {
        let max_machines = optional(&self.max_machines)
            .map(|n| n.parse::<u32>())
            .transpose()
            .map_err(|_| "The machine limit must be a whole number.")?;
        Ok(MachineInput {
            max_machines,
            machine_mode: self.floating.is_some().then_some(MachineMode::Floating),
            lease_ttl: optional(&self.lease_ttl),
            max_borrow: optional(&self.max_borrow),
            fingerprint_match: None,
        })
    }
}

/// The issue form's values (kept when the form comes back with an error).
#[derive(Debug, Default, Deserialize)]
pub struct IssueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub customer: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub features: String,
    #[serde(default)]
    pub max_users: String,
    #[serde(default)]
    pub duration: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default)]
    pub perpetual: Option<String>,
    #[serde(default)]
    pub trial: Option<String>,
    #[serde(default)]
    pub auto_renew: Option<String>,
    #[serde(flatten)]
    pub machines: MachineFields,
}

impl IssueForm {
    /// The form as first shown: a year on the default policy.
    pub fn blank() -> Self {
        Self {
            duration: "365d".into(),
            policy: crate::model::Policy::DEFAULT_NAME.into(),
            ..Self::default()
        }
    }

    /// The API request, or the sentence to show when a field is not a
    /// number.
    pub fn request(&self) -> Result<IssueLicenseRequest, &'static str> {
        let max_users = match optional(&self.max_users) {
            None => None,
            Some(n) => Some(
                n.parse::<u32>()
                    .map_err(|_| "The seat limit must be a whole number.")?,
            ),
        };
        let perpetual = self.perpetual.is_some();
        let expires_at = if perpetual {
            None
        } else {
            optional(&self.expires_at)
        };
        Ok(IssueLicenseRequest {
            customer: self.customer.clone(),
            customer_email: optional(&self.email),
            plan: self.plan.clone(),
            policy: optional(&self.policy),
            product: optional(&self.product),
            metadata: None,
            features: optional(&self.features).map(|f| list(&f)),
            max_users,
            trial: self.trial.is_some().then_some(true),
            duration: if perpetual || expires_at.is_some() {
                None
            } else {
                optional(&self.duration)
            },
            expires_at,
            perpetual,
            auto_renew: self.auto_renew.is_some().then_some(true),
            machines: self.machines.input()?,
        })
    }
}

/// The licenses list's query.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub expiring: String,
    #[serde(default)]
    pub product: String,
    #[serde(default, skip_serializing)]
    pub page: Option<u32>,
}

impl ListQuery {
    /// The query again, without the page (for the pager's links).
    pub fn without_page(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

/// A license page's query: what was just done, and the fleet page.
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: String,
    /// Installations skipped (the fleet table is paginated).
    #[serde(default)]
    pub offset: u64,
}

/// The events page's query.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub before: Option<i64>,
}

/// The dashboard's query: one product's counts.
#[derive(Debug, Default, Deserialize)]
pub struct ProductQuery {
    #[serde(default)]
    pub product: String,
}

impl ProductQuery {
    /// The product asked for, if any.
    pub fn product(&self) -> Option<&str> {
        Some(self.product.trim()).filter(|p| !p.is_empty())
    }
}
