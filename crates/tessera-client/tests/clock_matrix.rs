//! The clock matrix (RELIABILITY.md): a client whose clock is set back or
//! forward, and an authority whose clock runs ahead. Each case asserts the
//! verdict and prints a row; run with `--nocapture` to see the table.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use tessera_client::clock::ManualClock;
use tessera_client::{Verdict, VerdictState};

struct Case {
    name: &'static str,
    /// Moves the client's clock after it holds a fresh document.
    client_shift: Duration,
    /// Moves the authority's clock before the client asks again.
    server_shift: Duration,
    /// The verdict after the shift (before asking the authority).
    at_once: &'static str,
    /// The verdict after a forced refresh against the authority.
    after_refresh: &'static str,
    /// The refresh's error kind, if it fails.
    refresh_error: Option<&'static str>,
}

fn label(v: &Verdict) -> String {
    match v.reason {
        Some(r) => format!("{}({})", v.state.as_str(), r.as_str()),
        None => v.state.as_str().to_owned(),
    }
}

async fn run(case: &Case) -> (String, String, Option<String>) {
    let server_clock = Arc::new(ManualClock::new(Utc::now()));
    let client_clock = Arc::new(ManualClock::new(Utc::now()));
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = common::licensed(&server_clock, &client_clock, dir.path()).await;
    assert_eq!(client.verdict().state, VerdictState::Valid);
    // Let the running client see (and persist) the present as its clock mark.
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    client_clock.advance(case.client_shift);
    server_clock.advance(case.server_shift);
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    let at_once = label(&client.verdict());
    let refresh = client.refresh().await.err().map(|e| e.kind().to_owned());
    let after = label(&client.verdict());
    (at_once, after, refresh)
}

#[tokio::test]
async fn the_clock_matrix() {
    let cases = [
        // Within the 1 h tolerance the held document still counts, but a
        // fresh one is signed "an hour in the future" of this clock (over
        // the 5 min drift) and refused.
        Case {
            name: "client clock back 1 h",
            client_shift: -Duration::hours(1),
            server_shift: Duration::zero(),
            at_once: "valid",
            after_refresh: "valid",
            refresh_error: Some("verification"),
        },
        Case {
            name: "client clock back 1 h 1 min",
            client_shift: -(Duration::hours(1) + Duration::minutes(1)),
            server_shift: Duration::zero(),
            at_once: "unverified(clock_tampered)",
            after_refresh: "unverified(clock_tampered)",
            refresh_error: Some("verification"),
        },
        Case {
            name: "client clock back 1 day",
            client_shift: -Duration::days(1),
            server_shift: Duration::zero(),
            at_once: "unverified(clock_tampered)",
            after_refresh: "unverified(clock_tampered)",
            refresh_error: Some("verification"),
        },
        Case {
            name: "client clock back 1 year",
            client_shift: -Duration::days(365),
            server_shift: Duration::zero(),
            at_once: "unverified(clock_tampered)",
            after_refresh: "unverified(clock_tampered)",
            refresh_error: Some("verification"),
        },
        Case {
            name: "client clock forward 1 year",
            client_shift: Duration::days(365),
            server_shift: Duration::zero(),
            at_once: "unverified(stale)",
            after_refresh: "unverified(stale)",
            refresh_error: Some("verification"),
        },
        Case {
            name: "authority clock ahead 2 min",
            client_shift: Duration::zero(),
            server_shift: Duration::minutes(2),
            at_once: "valid",
            after_refresh: "valid",
            refresh_error: None,
        },
        Case {
            name: "authority clock ahead 1 h",
            client_shift: Duration::zero(),
            server_shift: Duration::hours(1),
            at_once: "valid",
            after_refresh: "valid",
            refresh_error: Some("verification"),
        },
    ];
    println!("| case | verdict at once | refresh | verdict after refresh |");
    println!("|---|---|---|---|");
    let mut wrong = Vec::new();
    for case in &cases {
        let (at_once, after, refresh) = run(case).await;
        println!(
            "| {} | {at_once} | {} | {after} |",
            case.name,
            refresh.as_deref().unwrap_or("ok")
        );
        if (at_once.as_str(), after.as_str(), refresh.as_deref())
            != (case.at_once, case.after_refresh, case.refresh_error)
        {
            wrong.push(format!(
                "{}: got ({at_once}, {after}, {refresh:?})",
                case.name
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
