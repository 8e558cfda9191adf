//! A fake authority: `POST /v1/validate` answered by a function the test
//! sets, signing with a key the test holds. For documents the real
//! authority would never send (rolled back, forged, expired, for another
//! token) and for failures (5xx, proxy pages, slowness).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tessera_protocol::clock::{Clock, ManualClock};
use tessera_protocol::wire::{ValidateRequest, ValidateResponse};
use tessera_protocol::{LicenseToken, PublicKey, SigningKey, StatusClaims, sign};

/// What the fake answers.
pub type Behaviour = Arc<dyn Fn(&Fake, &ValidateRequest, &HeaderMap) -> Response + Send + Sync>;

/// Shared state of a fake authority.
pub struct Fake {
    /// Its signing key (pin `key.public_key()` in the client).
    pub key: SigningKey,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    requests: AtomicUsize,
    behaviour: Mutex<Behaviour>,
    /// Revision `valid` answers carry.
    pub revision: AtomicUsize,
}

/// A running fake authority.
pub struct FakeAuthority {
    /// Base URL.
    pub url: String,
    /// Its state.
    pub fake: Arc<Fake>,
}

impl Fake {
    /// Claims a real authority would send for this request: active, revision
    /// `self.revision`, expiring in 30 days, refresh in 1 h, exp in 7 days.
    pub fn claims_for(&self, req: &ValidateRequest) -> StatusClaims {
        let now = self.clock.now();
        let tfp = LicenseToken::parse(&req.token)
            .map(|t| t.fingerprint())
            .expect("the client sent a valid token");
        StatusClaims {
            iid: req.instance_id.clone(),
            nonce: req.nonce.clone(),
            mfp: None,
            machine: None,
            rev: self.revision.load(Ordering::SeqCst) as u64,
            ..StatusClaims::sample(tfp, now)
        }
    }

    /// A 200 answer carrying `claims` signed with `key`.
    pub fn answer(claims: StatusClaims, key: &SigningKey) -> Response {
        let document = sign(&claims, key).unwrap();
        axum::Json(ValidateResponse {
            document,
            verdict: claims,
        })
        .into_response()
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Replace the behaviour.
    pub fn set(
        &self,
        behaviour: impl Fn(&Fake, &ValidateRequest, &HeaderMap) -> Response + Send + Sync + 'static,
    ) {
        *self.behaviour.lock().unwrap() = Arc::new(behaviour);
    }

    /// Answer with valid documents (the default behaviour).
    pub fn answer_valid(&self) {
        self.set(|f, req, _| Fake::answer(f.claims_for(req), &f.key));
    }

    /// Answer every request with this status, content type and body.
    /// Answer valid documents whose license expires `after` the signing.
    pub fn answer_expiring(&self, after: chrono::Duration) {
        self.set(move |f, req, _| {
            let mut claims = f.claims_for(req);
            claims.expires_at = Some(claims.iat + after);
            Fake::answer(claims, &f.key)
        });
    }

    pub fn answer_raw(&self, status: u16, content_type: &'static str, body: &'static str) {
        self.set(move |_, _, _| {
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", content_type)],
                body,
            )
                .into_response()
        });
    }

    /// The public key to pin.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key().clone()
    }
}

async fn validate(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    let Ok(req) = serde_json::from_slice::<ValidateRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    };
    let behaviour = fake.behaviour.lock().unwrap().clone();
    behaviour(&fake, &req, &headers)
}

impl FakeAuthority {
    /// Start on 127.0.0.1:0 with `clock`, answering valid documents.
    pub async fn start(clock: Arc<ManualClock>) -> Self {
        let fake = Arc::new(Fake {
            key: SigningKey::generate(&mut rand::rng()),
            clock,
            requests: AtomicUsize::new(0),
            behaviour: Mutex::new(Arc::new(
                |f: &Fake, req: &ValidateRequest, _: &HeaderMap| {
                    Fake::answer(f.claims_for(req), &f.key)
                },
            )),
            revision: AtomicUsize::new(1),
        });
        let app = Router::new()
            .route("/v1/validate", post(validate))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}"),
            fake,
        }
    }
}
