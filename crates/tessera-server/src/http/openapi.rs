//! `/openapi.json`: assembled from each router's `#[utoipa::path]`
//! annotations, with the wire types' schemas from `tessera-protocol`
//! (feature `openapi`). A test compares it with the routers' routes.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The whole document.
#[must_use]
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Root::openapi();
    doc.merge(super::public::PublicApi::openapi());
    doc.merge(super::admin::AdminApi::openapi());
    doc.merge(super::machines::MachinesApi::openapi());
    doc.merge(super::machines::MachinesAdminApi::openapi());
    doc.merge(super::quotas::QuotasApi::openapi());
    doc.merge(super::quotas::QuotasAdminApi::openapi());
    doc.merge(super::trials::TrialsApi::openapi());
    doc.merge(super::policies::PoliciesAdminApi::openapi());
    doc.merge(super::offline::OfflineAdminApi::openapi());
    doc.merge(super::sites::SitesAdminApi::openapi());
    doc.merge(super::access::AccessAdminApi::openapi());
    doc.merge(super::import::ImportAdminApi::openapi());
    doc.merge(super::sites::SitesApi::openapi());
    doc.merge(super::backstage::BackstageApi::openapi());
    doc
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera license authority",
        description = "Validations answered with Ed25519-signed status documents (PASETO v4.public), \
                       changes pushed over server-sent events, and the admin API. Errors are \
                       always `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&Security),
    tags(
        (name = "public", description = "What licensed products call"),
        (name = "admin", description = "The vendor's admin API: `Authorization: Bearer tsa_…`"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    )
)]
struct Root;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "license_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
