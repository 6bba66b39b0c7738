//! Signing in with one's own API key, and out.

use super::{Page, PageError, html_page, layout};
use crate::Console;
use crate::session;
use axum::extract::{Form, Query, State};
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};

/// What the sign-in page was asked to show.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    expired: Option<String>,
}

/// The sign-in form.
#[derive(Debug, serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

/// `GET /signin`.
pub async fn show(State(console): State<Console>, Query(q): Query<SignInQuery>) -> Page {
    if !console.identity.signs_in() {
        return Err(PageError::BadInput(
            "people are signed in by the proxy in front of the console".into(),
        ));
    }
    let note = q
        .expired
        .map(|_| "Your key was not accepted: it may have been revoked or have expired.");
    Ok(html_page(form(note, "")))
}

/// `POST /signin`: checks the key against a service before keeping it.
pub async fn submit(State(console): State<Console>, Form(f): Form<SignInForm>) -> Page {
    let mut caller = match session::signed_in(&f.name, &f.key) {
        Ok(c) => c,
        Err(e) => return Ok(bad(&e.to_string(), &f.name)),
    };
    let role = match console.role(&caller).await {
        Ok(role) => role,
        Err(s) if s.code() == tonic::Code::Unauthenticated => {
            return Ok(bad("API key: not accepted", &f.name));
        }
        Err(s) => return Err(s.into()),
    };
    if !role.reads() {
        return Ok(bad(
            &format!("API key: a key of role {} cannot read customers", role.0),
            &f.name,
        ));
    }
    caller.can_write = role.writes();
    Ok((
        [(SET_COOKIE, session::set_cookie(&caller))],
        Redirect::to("/"),
    )
        .into_response())
}

/// `POST /signout`.
pub async fn sign_out() -> Page {
    Ok((
        [(SET_COOKIE, session::clear_cookie())],
        Redirect::to("/signin"),
    )
        .into_response())
}

fn bad(message: &str, name: &str) -> axum::response::Response {
    (
        axum::http::StatusCode::BAD_REQUEST,
        html_page(form(Some(message), name)),
    )
        .into_response()
}

fn form(note: Option<&str>, name: &str) -> Markup {
    layout(
        "Sign in",
        None,
        "",
        html! {
            h1 { "Sign in" }
            @if let Some(note) = note { p.error role="alert" { (note) } }
            form.signin method="post" action="/signin" {
                label { "Your name (recorded with what you do)"
                    input name="name" required value=(name) autocomplete="name";
                }
                label { "Your API key"
                    input name="key" type="password" required autocomplete="current-password";
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}
