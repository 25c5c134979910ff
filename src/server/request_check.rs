//! Requests are checked before Leptos reads them. A query string is
//! percent-encoded UTF-8 (the router would read bad escapes as something
//! else). A server function's body is a JSON object or a URL-encoded form,
//! as its content type says, within a size bound, and a form names each
//! field once: server_fn decodes a body whatever its declared type and
//! takes one of a form's repeated fields, so without this a request of the
//! wrong type, or with a field twice, could be read as something the
//! client did not mean.

use crate::api::AppError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::IgnoredAny;
use std::collections::{BTreeMap, HashSet};

/// The largest request body a server function takes (axum's default).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

pub async fn check_request(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    if let Some(query) = request.uri().query() {
        if !is_utf8_query(query) {
            let message = "the query string is not percent-encoded UTF-8 text".to_string();
            return refuse(api, StatusCode::BAD_REQUEST, message);
        }
    }
    if request.method() != Method::POST || !api {
        return next.run(request).await;
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            let essence = value.split(';').next().unwrap_or_default();
            essence.trim().to_ascii_lowercase()
        });
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return refuse(
            api,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        );
    };
    let checked = match content_type.as_deref() {
        // Arguments by name: serde would also read a struct from an array.
        Some(JSON) => serde_json::from_slice::<BTreeMap<String, IgnoredAny>>(&bytes)
            .map(|_| ())
            .map_err(|e| format!("the body is not a JSON object of arguments ({e})")),
        Some(FORM) => check_form(&bytes),
        _ => Err(format!("send the body as {JSON} or {FORM}")),
    };
    if let Err(message) = checked {
        return refuse(api, StatusCode::BAD_REQUEST, message);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A form body is `name=value` pairs of UTF-8 text; names are field names
/// (`policy_ids[]` repeats, others appear once; a hydrated `ActionForm`
/// numbers a list's entries, `policy_ids[0]`, `policy_ids[1]`). Browsers
/// send `name=` for an empty field, never a bare `name`.
fn check_form(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the form is not UTF-8 text".to_string())?;
    let mut seen = HashSet::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| "the body is not a form of named fields".to_string())?;
        let name = decode_form_component(name)
            .filter(|name| is_field_name(name))
            .ok_or_else(|| "the body is not a form of named fields".to_string())?;
        if decode_form_component(value).is_none() {
            return Err(format!("form field `{name}` is not UTF-8 text"));
        }
        if !name.ends_with("[]") && !seen.insert(name.clone()) {
            return Err(format!("form field `{name}` appears more than once"));
        }
    }
    Ok(())
}

/// Every name and value decodes to UTF-8 text (their shape is the page's
/// business: links from elsewhere may carry fields of their own).
fn is_utf8_query(query: &str) -> bool {
    query
        .split(['&', '='])
        .all(|part| decode_form_component(part).is_some())
}

/// `letters, digits and _`, optionally followed by `[]` or `[<index>]` (a
/// list's entries).
fn is_field_name(name: &str) -> bool {
    let base = match name.strip_suffix(']').and_then(|n| n.split_once('[')) {
        Some((base, index)) if index.bytes().all(|b| b.is_ascii_digit()) => base,
        Some(_) => return false,
        None => name,
    };
    !base.is_empty() && base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Percent- and `+`-decoding; `None` when the result is not UTF-8 or an
/// escape is cut short.
fn decode_form_component(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(byte) = rest.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = (rest.next()? as char).to_digit(16)?;
                let low = (rest.next()? as char).to_digit(16)?;
                bytes.push((high * 16 + low) as u8);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

/// Server functions answer an `AppError` in JSON, pages a line of text.
fn refuse(api: bool, status: StatusCode, message: String) -> Response {
    if !api {
        return (status, format!("Bad request: {message}")).into_response();
    }
    let body = serde_json::to_vec(&AppError::BadRequest(message)).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded_utf8() {
        for good in ["", "q=Z%C3%BCrich+HQ", "a&b=&utm-source=x&q=1&q=2", "q=%2F"] {
            assert!(is_utf8_query(good), "{good}");
        }
        for bad in ["q=%FF", "q=%E", "q=%", "%C3=x", "q=%G0"] {
            assert!(!is_utf8_query(bad), "{bad}");
        }
    }

    #[test]
    fn forms_are_named_utf8_fields_each_given_once() {
        assert!(check_form(b"").is_ok());
        assert!(check_form(b"tenant=acme&scope_key=devices%2Fwindows+x").is_ok());
        assert!(check_form(b"policy_ids%5B%5D=a&policy_ids[]=b&include_payload=").is_ok());
        assert!(check_form(b"tenant=Z%C3%BCrich").is_ok());
        assert!(check_form(b"include_payload=&tenant=").is_ok());
        // What a hydrated ActionForm sends for a multiple select.
        assert!(check_form(b"tenant=acme&policy_ids%5B0%5D=a&policy_ids%5B1%5D=b").is_ok());
        for (bad, expected) in [
            (&b"tenant=a&tenant=b"[..], "appears more than once"),
            (b"policy_ids[0]=a&policy_ids[0]=b", "appears more than once"),
            (b"policy_ids[-1]=a", "not a form"),
            (b"policy_ids[0][1]=a", "not a form"),
            (b"tenant=%FF", "not UTF-8"),
            (b"tenant=%F", "not UTF-8"),
            (b"tenant=\xff", "not UTF-8"),
            (b"{\"tenant\":\"acme\"}", "not a form"),
            (b"{\"q\":\"a=b\"}", "not a form"),
            (b"ten ant=acme", "not a form"),
            (b"tenant[x]=acme", "not a form"),
            (b"tenant", "not a form"),
            (b"tenant=acme&x", "not a form"),
        ] {
            let error = check_form(bad).unwrap_err();
            assert!(error.contains(expected), "{bad:?}: {error}");
        }
    }
}
