//! Bounds on the text a client sends. Every field is short, so no request
//! makes the server hold, compare, cache, store or echo long text; a field
//! out of bounds is refused with a message naming it.

use super::ParseError;

/// The longest search or filter text, and the default bound of any other
/// short field (ids, roles, scope keys), in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// The longest email address (RFC 5321's limit on a path).
pub const MAX_EMAIL_CHARS: usize = 254;

/// `value` when it has at most `max_chars` characters (not bytes) and no
/// control characters; otherwise an error that names `field` and never
/// repeats the value.
pub fn bounded_text<'a>(
    field: &str,
    value: &'a str,
    max_chars: usize,
) -> Result<&'a str, ParseError> {
    // Stops counting at the first character over the bound.
    if value.chars().nth(max_chars).is_some() {
        return Err(ParseError(format!(
            "`{field}` is too long: at most {max_chars} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ParseError(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(value)
}

/// Checks every present field of a filter against `MAX_SEARCH_CHARS`.
pub fn bounded_fields(fields: &[(&str, &Option<String>)]) -> Result<(), ParseError> {
    for (field, value) in fields {
        if let Some(value) = value {
            bounded_text(field, value, MAX_SEARCH_CHARS)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        let umlauts = "ü".repeat(MAX_SEARCH_CHARS);
        assert_eq!(umlauts.len(), 2 * MAX_SEARCH_CHARS);
        assert!(bounded_text("q", &umlauts, MAX_SEARCH_CHARS).is_ok());
        let over = format!("{umlauts}ü");
        let error = bounded_text("q", &over, MAX_SEARCH_CHARS).unwrap_err();
        assert_eq!(error.0, "`q` is too long: at most 200 characters");
        assert!(bounded_text("q", "", MAX_SEARCH_CHARS).is_ok());
        assert!(bounded_text("q", "drift:Zürich 🚀", MAX_SEARCH_CHARS).is_ok());
    }

    #[test]
    fn refuses_control_characters_without_echoing_them() {
        for bad in ["a\u{0}b", "tab\there", "line\n", "\u{7f}", "\u{85}"] {
            let error = bounded_text("scope", bad, MAX_SEARCH_CHARS).unwrap_err();
            assert_eq!(error.0, "`scope` must not contain control characters");
        }
    }

    #[test]
    fn checks_every_present_field() {
        let (short, long, none) = (Some("ok".to_string()), Some("x".repeat(201)), None);
        assert!(bounded_fields(&[("a", &short), ("b", &none)]).is_ok());
        let error = bounded_fields(&[("a", &short), ("b", &long)]).unwrap_err();
        assert!(error.0.starts_with("`b` is too long"), "{error}");
    }
}
