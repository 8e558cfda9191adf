//! Bulk import and export (§30): rows checked like issuing checks a
//! request, each refusal with its line and reason; a batch written whole or
//! not at all, with the import's progress, so a rerun resumes after the
//! last committed batch.

use std::collections::{HashMap, HashSet};

use tessera_protocol::wire::{
    EventKind, ExportedLicense, ImportBatch, ImportProgress, ImportRow, ImportRowError,
    LicenseState, MachineInput,
};
use tessera_protocol::{CustomerId, LicenseId, LicenseToken, Timestamp, TokenHash};

use super::Changes;
use super::fields::{check_entitlements, check_text, policy_defaults};
use crate::access::Principal;
use crate::error::{Error, Result};
use crate::model::{License, LicensePage, LicenseQuery, NewEvent, NewLicense, Policy};

/// Rows per batch, at most: a batch is one transaction and one request
/// (the CLI sends 50,000 by default, cut at 24 MiB of JSON).
pub const MAX_BATCH_ROWS: usize = 100_000;
/// Largest metadata object of a row, serialised.
const MAX_METADATA_BYTES: usize = 8 * 1024;

/// A license to insert with the state it comes in.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The license.
    pub license: NewLicense,
    /// Its state.
    pub state: LicenseState,
}

/// What a batch's rows are checked against.
struct Known {
    policies: HashMap<String, Policy>,
    products: HashSet<String>,
    now: Timestamp,
}

impl Changes {
    /// Check a batch; unless it is a dry run and if every row is good,
    /// write it in one transaction with the import's progress. A batch the
    /// import already committed (a rerun after a crash) is not written
    /// twice: the answer is the progress as it stands.
    ///
    /// # Errors
    /// 422 `import_refused` with the rows' errors is the caller's to build
    /// from the answer's `errors`; here: 400 for a batch too large or out
    /// of order, the store's.
    pub async fn import_batch(
        &self,
        batch: ImportBatch,
        principal: &Principal,
    ) -> Result<ImportProgress> {
        check_import_id(&batch.import)?;
        if batch.rows.len() > MAX_BATCH_ROWS {
            return Err(Error::bad_request(
                "batch_too_large",
                format!("at most {MAX_BATCH_ROWS} rows per batch"),
            ));
        }
        if batch.next_row <= batch.first_row
            || batch
                .rows
                .iter()
                .any(|r| r.row < batch.first_row || r.row >= batch.next_row)
        {
            return Err(Error::bad_request(
                "invalid_batch",
                "every row's line must be in first_row ≤ row < next_row",
            ));
        }
        let (next_row, so_far) = self.shared.store.import_progress(&batch.import).await?;
        if !batch.dry_run && next_row >= batch.next_row {
            // Committed already, and sent again because its answer was
            // lost: its keys are its own licenses now, not duplicates.
            return Ok(ImportProgress {
                import: batch.import,
                next_row,
                imported: so_far,
                errors: Vec::new(),
            });
        }
        let known = Known {
            policies: self
                .shared
                .store
                .policies()
                .await?
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            products: self
                .shared
                .store
                .products()
                .await?
                .into_iter()
                .map(|(p, _)| p.name)
                .collect(),
            now: self.now(),
        };
        let mut errors = Vec::new();
        let mut good = Vec::with_capacity(batch.rows.len());
        let mut seen = HashSet::with_capacity(batch.rows.len());
        for row in &batch.rows {
            match imported(row, &known, principal) {
                Ok(license) if !seen.insert(license.license.token_hash.clone()) => {
                    errors.push(ImportRowError {
                        row: row.row,
                        reason: "the same key is on an earlier line of the file".into(),
                    });
                }
                Ok(license) => good.push((row.row, license)),
                Err(reason) => errors.push(ImportRowError {
                    row: row.row,
                    reason,
                }),
            }
        }
        let hashes: Vec<TokenHash> = good
            .iter()
            .map(|(_, l)| l.license.token_hash.clone())
            .collect();
        let taken = self.shared.store.existing_token_hashes(&hashes).await?;
        for (row, l) in &good {
            if taken.contains(&l.license.token_hash) {
                errors.push(ImportRowError {
                    row: *row,
                    reason: "this key already belongs to a license".into(),
                });
            }
        }
        errors.sort_by_key(|e| e.row);
        let mut progress = ImportProgress {
            import: batch.import.clone(),
            next_row,
            imported: so_far,
            errors,
        };
        if batch.dry_run || !progress.errors.is_empty() {
            return Ok(progress);
        }
        let licenses: Vec<Imported> = good.into_iter().map(|(_, l)| l).collect();
        let event = NewEvent {
            at: known.now,
            actor: principal.name.clone(),
            kind: EventKind::LicensesImported,
            before: None,
            after: Some(serde_json::json!({
                "import": batch.import,
                "rows": [batch.first_row, batch.next_row - 1],
                "licenses": licenses.len(),
                "first": licenses.first().map(|l| l.license.id.to_string()),
                "last": licenses.last().map(|l| l.license.id.to_string()),
            })),
        };
        let (next_row, imported) = self
            .shared
            .store
            .import_licenses(&batch, &licenses, event)
            .await?;
        progress.next_row = next_row;
        progress.imported = imported;
        Ok(progress)
    }

    /// Where import `id` stands (line 1, nothing imported, when unknown).
    ///
    /// # Errors
    /// 400 for a malformed id; the store's.
    pub async fn import_state(&self, id: &str) -> Result<ImportProgress> {
        check_import_id(id)?;
        let (next_row, imported) = self.shared.store.import_progress(id).await?;
        Ok(ImportProgress {
            import: id.to_owned(),
            next_row,
            imported,
            errors: Vec::new(),
        })
    }

    /// One page of every license as an export row, oldest first after
    /// `cursor`, of the products `principal` may see.
    ///
    /// # Errors
    /// The store's.
    pub async fn export_page(
        &self,
        cursor: Option<String>,
        limit: u32,
        principal: &Principal,
    ) -> Result<Vec<ExportedLicense>> {
        let q = LicenseQuery {
            products: principal.product_filter(None),
            page: LicensePage::After(cursor),
            limit,
            ..LicenseQuery::default()
        };
        Ok(self.licenses(&q).await?.iter().map(exported).collect())
    }
}

fn check_import_id(id: &str) -> Result<()> {
    if (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(Error::bad_request(
            "invalid_import",
            "an import id is 1–64 letters, digits, '-' or '_'",
        ))
    }
}

/// A row as the license it becomes, or the reason it cannot.
fn imported(
    row: &ImportRow,
    known: &Known,
    principal: &Principal,
) -> std::result::Result<Imported, String> {
    let reason = |e: Error| e.to_string();
    let (token_hash, token_last4) = match (&row.key, &row.key_sha256) {
        (Some(key), None) => {
            let token = LicenseToken::parse(key).map_err(|e| format!("key: {e}"))?;
            (token.hash(), token.last4().to_owned())
        }
        (None, Some(hash)) => {
            let hash = TokenHash::from_hex(hash)
                .map_err(|_| "key_sha256 is not 64 lower-case hex characters".to_owned())?;
            let last4 = row.key_last4.clone().unwrap_or_else(|| "????".into());
            if last4.chars().count() != 4 || !last4.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("key_last4 is four printable characters".into());
            }
            (hash, last4)
        }
        (None, None) => return Err("no key (give key, or key_sha256 from a backup)".into()),
        (Some(_), Some(_)) => return Err("give key or key_sha256, not both".into()),
    };
    let customer = row.customer.trim().to_owned();
    check_text("customer", &customer).map_err(reason)?;
    let plan = row.plan.trim().to_owned();
    check_text("plan", &plan).map_err(reason)?;
    if let Some(email) = &row.customer_email {
        check_text("customer_email", email).map_err(reason)?;
    }
    let policy_name = row.policy.as_deref().unwrap_or(Policy::DEFAULT_NAME);
    let policy = known
        .policies
        .get(policy_name)
        .ok_or_else(|| format!("unknown policy {policy_name:?}"))?;
    let product = super::products::product_of(policy, row.product.as_deref()).map_err(reason)?;
    if !known.products.contains(&product) {
        return Err(format!(
            "unknown product {product:?} (create it first: tessera product create)"
        ));
    }
    principal.may_use_product(&product).map_err(reason)?;
    let date =
        |field: &str, text: &Option<String>| -> std::result::Result<Option<Timestamp>, String> {
            let Some(text) = text.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
                return Ok(None);
            };
            let t = tessera_protocol::human::parse_date_or_time(text)
                .map_err(|e| format!("{field}: {e}"))?;
            if !tessera_protocol::time::is_supported(&t) {
                return Err(format!(
                    "{field} {text:?} is outside 1970-01-01 … 9999-12-31"
                ));
            }
            Ok(Some(t))
        };
    let valid_from = date("valid_from", &row.valid_from)?.unwrap_or(known.now);
    let expires_at = date("expires_at", &row.expires_at)?;
    if expires_at.is_some_and(|end| end <= valid_from) {
        return Err("expires_at is not after valid_from".into());
    }
    let (features, entitlements) = match row.features.as_deref() {
        Some(given) => check_entitlements(given, None, expires_at).map_err(reason)?,
        None => policy_defaults(&policy.features),
    };
    let machines = super::machine_rules::machine_settings(
        &MachineInput {
            max_machines: row.max_machines,
            ..MachineInput::default()
        },
        policy.machines,
    )
    .map_err(reason)?;
    let metadata = row.metadata.clone().unwrap_or_default();
    if serde_json::to_string(&metadata).map_or(0, |t| t.len()) > MAX_METADATA_BYTES {
        return Err(format!("metadata is over {MAX_METADATA_BYTES} bytes"));
    }
    let uuid = || uuid::Uuid::now_v7().to_string();
    Ok(Imported {
        license: NewLicense {
            id: LicenseId::from_uuid_text(&uuid()).map_err(|e| e.to_string())?,
            token_hash,
            token_last4,
            customer,
            customer_email: row.customer_email.clone(),
            new_customer_id: CustomerId::from_uuid_text(&uuid()).map_err(|e| e.to_string())?,
            policy_id: policy.id.clone(),
            plan,
            features,
            entitlements,
            max_users: row.max_users.or(policy.max_users),
            trial: policy.trial,
            valid_from,
            expires_at,
            auto_renew: None,
            machines,
            product,
            metadata,
        },
        state: row.state.unwrap_or(LicenseState::Active),
    })
}

/// A license as an export row: what an import takes back.
fn exported(l: &License) -> ExportedLicense {
    let features = l
        .features
        .iter()
        .map(|f| match l.entitlements.get(f).and_then(|e| e.expires_at) {
            Some(end) => format!("{f}@{}", tessera_protocol::time::format(&end)),
            None => f.clone(),
        })
        .collect();
    ExportedLicense {
        id: l.id.to_string(),
        revision: l.revision,
        created_at: l.created_at,
        row: ImportRow {
            row: 0,
            key: None,
            key_sha256: Some(l.token_hash.as_str().to_owned()),
            key_last4: Some(l.token_last4.clone()),
            customer: l.customer.clone(),
            customer_email: None,
            product: Some(l.product.clone()),
            policy: Some(l.policy.name.clone()),
            plan: l.plan.clone(),
            features: Some(features),
            valid_from: Some(tessera_protocol::time::format(&l.valid_from)),
            expires_at: l.expires_at.as_ref().map(tessera_protocol::time::format),
            max_users: l.max_users,
            max_machines: l.machines.max_machines,
            state: Some(l.state),
            metadata: (!l.metadata.is_empty()).then(|| l.metadata.clone()),
        },
    }
}
