//! The dashboard and the audit log.

use axum::extract::{Query, State};

use super::forms::{EventsQuery, ProductQuery};
use super::session::Console;
use super::templates;
use super::{Meter, Page, Svc, license_id};
use crate::model::EventFilter;

/// Counts, horizons and the latest events.
pub async fn dashboard(
    State(svc): Svc,
    State(metering): Meter,
    console: Console,
    Query(q): Query<ProductQuery>,
) -> Page {
    let products = console.principal.product_filter(q.product());
    let overview = metering.overview(products.as_deref()).await?;
    let recent = svc
        .events(&EventFilter {
            limit: 10,
            products,
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
            products: console.principal.product_filter(None),
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
