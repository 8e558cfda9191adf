//! `tessera check`: one-shot validation with full verification.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use tessera_protocol::wire::{ValidateRequest, ValidateResponse};
use tessera_protocol::{Expectations, LicenseToken, Status, TrustedKeys, VerifiedDocument};

use crate::output;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The authority's URL.
    #[arg(long, env = "TESSERA_SERVER", default_value = "http://127.0.0.1:7400")]
    server: String,
    /// The authority's public key (PASERK k4.public.…, as `tessera server`
    /// prints it). Repeat to trust several keys; `k4.public.…@<time>` pins a
    /// key retired then (`tessera keys` shows it). Never taken from the answer.
    #[arg(
        long = "public-key",
        env = "TESSERA_PUBLIC_KEY",
        required = true,
        value_delimiter = ','
    )]
    public_keys: Vec<String>,
    /// The license token (tsr_…), or - to read it from standard input.
    #[arg(env = "TESSERA_TOKEN")]
    token: String,
    /// Print the verified claims as JSON.
    #[arg(long, env = "TESSERA_JSON")]
    json: bool,
    /// The product the license must be of (refused otherwise:
    /// wrong_product). Default: any product.
    #[arg(long, env = "TESSERA_PRODUCT")]
    product: Option<String>,
}

fn random_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn validate(args: &CheckArgs) -> anyhow::Result<VerifiedDocument> {
    let token_text = if args.token == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
        text
    } else {
        args.token.clone()
    };
    // A typo is caught here, without a network call.
    let token = LicenseToken::parse(&token_text)?;
    let mut keys = TrustedKeys::new();
    for k in &args.public_keys {
        keys.pin(k).with_context(|| format!("--public-key {k:?}"))?;
    }
    let nonce = random_nonce();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .context("cannot set up the HTTP client")?;
    let url = format!("{}/v1/validate", args.server.trim_end_matches('/'));
    let response = http
        .post(&url)
        .json(&ValidateRequest {
            token: token.expose_secret().to_owned(),
            nonce: Some(nonce.clone()),
            ..ValidateRequest::default()
        })
        .send()
        .await
        .with_context(|| format!("cannot reach the authority at {}", args.server))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("reading the authority's answer")?;
    if !status.is_success() {
        return Err(crate::client::refusal(status, &bytes));
    }
    let answer: ValidateResponse = serde_json::from_slice(&bytes)
        .context("the authority's answer is not a validation answer")?;
    let expect = Expectations::for_token(token.fingerprint())
        .with_nonce(nonce)
        .with_product(args.product.clone());
    let verified = tessera_protocol::bundle::verify_any(
        answer.document.as_bytes(),
        &keys,
        &expect,
        Utc::now(),
    )
    .context("the authority's answer failed verification")?;
    Ok(verified)
}

pub async fn run(args: CheckArgs) -> ExitCode {
    let doc = match validate(&args).await {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let c = doc.claims();
    let now = Utc::now();
    // The document's status is as of signing; expiry is re-checked with the local clock.
    let expired_now = c.expires_at.is_some_and(|exp| exp <= now);
    let status = if c.status.is_valid() && expired_now {
        Status::Expired
    } else {
        c.status
    };
    let valid = status.is_valid();
    if args.json {
        let out = serde_json::json!({ "valid": valid, "status": status, "claims": c });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else if valid {
        println!(
            "valid ({status}): {}, plan {}, features [{}], expires {}, revision {}",
            c.customer.as_deref().unwrap_or("?"),
            c.plan.as_deref().unwrap_or("?"),
            c.features.join(", "),
            output::expiry(c.expires_at.as_ref()),
            c.rev
        );
    } else {
        let detail = match status {
            Status::Expired => format!(", expired {}", output::expiry(c.expires_at.as_ref())),
            Status::NotFound => ": the authority knows no license for this token".into(),
            _ => String::new(),
        };
        println!("not valid: {status}{detail} (revision {})", c.rev);
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
