//! The public API a relay serves to the instances of its site — the same
//! routes and shapes as the authority's (docs/PROTOCOL.md §8–§12, §19):
//! `/v1/validate`, `/v1/watch`, `/v1/machines/{activate,heartbeat,
//! deactivate}`, `/v1/instances/ack`, `/v1/usage` — plus `/v1/relay/status`
//! and `/v1/relay/sync` for relays below. No SQL here: places go through
//! [`crate::places`], answers through [`crate::answer`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::de::DeserializeOwned;
use tessera_protocol::bundle::BundleLicense;
use tessera_protocol::ids::check_nonce;
use tessera_protocol::wire::{
    AckRequest, ActivateRequest, MachineRequest, RelaySyncRequest, UsageRequest, ValidateRequest,
    ValidateResponse, check_fingerprint, machine_fingerprint_hash,
};
use tessera_protocol::{InstanceId, LicenseToken, Status, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::answer::{self, Echo, Seat};
use crate::error::{Error, Result};
use crate::places::Outcome;
use crate::{Held, Relay};

/// Bodies are small: 64 KiB like the authority's public routes.
const BODY_LIMIT: usize = 64 * 1024;
/// Streams send a comment this often, so idle connections stay open.
const KEEP_ALIVE: StdDuration = StdDuration::from_secs(15);

#[derive(Clone)]
struct AppState {
    relay: Arc<Relay>,
    shutdown: CancellationToken,
}

/// The relay's routes.
pub fn router(relay: Arc<Relay>, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/v1/validate", post(validate))
        .route("/v1/machines/activate", post(activate))
        .route("/v1/machines/heartbeat", post(heartbeat))
        .route("/v1/machines/deactivate", post(deactivate))
        .route("/v1/instances/ack", post(ack))
        .route("/v1/usage", post(usage))
        .route("/v1/watch", get(watch))
        .route("/v1/relay/status", get(status))
        .route("/v1/relay/sync", post(sync))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { Error::NotFound("no such route on a relay".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(AppState { relay, shutdown })
}

/// Parse a JSON body, or 400 `malformed` saying why.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::bad_request("malformed", format!("request body: {e}")))
}

fn token(text: &str) -> Result<LicenseToken> {
    LicenseToken::parse(text).map_err(|e| Error::bad_request("malformed", e.to_string()))
}

fn instance(text: Option<&str>) -> Result<Option<String>> {
    text.map(|t| {
        InstanceId::parse(t)
            .map(|_| t.to_owned())
            .map_err(|e| Error::bad_request("malformed", e.to_string()))
    })
    .transpose()
}

fn nonce(text: Option<&str>) -> Result<Option<String>> {
    text.map(|n| {
        check_nonce(n)
            .map(|()| n.to_owned())
            .map_err(|e| Error::bad_request("malformed", e.to_string()))
    })
    .transpose()
}

fn machine_hash(fingerprint: &str) -> Result<String> {
    check_fingerprint("fingerprint", fingerprint)
        .map_err(|e| Error::bad_request("invalid_fingerprint", e.to_string()))?;
    Ok(machine_fingerprint_hash(fingerprint))
}

/// The license counts machines (it has a share or is floating).
fn counts(license: &BundleLicense) -> bool {
    license.machine_mode.is_some()
}

/// Sign and send claims as `{document, verdict}`.
fn answer(relay: &Relay, held: &Held, claims: tessera_protocol::StatusClaims) -> Result<Response> {
    let slot = claims.mfp.clone();
    let (document, verdict) = match &slot {
        // Answers for one machine are signed a second apart (§19).
        Some(mfp) => relay.sign_for_machine(claims, mfp, held)?,
        None => {
            let document =
                tessera_protocol::bundle::sign_relayed(&claims, relay.key(), &held.text)?;
            (document, claims)
        }
    };
    Ok(Json(ValidateResponse { document, verdict }).into_response())
}

fn seat(outcome: Outcome, mfp: String, used: u32) -> Seat {
    Seat {
        mfp: Some(mfp),
        place: match outcome {
            Outcome::Place(m) => Ok((
                m.id,
                Timestamp::from_timestamp(m.activated_at, 0).unwrap_or_default(),
                m.lease_expires_at
                    .and_then(Timestamp::from_timestamp_millis),
            )),
            Outcome::Refused(status) => Err(status),
        },
        used,
        announcement: false,
    }
}

async fn validate(State(s): State<AppState>, bytes: Bytes) -> Result<Response> {
    let req: ValidateRequest = body(&bytes)?;
    let token = token(&req.token)?;
    let echo = Echo {
        instance_id: instance(req.instance_id.as_deref())?,
        nonce: nonce(req.nonce.as_deref())?,
    };
    let relay = &s.relay;
    let now = relay.now()?;
    let held = relay.current(now)?;
    let tfp = token.fingerprint();
    let Some(license) = held.bundle.license(&tfp) else {
        let claims = answer::not_found(tfp, echo, held.bundle.exp, now);
        return answer(relay, &held, claims);
    };
    if let Some(iid) = &echo.instance_id {
        relay.note_sighting(tfp.as_str(), iid, None, req.usage.map(|u| u.users), now);
    }
    let seat = if counts(license) {
        Some(match req.fingerprint.as_deref() {
            None => Seat {
                mfp: None,
                place: Err(Status::NotActivated),
                used: relay.places().used(tfp.as_str(), now).await,
                announcement: false,
            },
            Some(fp) => {
                let mfp = machine_hash(fp)?;
                let (outcome, used, freed) = relay.places().heartbeat(license, &mfp, now).await?;
                if freed {
                    relay.announce(tfp.as_str());
                }
                seat(outcome, mfp, used)
            }
        })
    } else {
        None
    };
    // A polling product's request (no nonce, no machine) may be answered
    // with the document signed for it moments ago, as at the authority.
    let reusable = seat.is_none() && echo.nonce.is_none();
    let key = format!(
        "{}:{}:{}",
        tfp.as_str(),
        echo.instance_id.as_deref().unwrap_or(""),
        held.bundle.iat.timestamp()
    );
    if reusable && let Some(body) = relay.reused(&key, license, now) {
        return Ok(([("content-type", "application/json")], body).into_response());
    }
    let claims = answer::claims(license, echo, seat, held.bundle.exp, now);
    if !reusable {
        return answer(relay, &held, claims);
    }
    let document = tessera_protocol::bundle::sign_relayed(&claims, relay.key(), &held.text)?;
    let body = Bytes::from(
        serde_json::to_vec(&ValidateResponse {
            document,
            verdict: claims,
        })
        .map_err(|e| Error::Config(format!("answer: {e}")))?,
    );
    relay.keep_for_reuse(key, now, body.clone());
    Ok(([("content-type", "application/json")], body).into_response())
}

async fn machine_route(
    s: AppState,
    req: ActivateRequest,
    action: &'static str,
) -> Result<Response> {
    let relay = &s.relay;
    let now = relay.now()?;
    let held = relay.current(now)?;
    let echo = Echo {
        instance_id: None,
        nonce: nonce(req.nonce.as_deref())?,
    };
    let mfp = machine_hash(&req.fingerprint)?;
    let tfp = token(&req.token)?.fingerprint();
    let Some(license) = held.bundle.license(&tfp) else {
        return answer(
            relay,
            &held,
            answer::not_found(tfp, echo, held.bundle.exp, now),
        );
    };
    if !counts(license) {
        if action == "deactivate" {
            return Err(Error::Conflict {
                code: "not_activated",
                message: "this license counts no machines".into(),
            });
        }
        return answer(
            relay,
            &held,
            answer::claims(license, echo, None, held.bundle.exp, now),
        );
    }
    let tfp = license.tfp.as_str();
    let (outcome, used) = match action {
        "activate" => {
            // Only freed places are announced (machines waiting for one
            // ask again); a place taken changes nothing for the others,
            // and 30 machines asking at every activation is a storm.
            relay
                .places()
                .activate(
                    license,
                    &mfp,
                    req.name.clone().or(req.hostname.clone()),
                    now,
                )
                .await?
        }
        "heartbeat" => {
            let (outcome, used, freed) = relay.places().heartbeat(license, &mfp, now).await?;
            if freed {
                relay.announce(tfp);
            }
            (outcome, used)
        }
        _ => {
            if !relay.places().deactivate(license, &mfp, now).await? {
                return Err(Error::Conflict {
                    code: "not_activated",
                    message: "this machine holds no place".into(),
                });
            }
            relay.announce(tfp);
            let used = relay.places().used(tfp, now).await;
            (Outcome::Refused(Status::NotActivated), used)
        }
    };
    let claims = answer::claims(
        license,
        echo,
        Some(seat(outcome, mfp, used)),
        held.bundle.exp,
        now,
    );
    answer(relay, &held, claims)
}

async fn activate(State(s): State<AppState>, bytes: Bytes) -> Result<Response> {
    let req: ActivateRequest = body(&bytes)?;
    machine_route(s, req, "activate").await
}

fn as_activate(req: MachineRequest) -> ActivateRequest {
    ActivateRequest {
        token: req.token,
        fingerprint: req.fingerprint,
        nonce: req.nonce,
        ..ActivateRequest::default()
    }
}

async fn heartbeat(State(s): State<AppState>, bytes: Bytes) -> Result<Response> {
    let req: MachineRequest = body(&bytes)?;
    machine_route(s, as_activate(req), "heartbeat").await
}

async fn deactivate(State(s): State<AppState>, bytes: Bytes) -> Result<Response> {
    let req: MachineRequest = body(&bytes)?;
    machine_route(s, as_activate(req), "deactivate").await
}

/// The license of a report's token, or 401.
fn known(relay: &Relay, token_text: &str, now: Timestamp) -> Result<String> {
    let held = relay.current(now)?;
    let tfp = token(token_text)?.fingerprint();
    held.bundle
        .license(&tfp)
        .map(|l| l.tfp.as_str().to_owned())
        .ok_or_else(|| Error::Unauthorized("this token is not one of this site's licenses".into()))
}

async fn ack(State(s): State<AppState>, bytes: Bytes) -> Result<StatusCode> {
    let req: AckRequest = body(&bytes)?;
    instance(Some(&req.instance_id))?;
    let now = s.relay.now()?;
    let tfp = known(&s.relay, &req.token, now)?;
    s.relay
        .note_sighting(&tfp, &req.instance_id, Some(req.revision), None, now);
    Ok(StatusCode::NO_CONTENT)
}

async fn usage(State(s): State<AppState>, bytes: Bytes) -> Result<StatusCode> {
    let req: UsageRequest = body(&bytes)?;
    instance(Some(&req.instance_id))?;
    let now = s.relay.now()?;
    let tfp = known(&s.relay, &req.token, now)?;
    s.relay
        .note_sighting(&tfp, &req.instance_id, None, Some(req.users), now);
    Ok(StatusCode::NO_CONTENT)
}

/// One stream event for the license: its document (`status`), or for a
/// license that counts machines the announcement (`machines`).
async fn stream_event(relay: &Relay, tfp: &str) -> Option<Event> {
    let now = relay.now().ok()?;
    let held = relay.current(now).ok()?;
    let license = held
        .bundle
        .licenses
        .iter()
        .find(|l| l.tfp.as_str() == tfp)?;
    let (kind, seat) = if counts(license) {
        let used = relay.places().used(tfp, now).await;
        (
            "machines",
            Some(Seat {
                mfp: None,
                place: Err(Status::NotActivated),
                used,
                announcement: true,
            }),
        )
    } else {
        ("status", None)
    };
    let claims = answer::claims(license, Echo::default(), seat, held.bundle.exp, now);
    let rev = claims.rev;
    let document = tessera_protocol::bundle::sign_relayed(&claims, relay.key(), &held.text).ok()?;
    Some(
        Event::default()
            .event(kind)
            .id(rev.to_string())
            .data(document),
    )
}

async fn watch(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Error::Unauthorized("Authorization: Bearer <license token> is required".into())
        })?;
    let now = s.relay.now()?;
    let tfp = known(&s.relay, bearer, now)
        .map_err(|_| Error::Unauthorized("this token is not one of this site's licenses".into()))?;
    if let Some(iid) = headers
        .get("tessera-instance")
        .and_then(|v| v.to_str().ok())
    {
        instance(Some(iid))?;
        s.relay.note_sighting(&tfp, iid, None, None, now);
    }
    let relay = Arc::clone(&s.relay);
    let first = stream_event(&relay, &tfp).await;
    let changes = tokio_stream_of(relay.subscribe());
    let refresh = stream::unfold((), |()| async {
        tokio::time::sleep(
            answer::REFRESH
                .to_std()
                .unwrap_or(StdDuration::from_secs(3600))
                / 2,
        )
        .await;
        Some(((), ()))
    });
    let wanted = tfp.clone();
    let relay_for_changes = Arc::clone(&relay);
    let pushed = stream::select(
        changes.filter_map(move |change| {
            let hit = change.tfp.as_deref().is_none_or(|t| t == wanted);
            let relay = Arc::clone(&relay_for_changes);
            let tfp = wanted.clone();
            async move {
                if hit {
                    stream_event(&relay, &tfp).await
                } else {
                    None
                }
            }
        }),
        refresh.filter_map(move |()| {
            let relay = Arc::clone(&relay);
            let tfp = tfp.clone();
            async move { stream_event(&relay, &tfp).await }
        }),
    );
    let events = stream::iter(first)
        .chain(pushed)
        .map(Ok)
        .take_until(s.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("")))
}

/// A broadcast receiver as a stream (a lagging stream skips to the latest:
/// it then re-sends the current document, which is all a change needs).
fn tokio_stream_of(
    rx: tokio::sync::broadcast::Receiver<crate::Change>,
) -> impl Stream<Item = crate::Change> {
    stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(change) => Some((change, rx)),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                Some((crate::Change { tfp: None }, rx))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    })
}

async fn status(State(s): State<AppState>) -> Result<Json<serde_json::Value>> {
    Ok(Json(crate::upstream::status(&s.relay).await?))
}

async fn sync(
    State(s): State<AppState>,
    bytes: Bytes,
) -> Result<Json<tessera_protocol::wire::SiteBundleFile>> {
    let req: RelaySyncRequest = body(&bytes)?;
    Ok(Json(crate::upstream::sync_child(&s.relay, &req).await?))
}
