use super::*;
use crate::domain::arbitrary::{self, planted_secret, SECRET_KEYS};
use proptest::prelude::*;

fn clean(input: &str) -> String {
    sanitize_reason(input)
}

fn assert_clean(input: &str, secret: &str) {
    let out = clean(input);
    assert!(!out.contains(secret), "{secret:?} leaked in {out:?}");
}

// --- Layouts ---------------------------------------------------------------

#[test]
fn redacts_each_key_layout() {
    for (input, expected) in [
        ("password=hunter2", "password=[redacted]"),
        ("password: hunter2", "password: [redacted]"),
        ("password = hunter2", "password = [redacted]"),
        (r#"{"password":"hunter2"}"#, r#"{"password":"[redacted]"}"#),
        (
            r#"{"password": "hunter 2"}"#,
            r#"{"password": "[redacted]"}"#,
        ),
        ("{'password': 'hunter2'}", "{'password': '[redacted]'}"),
        ("password => 'hunter2'", "password => '[redacted]'"),
        (
            r#"password="hunter 2" next"#,
            r#"password="[redacted]" next"#,
        ),
        (
            r#"{\"password\":\"hunter2\"}"#,
            r#"{\"password\":\"[redacted]\"}"#,
        ),
        (
            r#"{"credentials": {"user": "bob", "pw": "x"}, "ok": 1}"#,
            r#"{"credentials": [redacted], "ok": 1}"#,
        ),
        ("password=", "password="),
        (r#""password": """#, r#""password": """#),
    ] {
        assert_eq!(clean(input), expected, "{input}");
    }
}

#[test]
fn an_unquoted_value_runs_to_the_next_separator() {
    for (input, expected) in [
        ("password=v1 v2", "password=[redacted]"),
        ("password=v1 v2; next=1", "password=[redacted]; next=1"),
        ("token=a b, c=d", "token=[redacted], c=d"),
        ("?token=abc&page=2", "?token=[redacted]&page=2"),
        ("(secret=abc) then", "(secret=[redacted]) then"),
        (
            "secret=abc. Then the sync failed",
            "secret=[redacted]. Then the sync failed",
        ),
        ("Cookie: a=1; b=2", "Cookie: [redacted]"),
        (r#"password="abc"#, r#"password="[redacted]""#),
        ("auth: password => 'abc' x", "auth: [redacted]"),
    ] {
        assert_eq!(clean(input), expected, "{input}");
    }
}

#[test]
fn redacts_every_key_family_in_every_spelling() {
    for key in SECRET_KEYS {
        for text in [
            format!("{key}=Sx9"),
            format!("\"{key}\": \"Sx9\""),
            format!("{key}: Sx9"),
        ] {
            assert_clean(&text, "Sx9");
        }
    }
    for key in [
        "X-Auth-Token",
        "dbpassword",
        "SharedAccessKey",
        "AccountKey",
        "Proxy-Authorization",
    ] {
        assert_clean(&format!("{key}=Sx9"), "Sx9");
    }
}

#[test]
fn keys_that_only_resemble_secrets_stay() {
    for text in [
        "author=Jane",
        "signal: lost",
        "tokenizer=bpe",
        "token_type=bearer",
        "session_timeout=30",
        "password_policy: strict",
        "passwordless=true",
        "key=value",
        "Zürich:HQ",
        "Gerät=1",
        "device:Zürich:HQ",
    ] {
        assert_eq!(clean(text), text);
    }
}

#[test]
fn redacts_authorization_headers_and_bare_schemes() {
    assert_eq!(
        clean("401 with Authorization: Bearer abc.def.ghi"),
        "401 with Authorization: [redacted]"
    );
    assert_eq!(
        clean("sent Bearer abc123def upstream"),
        "sent Bearer [redacted] upstream"
    );
    assert_eq!(
        clean("sent Basic dXNlcjpwYXNz upstream"),
        "sent Basic [redacted] upstream"
    );
    assert_eq!(clean("basic validation failed"), "basic validation failed");
}

#[test]
fn redacts_connection_strings_and_url_credentials() {
    assert_eq!(
        clean("connect postgres://admin:pw123@db.internal:5432/prod failed"),
        "connect postgres://[redacted] failed"
    );
    for input in [
        "mongodb+srv://u:p4ss@cluster0.example.net/db",
        "redis://:p4ss@cache:6379",
        "jdbc:sqlserver://db:1433;user=sa;password=p4ss",
        "url=mysql://root:p4ss@db/app",
    ] {
        assert_clean(input, "p4ss");
    }
    assert_eq!(
        clean("GET https://bob:hunter2@api.example.com/v1 timed out"),
        "GET https://[redacted]@api.example.com/v1 timed out"
    );
    assert_eq!(
        clean("GET https://api.example.com/cb?code=1&access_token=abc&x=1"),
        "GET https://api.example.com/cb?code=1&access_token=[redacted]&x=1"
    );
    assert_eq!(
        clean("Server=tcp:db,1433;User Id=sa;Password=p4ss;Pwd=p5ss;ConnectionString=x"),
        "Server=tcp:db,1433;User Id=sa;Password=[redacted];Pwd=[redacted];ConnectionString=[redacted]"
    );
}

#[test]
fn redacts_jwts_pem_blocks_and_known_token_prefixes() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert_eq!(
        clean(&format!("token {jwt} expired")),
        "token [token] expired"
    );
    assert_eq!(
        clean("key -----BEGIN PRIVATE KEY-----\nMIIEv\nQ==\n-----END PRIVATE KEY----- rejected"),
        "key [redacted] rejected"
    );
    assert_eq!(
        clean("key -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk then more"),
        "key [redacted]"
    );
    for token in [
        "ghp_AbCdEf1234567890",
        "gho_AbCdEf1234567890",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "glpat-AbCdEf1234567890",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "xoxb-1234567890-abcdefghij",
        "AKIAIOSFODNN7EXAMPLE",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
    ] {
        assert_eq!(
            clean(&format!("key {token} rejected")),
            "key [token] rejected"
        );
    }
}

#[test]
fn redacts_long_random_strings_but_not_ids_words_or_paths() {
    assert_eq!(
        clean("sig wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY bad"),
        "sig [token]/[token]/[token] bad"
    );
    for secret in [
        "a8f5f167f44f4964e6c998dee827110c9",
        "Q8xWz3Kp9LmN2vB7rT5yH1jD4fG6sA0e",
    ] {
        assert_eq!(
            clean(&format!("sig {secret} bad")),
            "sig [token] bad",
            "{secret}"
        );
    }
    for text in [
        "Policy 0190a6b2-7c1e-7d3a-9f00-000000000001 is already in the backup set",
        "/t/acme/operations/0190a6b2-7c1e-7d3a-9f00-000000000001?bucket=failed",
        "Donaudampfschifffahrtsgesellschaftskapitän retired",
        "model Windows10Enterprise2022H2 on ConfigurationProfileAssignment",
        "read /var/lib/opshub/subscriptions/resourceGroups/data.db",
        "fingerprint drift:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "version 10.0.19045.2965 at 2026-11-27T09:00:00Z",
        "object 507f1f77bcf86cd799439011",
        "Upstream returned 503: try later",
    ] {
        assert_eq!(clean(text), text);
    }
}

#[test]
fn redacts_email_addresses() {
    assert_eq!(
        clean("owner jane.doe@contoso.com lacks rights"),
        "owner [email] lacks rights"
    );
    assert_eq!(clean("mailto:jürgen@müller.de."), "mailto:[email].");
    assert_eq!(
        clean("opshub@0.1.0 and git@github"),
        "opshub@0.1.0 and git@github"
    );
}

// --- Text hygiene --------------------------------------------------------------

#[test]
fn caps_length_between_words_and_strips_control_characters() {
    let long = "word ".repeat(1_000);
    let out = clean(&long);
    assert!(out.chars().count() <= MAX_REASON_CHARS);
    assert!(out.ends_with("word…"), "{out}");
    assert_eq!(clean("a\u{0}b\n\tc"), "a b c");
    assert_eq!(clean("  a \u{202E}b\u{200B}c  "), "a bc");
    assert_eq!(sanitize_text("note password=abc more", 12), "note…");
}

#[test]
fn reads_a_bounded_prefix_and_drops_the_word_it_cuts() {
    let input = format!("{} ghp_AbCdEf1234567890", "a ".repeat(SCAN_CHARS / 2 - 2));
    let out = sanitize_text(&input, usize::MAX);
    assert!(out.ends_with('…'));
    assert!(!out.contains("ghp_"), "a fragment of the token survived");
}

#[test]
fn quotes_input_sanitised_and_short() {
    assert_eq!(quote_input("password=x"), "\"password=[redacted]\"");
    assert!(quote_input(&"y ".repeat(500)).chars().count() <= MAX_QUOTED_CHARS + 2);
    assert!(is_clean_identifier("Zürich:HQ"));
    assert!(!is_clean_identifier("scope token=abc"));
    assert!(!is_clean_identifier(" padded"));
    assert!(!is_clean_identifier(""));
}

// --- Properties ----------------------------------------------------------------

fn check_output(out: &str, max: usize) -> Result<(), TestCaseError> {
    prop_assert!(out.chars().count() <= max, "{} chars", out.chars().count());
    prop_assert!(
        !out.chars().any(|c| c.is_control() || is_invisible(c)),
        "{out:?}"
    );
    prop_assert!(
        !out.starts_with(' ') && !out.ends_with(' ') && !out.contains("  "),
        "{out:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(arbitrary::config())]

    #[test]
    fn output_is_clean_capped_and_idempotent(input in arbitrary::hostile_text(), max in 1usize..=400) {
        let once = sanitize_text(&input, max);
        check_output(&once, max)?;
        prop_assert_eq!(&sanitize_text(&once, max), &once);
        let reason = sanitize_reason(&input);
        prop_assert_eq!(sanitize_reason(&reason), reason);
    }

    #[test]
    fn planted_secrets_never_survive(
        before in arbitrary::hostile_text(),
        (planted, secrets) in planted_secret(),
        after in arbitrary::hostile_text(),
    ) {
        let input = format!("{before} {planted} {after}");
        let out = sanitize_reason(&input);
        for secret in &secrets {
            prop_assert!(!out.contains(secret.as_str()), "{secret:?} survived in {out:?}");
        }
        prop_assert_eq!(sanitize_reason(&out), out);
    }
}

proptest! {
    #![proptest_config(arbitrary::config_large())]

    #[test]
    fn megabyte_inputs_are_handled(input in arbitrary::megabyte_text()) {
        let out = sanitize_reason(&input);
        check_output(&out, MAX_REASON_CHARS)?;
        prop_assert_eq!(sanitize_reason(&out), out);
    }
}
