//! Pages without inline script. Leptos writes the data a page hydrates from
//! (resolved resources, errors) as inline `<script>` statements, which a
//! Content-Security-Policy without `'unsafe-inline'` (or a nonce) blocks. A
//! layer rewrites each rendered page: those statements become one
//! non-executable `<script type="application/json" id="opshub-hydration-data">`
//! that `public/hydrate.js` (a file, allowed by `script-src 'self'`) puts
//! where Leptos's hydration reads it before starting the app.
//!
//! The statements' grammar is the one `hydration_context` (Leptos 0.8)
//! writes; a script that does not parse is left alone and logged, and the
//! browser suite, run with the CSP enforced, fails on it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The id of the element holding a page's hydration data.
pub const DATA_ELEMENT_ID: &str = "opshub-hydration-data";
/// Larger than any page we render; a bigger one is an error, not a page.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

/// Rewrites every HTML answer (pages, the 404 page); others pass untouched.
pub async fn without_inline_scripts(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !is_html || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "cannot read a rendered page");
            return crate::api::AppError::Internal.http_status().into_response();
        }
    };
    let Ok(html) = std::str::from_utf8(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let rewritten = rewrite(html);
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(length) = HeaderValue::from_str(&rewritten.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, length);
    }
    Response::from_parts(parts, Body::from(rewritten))
}

/// What Leptos's hydration reads (`__RESOLVED_RESOURCES`,
/// `__SERIALIZED_ERRORS`, `__INCOMPLETE_CHUNKS`), as JSON.
#[derive(Debug, Default, PartialEq, Serialize)]
struct HydrationData {
    /// (resource id, its serialized value)
    resources: Vec<(u64, String)>,
    /// (error boundary id, error id, message)
    errors: Vec<(u64, u64, String)>,
    incomplete: Vec<u64>,
}

/// The page with its hydration statements moved into one JSON element,
/// placed where the first of them was.
fn rewrite(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut data = HydrationData::default();
    let mut data_at = None;
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let Some(tag_len) = rest[start..].find('>').map(|i| i + 1) else {
            break;
        };
        let tag = &rest[start..start + tag_len];
        let body_start = start + tag_len;
        let Some(body_len) = rest[body_start..].find("</script>") else {
            break;
        };
        let body = &rest[body_start..body_start + body_len];
        let end = body_start + body_len + "</script>".len();
        let external_or_data = tag.contains(" src=") || tag.contains(" type=\"application/json\"");
        if !external_or_data && parse_statements(body, &mut data).is_some() {
            out.push_str(&rest[..start]);
            data_at.get_or_insert(out.len());
        } else {
            if !external_or_data {
                tracing::error!("a page carries an inline script the CSP will block");
            }
            out.push_str(&rest[..end]);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    if let Some(at) = data_at {
        // `<` never appears raw, so nothing in the data can end the element.
        let json = serde_json::to_string(&data)
            .unwrap_or_else(|_| "{}".into())
            .replace('<', "\\u003c");
        out.insert_str(
            at,
            &format!("<script type=\"application/json\" id=\"{DATA_ELEMENT_ID}\">{json}</script>"),
        );
    }
    out
}

/// Reads a script of hydration statements into `data`; `None` (and `data`
/// possibly half-filled, which the caller then leaves) when it is anything
/// else.
fn parse_statements(script: &str, data: &mut HydrationData) -> Option<()> {
    let mut found = HydrationData::default();
    let mut p = Parser { rest: script };
    p.skip_space();
    if p.rest.is_empty() {
        return None;
    }
    while !p.rest.is_empty() {
        if p.eat("__RESOLVED_RESOURCES") {
            if p.eat("=") {
                p.list(|p| {
                    let id = p.number()?;
                    p.expect(":")?;
                    found.resources.push((id, p.string()?));
                    Some(())
                })?;
            } else {
                p.expect("[")?;
                let id = p.number()?;
                p.expect("]")?;
                p.expect("=")?;
                found.resources.push((id, p.string()?));
            }
        } else if p.eat("__SERIALIZED_ERRORS") {
            if p.eat("=") {
                p.list(|p| {
                    found.errors.push(p.error()?);
                    Some(())
                })?;
            } else {
                p.expect(".push(")?;
                found.errors.push(p.error()?);
                p.expect(")")?;
            }
        } else if p.eat("__INCOMPLETE_CHUNKS") {
            p.expect("=")?;
            p.list(|p| {
                found.incomplete.push(p.number()?);
                Some(())
            })?;
        } else if p.eat("__PENDING_RESOURCES") || p.eat("__RESOURCE_RESOLVERS") {
            // Only streaming reads these; a page that hydrates has them all.
            p.expect("=")?;
            p.list(|p| p.number().map(drop))?;
        } else {
            return None;
        }
        p.expect(";")?;
    }
    data.resources.extend(found.resources);
    data.errors.extend(found.errors);
    data.incomplete.extend(found.incomplete);
    Some(())
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                self.skip_space();
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, token: &str) -> Option<()> {
        self.eat(token).then_some(())
    }

    /// `[item, item, ]` (every item followed by a comma, as Leptos writes).
    fn list(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect("[")?;
        while !self.eat("]") {
            item(self)?;
            self.expect(",")?;
        }
        Some(())
    }

    fn number(&mut self) -> Option<u64> {
        self.skip_space();
        let digits = self.rest.len()
            - self
                .rest
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let number = self.rest[..digits].parse().ok()?;
        self.rest = &self.rest[digits..];
        Some(number)
    }

    /// `[boundary, id, "message"]`
    fn error(&mut self) -> Option<(u64, u64, String)> {
        self.expect("[")?;
        let boundary = self.number()?;
        self.expect(",")?;
        let id = self.number()?;
        self.expect(",")?;
        let message = self.string()?;
        self.expect("]")?;
        Some((boundary, id, message))
    }

    /// A string literal as Rust's `{:?}` writes it, with `<` written as
    /// `\u003c` (what Leptos does so that no `</script>` appears).
    fn string(&mut self) -> Option<String> {
        self.skip_space();
        let mut chars = self.rest.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        loop {
            let (_, c) = chars.next()?;
            match c {
                '"' => break,
                '\\' => {
                    let (_, escape) = chars.next()?;
                    value.push(match escape {
                        '\\' => '\\',
                        '"' => '"',
                        '\'' => '\'',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        '0' => '\0',
                        'u' => {
                            let rest = chars.as_str();
                            let (hex, used) = match rest.strip_prefix('{') {
                                Some(braced) => {
                                    let close = braced.find('}')?;
                                    (&braced[..close], close + 2)
                                }
                                None => (rest.get(..4)?, 4),
                            };
                            let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                            chars = rest[used..].char_indices();
                            c
                        }
                        _ => return None,
                    });
                }
                c => value.push(c),
            }
        }
        self.rest = chars.as_str();
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements as hydration_context writes them for `values`.
    fn leptos_scripts(values: &[&str], error: &str) -> String {
        let mut initial = String::from("__RESOLVED_RESOURCES=[];__SERIALIZED_ERRORS=[");
        initial.push_str(&format!(
            "[1, 0, {}],",
            format!("{error:?}").replace('<', "\\u003c")
        ));
        initial.push_str("];__PENDING_RESOURCES=[");
        for id in 0..values.len() {
            initial.push_str(&format!("{id},"));
        }
        initial.push_str("];__RESOURCE_RESOLVERS=[];");
        let mut resolved = String::new();
        for (id, value) in values.iter().enumerate() {
            let value = value.replace('<', "\\u003c");
            resolved.push_str(&format!("__RESOLVED_RESOURCES[{id}] = {value:?};"));
        }
        format!(
            "<script nonce=\"abc\">{initial}</script><script nonce=\"abc\">{resolved}</script>\
             <script nonce=\"abc\">__INCOMPLETE_CHUNKS=[3,];</script>"
        )
    }

    fn data_of(page: &str) -> serde_json::Value {
        let start = page.find(DATA_ELEMENT_ID).expect("a data element");
        let json_start = start + page[start..].find('>').unwrap() + 1;
        let json_end = json_start + page[json_start..].find("</script>").unwrap();
        serde_json::from_str(&page[json_start..json_end]).unwrap()
    }

    #[test]
    fn statements_become_one_json_element_and_scripts_with_src_stay() {
        let values = [
            r#"{"name":"Zürich \"HQ\" </script><script>alert(1)</script>"}"#,
            // JSON whitespace and characters `{:?}` escapes.
            "{\"a\":\t\"x\u{7f}\u{200b}e\u{301}🙂\\u0000\"}\n",
        ];
        let error = "boom </script> \\ \"quoted\" \u{1}";
        let page = format!(
            "<html><head><script type=\"module\" src=\"/hydrate.js\"></script></head>\
             <body><p>hi</p>{}</body></html>",
            leptos_scripts(&values, error)
        );
        let rewritten = rewrite(&page);
        assert_eq!(rewritten.matches("<script").count(), 2, "{rewritten}");
        assert!(rewritten.contains("<script type=\"module\" src=\"/hydrate.js\"></script>"));
        assert_eq!(
            rewritten.matches("</script>").count(),
            2,
            "nothing in the data ends the element"
        );
        assert!(rewritten.contains("<p>hi</p><script type=\"application/json\""));
        let data = data_of(&rewritten);
        // What the inline script would have put in `__RESOLVED_RESOURCES`:
        // Leptos writes `<` in resources as the JSON escape `\u003c`.
        for (id, value) in values.iter().enumerate() {
            let expected = value.replace('<', "\\u003c");
            assert_eq!(data["resources"][id], serde_json::json!([id, expected]));
            let parsed: serde_json::Value = serde_json::from_str(&expected).unwrap();
            assert_eq!(
                parsed,
                serde_json::from_str::<serde_json::Value>(value).unwrap()
            );
        }
        assert_eq!(data["errors"], serde_json::json!([[1, 0, error]]));
        assert_eq!(data["incomplete"], serde_json::json!([3]));
    }

    #[test]
    fn other_inline_scripts_are_left_alone() {
        for script in [
            "<script>alert(1)</script>",
            "<script>__RESOLVED_RESOURCES=[];alert(1);</script>",
            "<script>__RESOLVED_RESOURCES[0] = \"x\" + alert(1);</script>",
            "<script>__RESOLVED_RESOURCES[0] = \"unterminated;</script>",
            "<script></script>",
            "<script>__SERIALIZED_ERRORS.push([1, 2, \"\\q\"]);</script>",
        ] {
            let page = format!("<body>{script}</body>");
            assert_eq!(rewrite(&page), page, "{script}");
        }
        // Unterminated markup is left as it is.
        assert_eq!(
            rewrite("<script>__INCOMPLETE_CHUNKS=[];"),
            "<script>__INCOMPLETE_CHUNKS=[];"
        );
        assert_eq!(rewrite("<scrip"), "<scrip");
    }

    #[test]
    fn escapes_decode_as_javascript_would() {
        let mut p = Parser {
            rest: r#""a\u{1f642}\u003c\\u003c\'\"\0" tail"#,
        };
        assert_eq!(p.string().unwrap(), "a🙂<\\u003c'\"\0");
        assert_eq!(p.rest, " tail");
        for bad in [
            r#""\u{110000}""#,
            r#""\u{zz}""#,
            r#""\u12""#,
            r#""\x41""#,
            "\"abc",
        ] {
            assert_eq!(Parser { rest: bad }.string(), None, "{bad}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            /// Whatever text a resource or an error holds, the JSON carries
            /// exactly what the inline script would have given the page.
            #[test]
            fn any_text_survives_the_move_to_json(value in any::<String>(), message in any::<String>()) {
                let escaped = value.replace('<', "\\u003c");
                let error = format!("{message:?}").replace('<', "\\u003c");
                let page = format!(
                    "<body><script>__RESOLVED_RESOURCES=[];__SERIALIZED_ERRORS=[[0, 1, {error}],];\
                     __PENDING_RESOURCES=[0,];__RESOURCE_RESOLVERS=[];</script>\
                     <script>__RESOLVED_RESOURCES[0] = {escaped:?};</script></body>"
                );
                let rewritten = rewrite(&page);
                prop_assert_eq!(rewritten.matches("<script").count(), 1);
                prop_assert_eq!(rewritten.matches("</script>").count(), 1);
                let data = data_of(&rewritten);
                prop_assert_eq!(&data["resources"][0][1], &serde_json::Value::String(escaped));
                prop_assert_eq!(&data["errors"][0][2], &serde_json::Value::String(message));
            }

            #[test]
            fn any_page_is_rewritten_without_panicking(page in any::<String>(), tail in "(<script[^>]{0,8}>)?[_A-Z\\[\\]=;\" 0-9]{0,40}(</script>)?") {
                let text = format!("{page}{tail}");
                let rewritten = rewrite(&text);
                prop_assert!(rewritten.len() <= text.len() + 100 || rewritten.contains(DATA_ELEMENT_ID));
            }
        }
    }
}
