//! The dashboard and the audit log.

use axum::extract::{Query, State};

use super::forms::EventsQuery;
use super::session::Console;
use super::templates;
use super::{Meter, Page, Svc, license_id};
use crate::model::EventFilter;

/// Counts, horizons and the latest events.
pub async fn dashboard(State(svc): Svc, State(metering): Meter, console: Console) -> Page {
    let overview = metering.overview().await?;
    let recent = svc
        .events(&EventFilter {
            limit: 10,
            ..EventFilter::default()
        })
        .await?;
    Ok(templates::dashboard(
        &console.chrome("dashboard", &svc),
        &overview,
        &recent,
    ))
}

/// The audit log, newest first, optionally of one license.
pub async fn events(State(svc): Svc, console: Console, Query(q): Query<EventsQuery>) -> Page {
    let license = match q.license.trim() {
        "" => None,
        text => Some(license_id(text)?),
    };
    let list = svc
        .events(&EventFilter {
            license,
            before: q.before,
            limit: 50,
            ..EventFilter::default()
        })
        .await?;
    let next = (list.len() == 50)
        .then(|| list.last().map(|e| e.seq))
        .flatten();
    Ok(templates::events(
        &console.chrome("events", &svc),
        &list,
        q.license.trim(),
        next,
    ))
}
