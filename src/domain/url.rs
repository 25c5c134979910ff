//! URL helpers shared by server and browser.

/// Percent-encodes a URL component (what JavaScript's `encodeURIComponent`
/// does, RFC 3986 unreserved characters stay).
pub fn encode_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?key=value&…` of the fields that have a value (percent-encoded), or ""
/// when none has: how filter pages put their state in the URL.
pub fn query_string(fields: &[(&str, &Option<String>)]) -> String {
    let pairs: Vec<String> = fields
        .iter()
        .filter_map(|(key, value)| {
            value
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{key}={}", encode_component(v)))
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// The deep link to a run's detail page.
pub fn run_path(tenant_slug: &str, run: super::RunId) -> String {
    format!("/t/{tenant_slug}/operations/{run}")
}

/// `/sign-in?next=<path>`: sign in, then come back to `path`.
pub fn sign_in_path(next: &str) -> String {
    format!("/sign-in?next={}", encode_component(next))
}

/// A `next` target is followed only when it is a path on this site, never
/// another origin (`//evil.example`, `https://…`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn query_strings_keep_only_values_and_encode_them() {
        let (some, empty, none) = (Some("a b&c".to_string()), Some(String::new()), None);
        assert_eq!(
            query_string(&[("q", &some), ("e", &empty), ("n", &none)]),
            "?q=a%20b%26c"
        );
        assert_eq!(query_string(&[("n", &none)]), "");
    }

    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(
            safe_next(Some("/t/acme/operations?bucket=failed")),
            "/t/acme/operations?bucket=failed"
        );
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn encodes_query_targets() {
        assert_eq!(
            sign_in_path("/t/a?x=1&y=2"),
            "/sign-in?next=%2Ft%2Fa%3Fx%3D1%26y%3D2"
        );
    }
}
