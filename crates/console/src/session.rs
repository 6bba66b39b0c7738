//! Who is at the keyboard: a person vouched for by an authenticating proxy in front
//! (`X-Forwarded-Email` / `X-Forwarded-User`), or one who signed in with their own API key.

use crate::backends::Caller;
use axum::http::HeaderMap;

/// The cookie holding a signed-in person's name and key.
pub const COOKIE: &str = "rapport_session";

/// The longest name a person may sign in under.
const MAX_NAME: usize = 100;

/// How the console learns who is calling.
#[derive(Debug, Clone)]
pub enum Identity {
    /// From the proxy's headers; every call is made with the console's own key.
    Proxy { key: String },
    /// From the sign-in cookie, with the person's own key.
    SignIn,
}

impl Identity {
    /// The caller of a request, or `None` when nobody is signed in (or the proxy named
    /// nobody).
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        match self {
            Identity::Proxy { key } => {
                let person = ["x-forwarded-email", "x-forwarded-user"]
                    .iter()
                    .filter_map(|h| headers.get(*h)?.to_str().ok())
                    .map(str::trim)
                    .find(|v| !v.is_empty())?;
                Some(Caller {
                    key: key.clone(),
                    person: person.to_owned(),
                    // Known once the key's role is asked for (see `Console::caller`).
                    can_write: false,
                })
            }
            Identity::SignIn => cookie(headers, COOKIE).and_then(|v| decode(&v)),
        }
    }

    /// Whether people sign in through the console's own page.
    pub fn signs_in(&self) -> bool {
        matches!(self, Identity::SignIn)
    }
}

/// What was wrong with a sign-in form, naming the field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignInError {
    #[error("name: required")]
    NoName,
    #[error("name: at most {MAX_NAME} characters")]
    LongName,
    #[error("API key: required")]
    NoKey,
    #[error("API key: only letters, digits, '-' and '_'")]
    BadKey,
}

/// The caller a sign-in form describes, checked (`can_write` is the key's role's to tell).
pub fn signed_in(name: &str, key: &str) -> Result<Caller, SignInError> {
    let (name, key) = (name.trim(), key.trim());
    if name.is_empty() {
        return Err(SignInError::NoName);
    }
    if name.chars().count() > MAX_NAME {
        return Err(SignInError::LongName);
    }
    if key.is_empty() {
        return Err(SignInError::NoKey);
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(SignInError::BadKey);
    }
    Ok(Caller {
        key: key.to_owned(),
        person: name.to_owned(),
        can_write: false,
    })
}

/// The `Set-Cookie` value that keeps `caller` signed in for this browser session. HttpOnly:
/// no script reads the key; SameSite=Strict: no other site's page can act with it.
pub fn set_cookie(caller: &Caller) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        encode(caller)
    )
}

/// The `Set-Cookie` value that signs out.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

// Cookie values may not hold every character a name may: both parts travel hex-encoded.
fn encode(caller: &Caller) -> String {
    format!(
        "{}.{}.{}",
        hex(caller.person.as_bytes()),
        hex(caller.key.as_bytes()),
        if caller.can_write { "w" } else { "r" }
    )
}

fn decode(value: &str) -> Option<Caller> {
    let mut parts = value.split('.');
    let person = String::from_utf8(unhex(parts.next()?)?).ok()?;
    let key = String::from_utf8(unhex(parts.next()?)?).ok()?;
    let can_write = parts.next()? == "w";
    let mut caller = signed_in(&person, &key).ok()?;
    caller.can_write = can_write;
    Some(caller)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The value of cookie `name` in a request's headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_signed_in_person_comes_back_from_the_cookie() {
        let mut caller = signed_in("Dana Ross", "rk_ab12_secret").unwrap();
        caller.can_write = true;
        let set = set_cookie(&caller);
        let value = set.split(';').next().unwrap().to_owned();
        let back = Identity::SignIn
            .caller(&headers(&[("cookie", &format!("theme=dark; {value}"))]))
            .unwrap();
        assert_eq!(back.person, "Dana Ross");
        assert_eq!(back.key, "rk_ab12_secret");
        assert!(back.can_write);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    }

    #[test]
    fn a_forged_or_missing_cookie_signs_nobody_in() {
        for cookie in [
            "",
            "rapport_session=zz.zz",
            "rapport_session=abc",
            "other=1",
        ] {
            assert!(
                Identity::SignIn
                    .caller(&headers(&[("cookie", cookie)]))
                    .is_none(),
                "{cookie}"
            );
        }
    }

    #[test]
    fn the_proxy_names_the_person_and_the_console_key_acts() {
        let proxy = Identity::Proxy {
            key: "console-key".into(),
        };
        let c = proxy
            .caller(&headers(&[
                ("x-forwarded-user", "dross"),
                ("x-forwarded-email", "dana@example.com"),
            ]))
            .unwrap();
        assert_eq!(
            (c.person.as_str(), c.key.as_str()),
            ("dana@example.com", "console-key")
        );
        assert!(proxy.caller(&headers(&[])).is_none());
        // The proxy mode ignores a sign-in cookie: only the proxy vouches.
        let cookie = set_cookie(&signed_in("x", "k").unwrap());
        assert!(proxy.caller(&headers(&[("cookie", &cookie)])).is_none());
    }

    #[test]
    fn sign_in_errors_name_the_field() {
        assert_eq!(signed_in(" ", "k").unwrap_err(), SignInError::NoName);
        assert_eq!(signed_in("a", "").unwrap_err(), SignInError::NoKey);
        assert_eq!(signed_in("a", "k y").unwrap_err(), SignInError::BadKey);
        assert_eq!(
            signed_in(&"n".repeat(101), "k").unwrap_err(),
            SignInError::LongName
        );
        assert!(SignInError::BadKey.to_string().starts_with("API key:"));
    }
}
