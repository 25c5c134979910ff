//! The one sanitiser every stored failure reason passes through.
//!
//! Reasons come from upstream errors and may carry credentials. We redact
//! whatever looks like one rather than trying to allowlist prose, and cap the
//! length so a reason stays a reason, not a payload dump.

pub const MAX_REASON_CHARS: usize = 300;

const SECRET_KEYS: [&str; 14] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "authorization",
    "private_key",
];

const CONNECTION_SCHEMES: [&str; 10] = [
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "mongodb",
    "mongodb+srv",
    "redis",
    "amqp",
    "sqlserver",
    "jdbc",
];

const TOKEN_PREFIXES: [&str; 8] = ["eyJ", "sk_", "pk_", "ghp_", "gho_", "xox", "AKIA", "glpat-"];

/// Returns `input` with credentials, tokens, connection strings and email
/// addresses redacted, control characters removed, whitespace collapsed and
/// the length capped at [`MAX_REASON_CHARS`].
pub fn sanitize_reason(input: &str) -> String {
    let mut words = Vec::new();
    let mut redact_next = false;
    for word in input.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        let lower = word.to_ascii_lowercase();
        let bare = lower.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
        let is_scheme = bare == "bearer" || bare == "basic";
        if redact_next && !is_scheme {
            redact_next = false;
            words.push("[redacted]".to_string());
            continue;
        }
        if is_scheme || is_secret_label(&lower) {
            redact_next = true;
            words.push(word.to_string());
            continue;
        }
        words.push(sanitize_word(word));
    }
    cap(words.join(" "))
}

/// `password:` or `token=` with the value in the next word.
fn is_secret_label(lower: &str) -> bool {
    let Some(key) = lower.strip_suffix(':').or_else(|| lower.strip_suffix('=')) else {
        return false;
    };
    let key = key.trim_matches(|c: char| c == '"' || c == '\'');
    SECRET_KEYS.contains(&key)
}

fn sanitize_word(word: &str) -> String {
    if let Some(url) = sanitize_url(word) {
        return url;
    }
    if looks_like_email(word) {
        return "[email]".to_string();
    }
    if looks_like_token(word) {
        return "[token]".to_string();
    }
    redact_key_values(word)
}

fn sanitize_url(word: &str) -> Option<String> {
    let scheme_end = word.find("://")?;
    let scheme = word[..scheme_end]
        .rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '+')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if CONNECTION_SCHEMES.contains(&scheme.as_str()) {
        return Some(format!(
            "{}[connection string]",
            &word[..scheme_end - scheme.len()]
        ));
    }
    let rest = &word[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let tail = redact_key_values(&rest[authority_end..]);
    let authority = match authority.rfind('@') {
        Some(at) => format!("[redacted]@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    Some(format!("{}://{}{}", &word[..scheme_end], authority, tail))
}

fn looks_like_email(word: &str) -> bool {
    let word = word.trim_matches(|c: char| "<>()[]\"',;:".contains(c));
    let Some((local, domain)) = word.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn looks_like_token(word: &str) -> bool {
    let word = word.trim_matches(|c: char| "<>()[]\"',;:.".contains(c));
    if TOKEN_PREFIXES.iter().any(|p| word.starts_with(p)) && word.len() >= 12 {
        return true;
    }
    let opaque = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_+/=.".contains(c));
    let digits = word.chars().filter(|c| c.is_ascii_digit()).count();
    let letters = word.chars().filter(|c| c.is_ascii_alphabetic()).count();
    opaque && word.len() >= 24 && digits >= 4 && letters >= 4 && !is_uuid(word)
}

/// UUIDs name items; they are ids, not secrets, and operators need them.
fn is_uuid(word: &str) -> bool {
    word.len() == 36 && word.chars().filter(|c| *c == '-').count() == 4
}

/// Redacts the values of `key=value` / `key:value` pairs inside one word,
/// e.g. `host=db;password=hunter2` or `?token=abc&x=1`.
fn redact_key_values(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while !rest.is_empty() {
        let separator = rest.find(['=', ':']);
        let Some(pos) = separator else {
            out.push_str(rest);
            break;
        };
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        out.push_str(&tail[..1]);
        let key_start = head
            .rfind(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-')
            .map_or(0, |i| i + 1);
        let key = head[key_start..].to_ascii_lowercase();
        let value = &tail[1..];
        let value_end = value
            .find([';', '&', ',', '"', '\''])
            .unwrap_or(value.len());
        if SECRET_KEYS.contains(&key.as_str()) && value_end > 0 {
            out.push_str("[redacted]");
            rest = &value[value_end..];
        } else {
            rest = value;
        }
    }
    out
}

fn cap(text: String) -> String {
    if text.chars().count() <= MAX_REASON_CHARS {
        return text;
    }
    let mut capped: String = text.chars().take(MAX_REASON_CHARS - 1).collect();
    capped.push('…');
    capped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_clean(input: &str, secret: &str) {
        let out = sanitize_reason(input);
        assert!(!out.contains(secret), "{secret:?} leaked in {out:?}");
    }

    #[test]
    fn redacts_authorization_headers() {
        assert_clean("401 with Authorization: Bearer abc.def.ghi", "abc.def.ghi");
        assert_clean("sent Basic dXNlcjpwYXNz upstream", "dXNlcjpwYXNz");
    }

    #[test]
    fn redacts_key_value_secrets() {
        assert_clean("host=db;password=hunter2;port=5432", "hunter2");
        assert_clean("GET /x?token=s3cr3tvalue&page=2", "s3cr3tvalue");
        assert_clean("api_key: K9xQ", "K9xQ");
        assert_clean("client_secret=zzTop", "zzTop");
        assert_eq!(
            sanitize_reason("host=db;password=hunter2;port=5432"),
            "host=db;password=[redacted];port=5432"
        );
    }

    #[test]
    fn redacts_connection_strings_and_url_credentials() {
        assert_clean(
            "connect postgres://admin:pw123@db.internal:5432/prod failed",
            "pw123",
        );
        assert_clean(
            "connect postgres://admin:pw123@db.internal:5432/prod failed",
            "db.internal",
        );
        let out = sanitize_reason("GET https://bob:hunter2@api.example.com/v1 timed out");
        assert_eq!(out, "GET https://[redacted]@api.example.com/v1 timed out");
    }

    #[test]
    fn redacts_emails_and_opaque_tokens() {
        assert_clean(
            "owner jane.doe@contoso.com lacks rights",
            "jane.doe@contoso.com",
        );
        assert_clean("key ghp_AbCdEf1234567890 rejected", "ghp_AbCdEf1234567890");
        assert_clean(
            "sig a8f5f167f44f4964e6c998dee827110c9 bad",
            "a8f5f167f44f4964e6c998dee827110c9",
        );
    }

    #[test]
    fn keeps_ordinary_prose_and_ids() {
        let text = "Policy 0190a6b2-7c1e-7d3a-9f00-000000000001 is already in the backup set";
        assert_eq!(sanitize_reason(text), text);
        assert_eq!(
            sanitize_reason("Upstream returned 503: try later"),
            "Upstream returned 503: try later"
        );
    }

    #[test]
    fn caps_length_and_strips_control_characters() {
        let long = "x ".repeat(1_000);
        assert_eq!(sanitize_reason(&long).chars().count(), MAX_REASON_CHARS);
        assert_eq!(sanitize_reason("a\u{0}b\n\tc"), "a b c");
    }
}
