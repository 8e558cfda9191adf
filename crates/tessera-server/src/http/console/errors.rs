//! Console errors: a page for people, rendered with the injected clock.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::templates::{self, Chrome};
use crate::clock::Clock;
use crate::error::Error;

/// Why a console request is refused.
#[derive(Debug, Clone)]
pub struct ConsoleError {
    status: StatusCode,
    title: &'static str,
    message: String,
    back: Option<String>,
}

impl ConsoleError {
    /// An error page.
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
            back: None,
        }
    }

    /// With a "back" link.
    #[must_use]
    pub fn back(mut self, to: impl Into<String>) -> Self {
        self.back = Some(to.into());
        self
    }

    /// A form that did not come from this console's pages.
    pub fn forged() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form cannot be accepted",
            "It did not come from a page of this console, or your session changed since it was shown. \
             Go back, reload the page and try again.",
        )
    }
}

impl From<Error> for ConsoleError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { what, id } => Self::new(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("There is no {what} {id}. It may have been typed wrongly."),
            ),
            Error::Forbidden { message, .. } => Self::new(
                StatusCode::FORBIDDEN,
                "Your key may not do this",
                sentence(&message),
            )
            .back("/"),
            Error::Conflict { message, .. } => Self::new(
                StatusCode::CONFLICT,
                "That cannot be done now",
                sentence(&message),
            ),
            Error::Unprocessable { message, .. } | Error::BadRequest { message, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Please check what you entered",
                sentence(&message),
            ),
            Error::Protocol(p) => Self::new(
                StatusCode::BAD_REQUEST,
                "Please check what you entered",
                sentence(&p.to_string()),
            ),
            other => {
                tracing::error!(error = %other, "console request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The authority could not do this. The details are in its log; nothing was changed.",
                )
            }
        }
    }
}

/// An error message as a sentence: capitalised, with a full stop.
/// A refusal the person can fix on the form they posted (bad input, a
/// name already taken) as the sentence to show there; anything else is the
/// error page.
pub fn on_form(e: Error) -> Result<String, ConsoleError> {
    match e {
        Error::Unprocessable { .. } | Error::Conflict { .. } | Error::BadRequest { .. } => {
            Ok(sentence(&e.to_string()))
        }
        other => Err(other.into()),
    }
}

pub fn sentence(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(first) = out.get(..1) {
        out.replace_range(..1, &first.to_uppercase());
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

impl IntoResponse for ConsoleError {
    /// The status now; the page is rendered by [`render_errors`], which
    /// has the clock.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Renders the page of a [`ConsoleError`] (a layer over every console route).
pub async fn render_errors(
    State(clock): State<Arc<dyn Clock>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(e) = response.extensions_mut().remove::<ConsoleError>() {
        let chrome = Chrome {
            session: None,
            principal: None,
            here: "",
            now: clock.now(),
        };
        let page = templates::error_page(&chrome, e.title, &e.message, e.back.as_deref());
        let mut rendered = (e.status, page).into_response();
        // Keep what inner layers set (none today), body aside.
        for (name, value) in response.headers() {
            if name != axum::http::header::CONTENT_TYPE
                && name != axum::http::header::CONTENT_LENGTH
            {
                rendered.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return rendered;
    }
    response
}
