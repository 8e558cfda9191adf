//! The typed admin client: one method per admin route, taking and
//! returning the wire types (`tessera_protocol::wire`). Routes are spelled
//! here and nowhere else in the CLI.

use anyhow::Context;
use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_protocol::LicenseId;
use tessera_protocol::wire::{
    DeliveryView, ErrorBody, EventView, ExportRequest, ExtendRequest, Fleet, IssueLicenseRequest,
    IssuedLicense, KeysResponse, LicenseExport, LicenseState, LicenseView, MachineList,
    MachineView, Page, PolicyInput, PolicyView, ReasonRequest, StateAction, UsageView,
    WebhookInput, WebhookView,
};

use crate::Connection;

/// HTTP client for the admin API. (No `Debug`: it holds the admin key.)
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// The authority's `{"error": {code, message}}` (or just its status) as an error.
pub(crate) fn refusal(status: reqwest::StatusCode, body: &[u8]) -> anyhow::Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => anyhow::anyhow!(
            "{} ({}, {})",
            body.error.message,
            status.as_u16(),
            body.error.code
        ),
        Err(_) => anyhow::anyhow!("the authority answered {status}"),
    }
}

fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read admin key file {}", path.display()))?;
    Ok(text.trim().to_owned())
}

impl AdminClient {
    /// A client for `conn`, with the admin key from (in order)
    /// `--admin-key-file`, `TESSERA_ADMIN_KEY`, `<data dir>/admin.key`.
    pub fn new(conn: &Connection) -> anyhow::Result<Self> {
        let key = if let Some(path) = &conn.admin_key_file {
            Some(read_key_file(path)?)
        } else if let Ok(key) = std::env::var("TESSERA_ADMIN_KEY") {
            Some(key.trim().to_owned())
        } else {
            let path = conn
                .data_dir
                .join(tessera_server::datadir::DataDir::ADMIN_KEY);
            path.exists().then(|| read_key_file(&path)).transpose()?
        };
        Self::with_key(&conn.server, key)
    }

    /// A client with an explicit key (or none, for public routes).
    pub fn with_key(server: &str, key: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_owned(),
            key,
        })
    }

    fn key(&self) -> anyhow::Result<&str> {
        self.key.as_deref().context(
            "no admin key: set TESSERA_ADMIN_KEY, pass --admin-key-file, \
             or run next to the server's data directory (tessera-data/admin.key)",
        )
    }

    /// Send, repeating a request the authority answered `503` with
    /// `Retry-After` (it says nothing was changed, e.g. its database
    /// connection dropped mid-transaction): up to 3 tries, waits capped at 5 s.
    async fn send_retrying(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        const TRIES: usize = 3;
        let mut req = req;
        let mut attempt = 1;
        loop {
            let again = req.try_clone();
            let response = req
                .send()
                .await
                .with_context(|| format!("cannot reach the authority at {}", self.base))?;
            let wait = (response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE)
                .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            match (wait, again) {
                (Some(secs), Some(next)) if attempt < TRIES => {
                    eprintln!("the authority asked to retry in {secs} s; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(secs.min(5))).await;
                    req = next;
                    attempt += 1;
                }
                _ => return Ok(response),
            }
        }
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        self.send_accepting(req, |_| false).await
    }

    /// Send; a success, or a status `also` accepts, is answered with `T`.
    async fn send_accepting<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        also: impl Fn(reqwest::StatusCode) -> bool,
    ) -> anyhow::Result<T> {
        let response = self.send_retrying(req).await?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("reading the authority's answer")?;
        if status.is_success() || also(status) {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("unexpected answer from the authority ({status})"));
        }
        Err(refusal(status, &bytes))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` carrying the admin key.
    fn authed(&self, method: Method, path: &str) -> anyhow::Result<RequestBuilder> {
        Ok(self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.key()?))
    }

    /// `GET path?q`, answered with `T`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        q: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.authed(Method::GET, path)?.query(q)).await
    }

    /// `POST path` with the JSON body `b`, answered with `T`.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        b: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.authed(Method::POST, path)?.json(b)).await
    }

    // ----- licenses -------------------------------------------------------

    /// `POST /v1/admin/licenses`.
    pub async fn issue(&self, req: &IssueLicenseRequest) -> anyhow::Result<IssuedLicense> {
        self.post("/v1/admin/licenses", req).await
    }

    /// `GET /v1/admin/licenses/{id}`.
    pub async fn license(&self, id: &LicenseId) -> anyhow::Result<LicenseView> {
        self.get(&format!("/v1/admin/licenses/{id}"), &()).await
    }

    /// `GET /v1/admin/licenses`, one page.
    pub async fn licenses(&self, q: &LicenseList) -> anyhow::Result<Page<LicenseView>> {
        self.get("/v1/admin/licenses", q).await
    }

    /// `POST /v1/admin/licenses/{id}/extend`.
    pub async fn extend(&self, id: &LicenseId, req: &ExtendRequest) -> anyhow::Result<LicenseView> {
        self.post(&format!("/v1/admin/licenses/{id}/extend"), req)
            .await
    }

    /// `POST /v1/admin/licenses/{id}/{suspend|reinstate|revoke}`.
    pub async fn set_state(
        &self,
        id: &LicenseId,
        action: StateAction,
        req: &ReasonRequest,
    ) -> anyhow::Result<LicenseView> {
        self.post(&format!("/v1/admin/licenses/{id}/{action}"), req)
            .await
    }

    /// `POST /v1/admin/licenses/{id}/export`.
    pub async fn export(
        &self,
        id: &LicenseId,
        req: &ExportRequest,
    ) -> anyhow::Result<LicenseExport> {
        self.post(&format!("/v1/admin/licenses/{id}/export"), req)
            .await
    }

    /// `POST /v1/admin/offline-activations`.
    pub async fn offline_activate(
        &self,
        req: &tessera_protocol::wire::OfflineActivationRequest,
    ) -> anyhow::Result<tessera_protocol::wire::OfflineActivation> {
        self.post("/v1/admin/offline-activations", req).await
    }

    /// `POST /v1/admin/sites`: the site and its first bundle.
    pub async fn create_site(
        &self,
        input: &tessera_protocol::wire::SiteInput,
    ) -> anyhow::Result<serde_json::Value> {
        self.post("/v1/admin/sites", input).await
    }

    /// `GET /v1/admin/sites`.
    pub async fn sites(&self) -> anyhow::Result<Vec<tessera_protocol::wire::SiteView>> {
        self.get("/v1/admin/sites", &()).await
    }

    /// `POST /v1/admin/sites/{site}/bundle`.
    pub async fn site_bundle(
        &self,
        site: &str,
    ) -> anyhow::Result<tessera_protocol::wire::SiteBundleFile> {
        self.post(&format!("/v1/admin/sites/{site}/bundle"), &())
            .await
    }

    /// `DELETE /v1/admin/sites/{site}`.
    pub async fn revoke_site(
        &self,
        site: &str,
    ) -> anyhow::Result<tessera_protocol::wire::SiteView> {
        let path = format!("/v1/admin/sites/{site}");
        self.send(self.authed(Method::DELETE, &path)?).await
    }

    /// `GET /v1/admin/licenses/{id}/instances`, one page.
    pub async fn fleet(&self, id: &LicenseId, limit: u32, offset: u64) -> anyhow::Result<Fleet> {
        self.get(
            &format!("/v1/admin/licenses/{id}/instances"),
            &[("limit", limit.to_string()), ("offset", offset.to_string())],
        )
        .await
    }

    /// `GET /v1/admin/licenses/{id}/machines`, one page.
    pub async fn machines(
        &self,
        id: &LicenseId,
        limit: u32,
        offset: u64,
    ) -> anyhow::Result<MachineList> {
        self.get(
            &format!("/v1/admin/licenses/{id}/machines"),
            &[("limit", limit.to_string()), ("offset", offset.to_string())],
        )
        .await
    }

    /// `DELETE /v1/admin/licenses/{id}/machines/{machine}`.
    pub async fn release(&self, id: &LicenseId, machine: &str) -> anyhow::Result<MachineView> {
        let path = format!("/v1/admin/licenses/{id}/machines/{machine}");
        self.send(self.authed(Method::DELETE, &path)?).await
    }

    /// `GET /v1/admin/licenses/{id}/usage`.
    pub async fn usage(&self, id: &LicenseId, days: u32) -> anyhow::Result<UsageView> {
        self.get(
            &format!("/v1/admin/licenses/{id}/usage"),
            &[("days", days.to_string())],
        )
        .await
    }

    /// `GET /v1/admin/licenses/{id}/quotas/{feature}`.
    pub async fn quota_usage(
        &self,
        id: &LicenseId,
        feature: &str,
        periods: u32,
    ) -> anyhow::Result<tessera_protocol::wire::QuotaUsageView> {
        self.get(
            &format!("/v1/admin/licenses/{id}/quotas/{feature}"),
            &[("periods", periods.to_string())],
        )
        .await
    }

    // ----- policies, events, keys ------------------------------------------

    /// `PATCH /v1/admin/policies/{name}`.
    pub async fn update_policy(
        &self,
        name: &str,
        update: &tessera_protocol::wire::PolicyUpdate,
        dry_run: bool,
    ) -> anyhow::Result<tessera_protocol::wire::PolicyUpdateView> {
        let req = self
            .authed(Method::PATCH, &format!("/v1/admin/policies/{name}"))?
            .query(&[("dry_run", dry_run)])
            .json(update);
        self.send(req).await
    }

    /// `POST /v1/admin/policies`.
    pub async fn create_policy(&self, input: &PolicyInput) -> anyhow::Result<PolicyView> {
        self.post("/v1/admin/policies", input).await
    }

    /// `GET /v1/admin/policies`.
    pub async fn policies(&self) -> anyhow::Result<Page<PolicyView>> {
        self.get("/v1/admin/policies", &()).await
    }

    /// `GET /v1/admin/events`: the newest `limit`, optionally of one license.
    pub async fn events(
        &self,
        license: Option<&LicenseId>,
        limit: u32,
    ) -> anyhow::Result<Page<EventView>> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(l) = license {
            query.push(("license", l.to_string()));
        }
        self.get("/v1/admin/events", &query).await
    }

    /// `GET /v1/admin/events?after=…`: up to `limit` events after `after`,
    /// oldest first.
    pub async fn events_after(&self, after: i64, limit: u32) -> anyhow::Result<Page<EventView>> {
        let query = [("after", after.to_string()), ("limit", limit.to_string())];
        self.get("/v1/admin/events", &query).await
    }

    /// `GET /v1/keys` (public: no admin key needed).
    pub async fn keys(&self) -> anyhow::Result<KeysResponse> {
        self.send(self.http.get(self.url("/v1/keys"))).await
    }

    // ----- webhooks ----------------------------------------------------------

    /// `POST /v1/admin/webhooks`.
    pub async fn create_webhook(&self, input: &WebhookInput) -> anyhow::Result<WebhookView> {
        self.post("/v1/admin/webhooks", input).await
    }

    /// `GET /v1/admin/webhooks`.
    pub async fn webhooks(&self) -> anyhow::Result<Page<WebhookView>> {
        self.get("/v1/admin/webhooks", &()).await
    }

    /// `DELETE /v1/admin/webhooks/{id}`.
    pub async fn remove_webhook(&self, id: &str) -> anyhow::Result<()> {
        self.delete(&format!("/v1/admin/webhooks/{id}")).await
    }

    /// `POST path` with the JSON body `b`: `T` whether the answer is a
    /// success or a `422` carrying `T` (an import batch's refused rows).
    pub(crate) async fn post_any<T: DeserializeOwned>(
        &self,
        path: &str,
        b: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send_accepting(self.authed(Method::POST, path)?.json(b), |s| {
            s == reqwest::StatusCode::UNPROCESSABLE_ENTITY
        })
        .await
    }

    /// `DELETE path`, answered with no content.
    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<()> {
        let response = self
            .send_retrying(self.authed(Method::DELETE, path)?)
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        Err(refusal(status, &bytes))
    }

    /// `GET /v1/admin/webhooks/{id}/deliveries`.
    pub async fn deliveries(&self, id: &str, limit: u32) -> anyhow::Result<Page<DeliveryView>> {
        self.get(
            &format!("/v1/admin/webhooks/{id}/deliveries"),
            &[("limit", limit.to_string())],
        )
        .await
    }
}

/// The query of `GET /v1/admin/licenses`.
#[derive(Debug, Default, Serialize)]
pub struct LicenseList {
    /// Page size.
    pub limit: u32,
    /// Only this customer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Only in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<LicenseState>,
    /// Only expiring within this duration (`30d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiring_within: Option<String>,
    /// Only this product's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// After this license id (the next page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
