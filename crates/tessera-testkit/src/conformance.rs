//! The language-neutral conformance suite (`tests/conformance/cases.json`):
//! what every client — the Rust SDK, and the native clients to come — must
//! make of a held state, an offered document and a clock, as JSON cases.
//! Made from the hostile fixtures' fixed keys, token and times, so the file
//! comes out byte for byte the same; a test checks the committed one still
//! matches this generator.
//!
//! A case: the client holds `held` (a verified document and its clock
//! mark), is offered `offer` (an unsolicited document: no nonce, judged at
//! `offer.at`) if there is one, whose outcome must be `expect_offer`; then
//! its clock reads each `timeline` step in order, and the verdict must be
//! the step's `state`, `reason` and `revision`. Marks move as
//! docs/PROTOCOL.md §6 says (a client advances its mark with the clock
//! unless the clock was set back).

use base64ct::{Base64, Encoding};
use chrono::Duration;
use serde_json::{Value, json};
use tessera_protocol::Timestamp;

use crate::hostile::{self, Expect, HELD_REV, claims, now, signed};

/// The file's format tag.
pub const FORMAT: &str = "tessera-conformance/1";

fn at(t: Timestamp) -> String {
    tessera_protocol::time::format(&t)
}

fn step(now: Timestamp, state: &str, reason: Option<&str>, revision: u64) -> Value {
    json!({"now": at(now), "state": state, "reason": reason, "revision": revision})
}

/// The whole suite as JSON.
#[must_use]
pub fn suite() -> Value {
    let t = now();
    let held = hostile::held();
    let held_iat = t - Duration::minutes(1);
    let mut cases = Vec::new();

    // Every hostile (and control) document, offered to a client holding
    // revision 5: refused with its exact error, rolled back, or taken.
    for f in hostile::fixtures().into_iter().filter(|f| f.name != "held") {
        let (expect, revision) = match f.expect {
            Expect::Refused(code) => (format!("refused:{code}"), HELD_REV),
            Expect::RolledBack => ("rolled_back".to_owned(), HELD_REV),
            Expect::Accepted => ("accepted".to_owned(), HELD_REV + 1),
        };
        cases.push(json!({
            "name": format!("document/{}", f.name),
            "what": f.what,
            "held": {"document": held, "high_water_mark": at(held_iat)},
            "offer": {"document_b64": Base64::encode_string(&f.bytes), "at": at(t)},
            "expect_offer": expect,
            "timeline": [step(t, "valid", None, revision)],
        }));
    }

    // The clock: set back (within the 1 h tolerance, then beyond it), set
    // ahead, corrected; a mark removed from disk.
    let clock = |name: &str, what: &str, mark: Option<Timestamp>, timeline: Vec<Value>| {
        json!({
            "name": format!("clock/{name}"),
            "what": what,
            "held": {"document": held, "high_water_mark": mark.map(at)},
            "timeline": timeline,
        })
    };
    let valid = |now| step(now, "valid", None, HELD_REV);
    let tampered = |now| step(now, "unverified", Some("clock_tampered"), HELD_REV);
    cases.extend([
        clock(
            "back-1h",
            "set back exactly the tolerance (1 h): still trusted",
            Some(t),
            vec![valid(t - Duration::hours(1))],
        ),
        clock(
            "back-1h-1s",
            "set back one second more than the tolerance",
            Some(t),
            vec![tampered(t - Duration::hours(1) - Duration::seconds(1))],
        ),
        clock(
            "back-1d",
            "set back a day",
            Some(t),
            vec![tampered(t - Duration::days(1))],
        ),
        clock(
            "back-1y",
            "set back a year",
            Some(t),
            vec![tampered(t - Duration::days(365))],
        ),
        clock(
            "ahead-1d",
            "set ahead a day (the document is still fresh)",
            Some(t),
            vec![valid(t + Duration::days(1))],
        ),
        clock(
            "corrected",
            "set back a day, then corrected: trusted again",
            Some(t),
            vec![tampered(t - Duration::days(1)), valid(t)],
        ),
        clock(
            "ahead-then-back",
            "a day ahead moves the mark; going back to the true time is then a clock set back",
            Some(t),
            vec![valid(t + Duration::days(1)), tampered(t)],
        ),
        clock(
            "mark-removed",
            "no mark on disk: the held document's iat is the mark (repaired on load)",
            None,
            vec![
                valid(held_iat - Duration::hours(1)),
                tampered(held_iat - Duration::hours(1) - Duration::seconds(1)),
            ],
        ),
    ]);

    // The grace ladder: the document is trusted until its `exp`, then
    // proves nothing; the license expires by the clock, offline.
    let held_exp = claims(HELD_REV, held_iat).exp;
    cases.push(json!({
        "name": "grace/offline-until-exp",
        "what": "no contact for the whole offline grace: valid up to exp, stale one second after",
        "held": {"document": held, "high_water_mark": at(held_iat)},
        "timeline": [
            valid(held_exp - Duration::days(1)),
            valid(held_exp),
            step(held_exp + Duration::seconds(1), "unverified", Some("stale"), HELD_REV),
        ],
    }));
    let mut ending = claims(HELD_REV, held_iat);
    ending.expires_at = Some(t + Duration::days(1));
    cases.push(json!({
        "name": "grace/expires-offline",
        "what": "the license's expiry passes offline: expired at that instant, no request",
        "held": {"document": signed(&ending), "high_water_mark": at(held_iat)},
        "timeline": [
            valid(t + Duration::days(1) - Duration::seconds(1)),
            step(t + Duration::days(1), "expired", None, HELD_REV),
        ],
    }));

    json!({
        "format": FORMAT,
        "about": "Conformance cases for every Tessera client: see tests/conformance/README.md",
        "keys": [hostile::pinned_key().public_key().to_paserk()],
        "token": hostile::token().expose_secret(),
        "tolerance_secs": 3600,
        "max_clock_drift_secs": 300,
        "cases": cases,
    })
}
