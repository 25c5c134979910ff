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

/// `/sign-in?next=<path>`: sign in, then come back to `path`. Always ASCII
/// (every other byte is percent-encoded), so always a valid header value.
pub fn sign_in_path(next: &str) -> String {
    format!("/sign-in?next={}", encode_component(next))
}

/// A `next` target is followed only when it is a path of this site: one
/// leading `/`, then neither `/` nor `\` (`//evil.example` and `/\evil` name
/// another host), no `\` anywhere, and no control character or whitespace
/// anywhere (browsers drop tabs and newlines from URLs, so `/<TAB>/evil`
/// would become `//evil`; a control character is no valid header value).
/// Anything else becomes `/`. The result is always a valid `Location` value.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if is_local_path(path) => path.to_string(),
        _ => "/".to_string(),
    }
}

fn is_local_path(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !path
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
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
        for good in [
            "/t/acme/operations?bucket=failed",
            "/",
            "/t/zürich/operations",
            "/a//b",
            "/?next=//x",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\\evil",
            "/a\\b",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            "/a b",
            "/\u{3000}/evil.example",
            "/\u{7f}",
            "/\u{85}x",
            "/\u{0}",
            "",
            "t/acme",
            " /t/acme",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
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

    #[cfg(feature = "ssr")]
    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn is_header_value(text: &str) -> bool {
            axum::http::HeaderValue::from_str(text).is_ok()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn next_is_the_input_or_root_and_always_a_header_value(
                // Arbitrary Unicode, and paths like ours with anything in them.
                next in prop_oneof![
                    any::<String>(),
                    "/\\PC*",
                    "/[\t\n\r /\\\\a-z\u{0}-\u{1f}\u{7f}-\u{a0}\u{2028}\u{3000}]{0,12}",
                ],
            ) {
                let kept = safe_next(Some(&next));
                prop_assert!(kept == "/" || kept == next, "{:?}", kept);
                prop_assert!(is_header_value(&kept), "{:?}", kept);
                if kept != "/" {
                    prop_assert!(!kept.starts_with("//") && !kept.contains('\\'));
                    prop_assert!(!kept.chars().any(|c| c.is_control() || c.is_whitespace()));
                }
            }

            #[test]
            fn the_sign_in_path_is_always_a_header_value(next in any::<String>()) {
                prop_assert!(is_header_value(&sign_in_path(&next)));
            }
        }

        #[test]
        fn a_megabyte_of_text_is_handled() {
            let long = format!("/{}", "\u{1F600}\u{301}".repeat(170_000));
            assert_eq!(safe_next(Some(&long)), long);
            assert!(is_header_value(&sign_in_path(&long)));
        }
    }
}
