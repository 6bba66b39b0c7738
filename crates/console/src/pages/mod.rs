//! The console's pages: each module fetches what its page shows from the services, then
//! renders it with pure functions of that data (tested without a network).

pub mod activity;
pub mod alerts;
pub mod backtest;
pub mod book;
pub mod customer;
pub mod customers;
pub mod interventions;
pub mod segments;
pub mod signin;

use crate::backends::Caller;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use rapport_proto::common::v1 as common;

/// Why a page could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Nobody is signed in (or the key was refused): off to the sign-in page.
    #[error("sign in first")]
    SignIn,
    /// A service refused or failed the call.
    #[error("{0}")]
    Service(#[from] tonic::Status),
    /// The page's parameters were wrong: which and why.
    #[error("{0}")]
    BadInput(String),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        use tonic::Code;
        let (status, message) = match &self {
            PageError::SignIn => return Redirect::to("/signin").into_response(),
            PageError::Service(s) if s.code() == Code::Unauthenticated => {
                return Redirect::to("/signin?expired=1").into_response();
            }
            PageError::Service(s) => {
                let status = match s.code() {
                    Code::NotFound => StatusCode::NOT_FOUND,
                    Code::PermissionDenied => StatusCode::FORBIDDEN,
                    Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                        StatusCode::BAD_REQUEST
                    }
                    Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                    Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::BAD_GATEWAY,
                };
                if status == StatusCode::BAD_GATEWAY || status == StatusCode::SERVICE_UNAVAILABLE {
                    tracing::warn!(code = ?s.code(), message = s.message(), "a page's call failed");
                }
                (status, s.message().to_owned())
            }
            PageError::BadInput(m) => (StatusCode::BAD_REQUEST, m.clone()),
        };
        let body = layout(
            "Something went wrong",
            None,
            "",
            html! {
                h1 { "Cannot show this page" }
                p.error { (message) }
                p { a href="/" { "Back to my book" } }
            },
        );
        (status, Html(body.into_string())).into_response()
    }
}

/// The result of a page handler.
pub type Page = Result<Response, PageError>;

/// A whole page: navigation, the person signed in, and `body`.
pub fn layout(title: &str, caller: Option<&Caller>, active: &str, body: Markup) -> Markup {
    let nav = [
        ("/", "My book"),
        ("/customers", "Customers"),
        ("/alerts", "Alerts"),
        ("/segments", "Tiers and segments"),
        ("/interventions", "Interventions"),
        ("/backtest", "Backtest"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rapport" }
                link rel="stylesheet" href="/assets/console.css";
                link rel="icon" href="/favicon.ico" type="image/svg+xml";
                script src="/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Rapport" }
                    nav {
                        @for (href, name) in nav {
                            a href=(href) class=[(active == href).then_some("active")] { (name) }
                        }
                    }
                    @if let Some(c) = caller {
                        span.who {
                            "Signed in as " strong { (c.person) }
                            " "
                            form.inline method="post" action="/signout" {
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page as an HTML response.
pub fn html_page(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// The name of a band, as people read it.
pub fn band_name(value: i32) -> &'static str {
    match common::HealthBand::try_from(value) {
        Ok(common::HealthBand::Red) => "red",
        Ok(common::HealthBand::Yellow) => "yellow",
        Ok(common::HealthBand::Green) => "green",
        _ => "none",
    }
}

/// The name of a tier, as people read it.
pub fn tier_name(value: i32) -> &'static str {
    rapport_proto::convert::domain_tier(value).map_or("unassigned", |t| t.name())
}

/// A band as a coloured badge.
pub fn band_badge(value: i32) -> Markup {
    let name = band_name(value);
    html! { span class=(format!("badge band-{name}")) { (name) } }
}

/// A signed change in points, or a dash when unknown.
pub fn change(value: Option<f64>) -> Markup {
    match value {
        Some(v) if v < -0.05 => html! { span.down { (format!("{v:+.1}")) } },
        Some(v) if v > 0.05 => html! { span.up { (format!("{v:+.1}")) } },
        Some(_) => html! { span { "0.0" } },
        None => html! { span.none { "–" } },
    }
}

/// An optional number with `digits` decimals, or a dash.
pub fn number(value: Option<f64>, digits: usize) -> Markup {
    match value {
        Some(v) => html! { (fixed(v, digits)) },
        None => html! { span.none { "–" } },
    }
}

/// `v` with `digits` decimals, without the sign of a value that rounds to zero ("-0.00").
pub fn fixed(v: f64, digits: usize) -> String {
    let text = format!("{v:.digits$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_owned(),
        _ => text,
    }
}

/// A timestamp as a UTC date and time, or a dash.
pub fn when(t: Option<&prost_types::Timestamp>) -> Markup {
    match t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0)) {
        Some(t) => html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M")) } },
        None => html! { span.none { "–" } },
    }
}

/// The measure that costs a score most, and how many points.
pub fn biggest_drag(h: &rapport_proto::scoring::v1::HealthScore) -> Option<(&str, f64)> {
    h.measures
        .iter()
        .filter(|m| m.shortfall > 0.0)
        .max_by(|a, b| a.shortfall.total_cmp(&b.shortfall))
        .map(|m| (m.measure.as_str(), m.shortfall))
}

/// A link to a customer's page.
pub fn customer_link(id: &str) -> Markup {
    html! { a href=(customer_path(id)) { (id) } }
}

/// The path of a customer's page.
pub fn customer_path(id: &str) -> String {
    format!("/customers/{}", path_segment(id))
}

/// `text` made safe as one path segment.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The empty-table line.
pub fn nothing(text: &str) -> Markup {
    html! { p.none { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_rounds_to_zero_has_no_sign() {
        assert_eq!(fixed(-0.0, 2), "0.00");
        assert_eq!(fixed(-0.001, 2), "0.00");
        assert_eq!(fixed(-0.5, 1), "-0.5");
        assert_eq!(fixed(2.0, 0), "2");
    }

    #[test]
    fn customer_ids_become_safe_links() {
        assert_eq!(path_segment("c-1"), "c-1");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
        let link = customer_link("<x>").into_string();
        assert!(link.contains("href=\"/customers/%3Cx%3E\""), "{link}");
        assert!(link.contains("&lt;x&gt;"), "{link}");
    }

    #[test]
    fn a_refused_key_goes_back_to_sign_in_and_a_missing_customer_is_a_404() {
        let r = PageError::Service(tonic::Status::unauthenticated("unknown key")).into_response();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = PageError::Service(tonic::Status::not_found("customer x")).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = PageError::BadInput("limit: not a number".into()).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}
