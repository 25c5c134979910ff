//! Generators for the property tests, in one place: text as users, files
//! and databases hand it over, secrets planted in every layout the
//! sanitiser knows, and raw bytes for readers of files.

use proptest::prelude::*;
use proptest::sample::select;

/// Cases per property unless `PROPTEST_CASES` says otherwise: enough to
/// catch the ordinary, few enough that `make test` stays fast. Run with
/// `PROPTEST_CASES=20000` when changing the sanitiser.
const DEFAULT_CASES: u32 = 128;

pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Fewer cases, for properties over megabyte inputs.
pub fn config_large() -> ProptestConfig {
    ProptestConfig {
        cases: (config().cases / 32).max(2),
        // A failing megabyte would be written out whole.
        failure_persistence: None,
        ..config()
    }
}

/// Any character, weighted towards the ones that matter: ASCII, the
/// punctuation rules look for, controls (NUL, newlines, DEL, C1),
/// invisible and bidi marks, combining marks, letters of other scripts,
/// emoji, and the whole of Unicode.
pub fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~'),
        3 => select(vec![
            '=', ':', '"', '\'', ';', ',', '&', '@', '.', '/', '{', '}', '[', ']', ' ', '-', '_',
            '…', '\\', '?', '#', '+', '<', '>', '|', '`', '(', ')',
        ]),
        1 => select(vec!['\0', '\t', '\n', '\r', '\u{7f}', '\u{85}', '\u{1b}', '\u{9f}']),
        1 => select(vec![
            '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}',
            '\u{2066}', '\u{2069}', '\u{FEFF}', '\u{AD}', '\u{2028}', '\u{A0}', '\u{3000}',
        ]),
        1 => select(vec!['\u{301}', '\u{308}', '\u{20DD}', '\u{FE0F}', '\u{E0067}']),
        2 => select(vec![
            'ü', 'ß', 'é', 'Ж', '中', 'ع', 'ש', '😀', '👨', '🏴', 'İ', 'ǅ', 'Ⅻ', '٣', '𝔘',
        ]),
        2 => any::<char>(),
    ]
}

/// Text of any characters, up to `max` of them.
pub fn any_text_up_to(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any_char(), 0..=max).prop_map(|chars| chars.into_iter().collect())
}

/// Text of any characters, up to 200.
pub fn any_text() -> impl Strategy<Value = String> {
    any_text_up_to(200)
}

/// Pieces of the shapes the sanitiser looks for, so that random text
/// builds and breaks them in every combination.
const FRAGMENTS: [&str; 64] = [
    "password",
    "Password",
    "token",
    "clientSecret",
    "x-api-key",
    "db.password",
    "sessionId",
    "author",
    "tokenizer",
    "signal",
    "token_type",
    "Zürich",
    "Gerät",
    "=",
    ":",
    " = ",
    ": ",
    "=>",
    "\"",
    "'",
    "\\\"",
    ";",
    ",",
    "&",
    "}",
    "{",
    "]",
    "[",
    ")",
    ". ",
    "…",
    "[redacted]",
    "[token]",
    "[email]",
    "Bearer ",
    "Basic ",
    "Authorization: ",
    "https://",
    "postgres://",
    "jdbc:",
    "mongodb+srv://",
    "user:pw@",
    "@",
    "example.com",
    "bob",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    "eyJhbGciOiJIUzI1NiJ9",
    ".",
    "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    "ghp_",
    "AKIA",
    "Q8xWz3Kp9LmN2vB7rT5yH1jD4fG6sA0e",
    "0190a6b2-7c1e-7d3a-9f00-000000000001",
    "drift:",
    "9f86d081884c7d659a2feaa0c55ad015",
    "?",
    "/",
    " ",
    " ",
    "\n",
    "\t",
    "é",
    "😀",
];

/// Text assembled from [`FRAGMENTS`] and any characters.
pub fn shaped_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => select(FRAGMENTS.to_vec()).prop_map(str::to_string),
        1 => any_text_up_to(6),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// Text as any source might give it: random characters or shaped pieces.
pub fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![any_text(), shaped_text()]
}

/// Text of about a megabyte: a piece of hostile text repeated.
pub fn megabyte_text() -> impl Strategy<Value = String> {
    (hostile_text(), 1usize..=4).prop_map(|(piece, megabytes)| {
        let piece = if piece.is_empty() {
            "x".to_string()
        } else {
            piece
        };
        piece.repeat(megabytes * 1_048_576 / piece.len() + 1)
    })
}

/// Key spellings of every secret family: camelCase, snake, kebab, dotted,
/// upper case.
pub const SECRET_KEYS: [&str; 38] = [
    "password",
    "Password",
    "PASSWORD",
    "passwd",
    "pwd",
    "Pwd",
    "passphrase",
    "secret",
    "client_secret",
    "clientSecret",
    "client-secret",
    "CLIENT_SECRET",
    "token",
    "access_token",
    "accessToken",
    "refresh_token",
    "id_token",
    "githubToken",
    "api_key",
    "apikey",
    "APIKey",
    "x-api-key",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "cookie",
    "set-cookie",
    "session",
    "sessionId",
    "sig",
    "signature",
    "private_key",
    "private-key",
    "aws_secret_access_key",
    "ConnectionString",
    "db.password",
    "db_password",
];

/// A canary: unique, credential-like (letters and digits, both cases).
pub fn canary() -> impl Strategy<Value = String> {
    "[a-z]{4}[0-9]{2}[A-Z]{4}[a-zA-Z0-9]{4,12}".prop_map(|tail| format!("Cy{tail}"))
}

/// A secret in one of the layouts the sanitiser redacts: the text, and
/// the secrets in it that must not survive.
pub fn planted_secret() -> impl Strategy<Value = (String, Vec<String>)> {
    let key = select(SECRET_KEYS.to_vec());
    let random = "([a-z][A-Z0-9]){12,20}";
    let hex = "[0-9a-f]{38}";
    (key, canary(), canary(), random, hex, 0..LAYOUTS).prop_map(
        |(key, secret, other, random, hex, n)| layout(n, key, &secret, &other, &random, &hex),
    )
}

/// How many layouts [`layout`] knows.
pub const LAYOUTS: usize = 30;

/// Layout number `n`: the text and the secrets it holds. `secret` and
/// `other` are canaries (`other` a second word of the value where the
/// layout has one); `random` a random-looking token, `hex` a hex string.
pub fn layout(
    n: usize,
    key: &str,
    secret: &str,
    other: &str,
    random: &str,
    hex: &str,
) -> (String, Vec<String>) {
    let one = |text: String| (text, vec![secret.to_string()]);
    let two = |text: String| (text, vec![secret.to_string(), other.to_string()]);
    match n {
        0 => one(format!("{key}={secret}")),
        1 => one(format!("{key}: {secret}")),
        2 => one(format!("{key} = {secret}")),
        3 => one(format!("\"{key}\":\"{secret}\"")),
        4 => two(format!("\"{key}\": \"{secret} {other}\"")),
        5 => one(format!("'{key}': '{secret}'")),
        6 => two(format!("{key}={secret} {other}")),
        7 => one(format!("{{\"{key}\": {{\"inner\": \"{secret}\"}}}}")),
        8 => one(format!("{key} => '{secret}'")),
        9 => one(format!("Server=db;{key}={secret};Database=app")),
        10 => one(format!("Authorization: Bearer {secret}")),
        11 => one(format!("Bearer {secret}")),
        12 => one(format!("Basic {secret}")),
        13 => one(format!("postgres://admin:{secret}@db.internal:5432/prod")),
        14 => two(format!(
            "mongodb+srv://{secret}:{other}@cluster0.example.net/db"
        )),
        15 => one(format!(
            "jdbc:sqlserver://db:1433;user=sa;password={secret}"
        )),
        16 => one(format!("https://deploy:{secret}@api.example.com/v1")),
        17 => one(format!("https://api.example.com/cb?{key}={secret}&page=2")),
        18 => two(format!("eyJhbGciOiJIUzI1NiJ9.eyJ{secret}.{other}")),
        19 => two(format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{secret}\n{other}\n-----END RSA PRIVATE KEY-----"
        )),
        20 => two(format!("-----BEGIN PRIVATE KEY-----\n{secret} {other}")),
        21 => one(format!("ghp_{secret}")),
        22 => one(format!("glpat-{secret}")),
        23 => (
            format!("AKIA{}", secret.to_ascii_uppercase()),
            vec![secret.to_ascii_uppercase()],
        ),
        24 => one(format!("{secret}@example.com")),
        25 => (random.to_string(), vec![random.to_string()]),
        26 => one(format!("{{\\\"{key}\\\":\\\"{secret}\\\"}}")),
        27 => two(format!("{key}=\"{secret} {other}\"")),
        28 => one(format!("xoxb-1234-{secret}")),
        _ => {
            let hex = format!("a1{hex}");
            (format!("sha1 {hex}"), vec![hex])
        }
    }
}

/// Bytes a file may hold: UTF-8 text, invalid sequences, lone surrogates
/// as CESU-8 writes them, byte order marks, NULs.
pub fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let chunk = prop_oneof![
        4 => hostile_text().prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
        1 => select(vec![
            vec![0xED, 0xA0, 0x80],
            vec![0xED, 0xBF, 0xBF],
            vec![0xEF, 0xBB, 0xBF],
            vec![0xFF, 0xFE],
            vec![0xFE, 0xFF],
            vec![0xC0, 0x80],
            vec![0xF4, 0x90, 0x80, 0x80],
            vec![0x00],
        ]),
        2 => select(vec![
            br#"[{"subject_type":"device","external_id":"d1","display_name":"x","payload":{}}]"#
                .to_vec(),
            b"[".to_vec(),
            b"]".to_vec(),
            br#"{"subject_type":"#.to_vec(),
        ]),
    ];
    proptest::collection::vec(chunk, 0..8).prop_map(|chunks| chunks.concat())
}
