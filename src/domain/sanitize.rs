//! The one sanitiser every stored reason, shown name and echoed input
//! passes through.
//!
//! Text comes from upstream errors, inventories and people, and may carry
//! credentials. We redact whatever looks like one rather than trying to
//! allowlist prose, and cap the length so a reason stays a reason, not a
//! payload dump. The rules, in the order they are tried at each place:
//!
//! - PEM blocks (`-----BEGIN …` to the matching `-----END …-----`, or to the
//!   end of the text when that is missing) become `[redacted]`.
//! - URLs: connection strings (`postgres://…`, `jdbc:…`, …) become
//!   `scheme://[redacted]`; any other URL loses its userinfo
//!   (`https://[redacted]@host`); its path and query go through the other
//!   rules (`?token=…` is a key).
//! - `Bearer x` / `Basic x`: a token-like `x` becomes `[redacted]`.
//! - Secret keys (see [`is_secret_key`]) in any common layout: `key=v`,
//!   `key: v`, `key = v`, `"key": "v"`, `'key': 'v'`, `key => v`. A quoted
//!   value is redacted to its closing quote; a bracketed one to its closing
//!   bracket; any other to the next separator (`; , & | ) ] } > <` a quote,
//!   a sentence's full stop) or the end of the text, so `key=v1 v2` loses
//!   both words.
//! - E-mail addresses become `[email]`.
//! - JWTs, well-known token prefixes (`ghp_`, `glpat-`, `AKIA`, …) and long
//!   random-looking strings become `[token]`. Hyphenated UUIDs are ids and
//!   stay; so do ordinary words, paths and hex digests labelled like
//!   `drift:<hex>` (see [`looks_random`]).
//!
//! The output has no control or invisible formatting characters, single
//! spaces only, and at most the asked number of characters (`…` marks a
//! cut, which always falls between words). Sanitising is idempotent:
//! `sanitize(sanitize(x)) == sanitize(x)`. Work is linear and bounded: only
//! the first [`SCAN_CHARS`] characters are read.

/// Longest failure reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 300;
/// Longest echo of a user's input inside an error message.
pub const MAX_QUOTED_CHARS: usize = 60;
/// Characters of input read. The output is capped far below this, so
/// reading more could only show more of what is cut anyway; the word the
/// limit falls into is dropped, so no fragment of a secret survives it.
const SCAN_CHARS: usize = 8_192;

const REDACTED: &str = "[redacted]";
const TOKEN: &str = "[token]";
const EMAIL: &str = "[email]";
const MARKERS: [&str; 3] = [REDACTED, TOKEN, EMAIL];
/// Ends text that was cut.
const CUT: char = '…';

/// Returns `input` sanitised and capped at [`MAX_REASON_CHARS`].
pub fn sanitize_reason(input: &str) -> String {
    sanitize_text(input, MAX_REASON_CHARS)
}

/// Returns `input` with credentials, tokens, connection strings and e-mail
/// addresses redacted, control and invisible characters removed, whitespace
/// collapsed and the length capped at `max_chars` characters.
pub fn sanitize_text(input: &str, max_chars: usize) -> String {
    let (text, truncated) = normalise(input);
    cap(redact(&text), max_chars, truncated)
}

/// `input` for an error message: sanitised, short and quoted.
pub fn quote_input(input: &str) -> String {
    // Not `{:?}`: its escapes could make a capped echo ten times longer.
    format!("\"{}\"", sanitize_text(input, MAX_QUOTED_CHARS))
}

/// Whether `text` can serve as an identifier people will read (a scope
/// key, an external id): non-empty and left unchanged by the sanitiser, so
/// it carries no credential, e-mail address, control character or stray
/// whitespace.
pub fn is_clean_identifier(text: &str) -> bool {
    !text.is_empty() && sanitize_reason(text) == text
}

/// Characters that render as nothing but can hide or reorder text (bidi
/// overrides, zero-width spaces, BOMs). Zero-width (non-)joiners stay:
/// scripts and emoji need them.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{61C}' | '\u{180E}' | '\u{200B}' | '\u{200E}' | '\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// The first [`SCAN_CHARS`] characters with invisible ones removed and
/// every run of whitespace and control characters made one space; `true`
/// when the input went on.
fn normalise(input: &str) -> (Vec<char>, bool) {
    let mut text = Vec::new();
    let mut gap = false;
    for c in input.chars() {
        if is_invisible(c) {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            gap = true;
            continue;
        }
        if gap && !text.is_empty() {
            text.push(' ');
        }
        gap = false;
        text.push(c);
        if text.len() > SCAN_CHARS {
            let last_space = text.iter().rposition(|&c| c == ' ').unwrap_or(0);
            text.truncate(last_space);
            return (text, true);
        }
    }
    (text, false)
}

/// At most `max_chars` characters; a cut falls between words (a word's
/// fragment could read as something else the next time round) and is
/// marked with `…`.
fn cap(text: String, max_chars: usize, truncated: bool) -> String {
    let count = text.chars().count();
    if !truncated && count <= max_chars {
        return text;
    }
    let Some(budget) = max_chars.checked_sub(1) else {
        return String::new();
    };
    let end = if count <= budget {
        text.len()
    } else {
        text.char_indices()
            .take(budget + 1)
            .filter(|(_, c)| *c == ' ')
            .map(|(byte, _)| byte)
            .last()
            .unwrap_or(0)
    };
    let mut capped = text[..end].trim_end().to_string();
    capped.push(CUT);
    capped
}

/// A stretch of text a rule rewrites: `start..end` becomes `replacement`.
struct Span {
    start: usize,
    end: usize,
    replacement: String,
}

/// Applies the rules left to right. Span rules (PEM, URL, Bearer, keys) are
/// tried where they can start; the text between spans goes through the
/// word rules (e-mail addresses, tokens).
fn redact(text: &[char]) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut plain = 0;
    let mut i = 0;
    while i < text.len() {
        // Right after a span counts as a word start: its replacement ends
        // with a marker, a quote or punctuation the next time round.
        let starts_word = i == plain || !is_key_char(text[i - 1]);
        let span = match text[i] {
            '-' => pem_block(text, i),
            ':' => url(text, plain, i),
            _ => None,
        }
        .or_else(|| {
            starts_word
                .then(|| bearer(text, i).or_else(|| key_value(text, i)))
                .flatten()
        });
        match span {
            Some(span) => {
                redact_words(&text[plain..span.start], &mut out);
                let replacement = match out.ends_with(' ') {
                    true => span.replacement.trim_start(),
                    false => &span.replacement,
                };
                out.push_str(replacement);
                i = span.end;
                plain = i;
            }
            None => i += 1,
        }
    }
    redact_words(&text[plain..], &mut out);
    out
}

fn starts_with(text: &[char], at: usize, prefix: &str) -> bool {
    (at..)
        .zip(prefix.chars())
        .all(|(k, p)| text.get(k) == Some(&p))
}

fn starts_with_ignore_case(text: &[char], at: usize, prefix: &str) -> bool {
    prefix
        .chars()
        .enumerate()
        .all(|(k, p)| text.get(at + k).is_some_and(|c| c.eq_ignore_ascii_case(&p)))
}

fn find(text: &[char], from: usize, needle: &str) -> Option<usize> {
    (from..text.len()).find(|&k| starts_with(text, k, needle))
}

fn collect(text: &[char]) -> String {
    text.iter().collect()
}

/// The marker starting at `at`, if any.
fn marker_at(text: &[char], at: usize) -> Option<&'static str> {
    MARKERS.into_iter().find(|m| starts_with(text, at, m))
}

/// Whether `text` holds nothing but markers, cut marks and spaces: such a
/// value was redacted already (or cut away), and is left as it is.
fn only_markers(text: &[char]) -> bool {
    let mut k = 0;
    while k < text.len() {
        match marker_at(text, k) {
            Some(marker) => k += marker.chars().count(),
            None if text[k] == CUT || text[k] == ' ' => k += 1,
            None => return false,
        }
    }
    true
}

/// `[redacted]` in place of `from..to`, unless that holds only markers
/// (redacted before, or cut away): then it stays as it is. Spans cover only what they redact: the
/// words around them are text like any other, the same whether or not
/// the span was redacted before.
fn content_span(text: &[char], from: usize, to: usize) -> Option<Span> {
    (to > from).then(|| Span {
        start: from,
        end: to,
        // Kept as a span all the same: what lies inside stays claimed, as
        // it was the first time round.
        replacement: if only_markers(&text[from..to]) {
            collect(&text[from..to])
        } else {
            REDACTED.to_string()
        },
    })
}

// --- PEM blocks --------------------------------------------------------------

const PEM_BEGIN: &str = "-----BEGIN";

/// Just after the PEM block starting at `at`: after its `-----END …-----`
/// line, or at the end of the text when that is missing.
fn pem_end(text: &[char], at: usize) -> usize {
    find(text, at + PEM_BEGIN.len(), "-----END")
        .and_then(|end| {
            let label = end + 8;
            find(text, label, "-----")
                .filter(|close| close - label <= 64)
                .map(|close| close + 5)
        })
        .unwrap_or(text.len())
}

/// A PEM block, as `[redacted]` set off by spaces: the block may have
/// held the only spaces between the words around it.
fn pem_block(text: &[char], at: usize) -> Option<Span> {
    if !starts_with(text, at, PEM_BEGIN) {
        return None;
    }
    let end = pem_end(text, at);
    let space = |neighbour: Option<&char>| match neighbour {
        Some(c) if *c != ' ' => " ",
        _ => "",
    };
    let before = at.checked_sub(1).and_then(|k| text.get(k));
    Some(Span {
        start: at,
        end,
        replacement: format!("{}{REDACTED}{}", space(before), space(text.get(end))),
    })
}

// --- URLs ----------------------------------------------------------------------

/// Schemes whose URLs are connection strings: host, database and user are
/// as sensitive as the password.
const CONNECTION_SCHEMES: [&str; 16] = [
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "mongodb",
    "mongodb+srv",
    "redis",
    "rediss",
    "amqp",
    "amqps",
    "sqlserver",
    "mssql",
    "oracle",
    "couchdb",
    "ldap",
    "ldaps",
];

/// Where a URL starting at `from` ends.
/// Where a URL starting at `from` ends: at a space or a quote, before a
/// PEM block glued to it (that is the PEM rule's), and before a marker (a
/// redaction may have taken the space that ended it).
fn url_end(text: &[char], from: usize) -> usize {
    (from..text.len())
        .find(|&k| {
            matches!(text[k], ' ' | '"' | '\'' | '<' | '>' | '`' | '[')
                || starts_with(text, k, PEM_BEGIN)
        })
        .unwrap_or(text.len())
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')
}

/// At a `:`: a connection string (from its scheme on), or the userinfo of
/// any other URL. The scheme is looked for in the text before the colon
/// that no rule has claimed yet (from `plain` on).
fn url(text: &[char], plain: usize, colon: usize) -> Option<Span> {
    let run_start = (plain..colon)
        .rev()
        .find(|&k| !is_scheme_char(text[k]))
        .map_or(plain, |k| k + 1);
    let run = collect(&text[run_start..colon]).to_ascii_lowercase();
    // The run ends with `name`, which starts a word.
    let named = |name: &str| {
        run.ends_with(name) && {
            let start = colon - name.len();
            start == run_start || !text[start - 1].is_ascii_alphanumeric()
        }
    };
    if !starts_with(text, colon, "://") {
        // `jdbc:postgresql:…`, `jdbc:sqlserver:…`: a driver name follows.
        let driver = text.get(colon + 1).is_some_and(char::is_ascii_alphabetic);
        return (named("jdbc") && driver)
            .then(|| connection_string(text, colon + 1))
            .flatten();
    }
    let rest = colon + 3;
    if CONNECTION_SCHEMES.into_iter().any(named) {
        return connection_string(text, rest);
    }
    let end = url_end(text, rest);
    let authority_end = (rest..end)
        .find(|&k| matches!(text[k], '/' | '?' | '#'))
        .unwrap_or(end);
    let at_sign = (rest..authority_end).rev().find(|&k| text[k] == '@')?;
    content_span(text, rest, at_sign)
}

/// `scheme://[redacted]`: everything after the scheme goes.
fn connection_string(text: &[char], rest: usize) -> Option<Span> {
    content_span(text, rest, url_end(text, rest))
}

// --- Authorization schemes -------------------------------------------------------

/// Characters of a bearer token (`=` padding aside).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/')
}

/// `Bearer x` / `Basic x` outside a key: `x` goes when it looks like a
/// credential (a digit, a symbol or an upper-case letter inside), so
/// "basic validation" stays prose.
fn bearer(text: &[char], at: usize) -> Option<Span> {
    let scheme = ["bearer", "basic"]
        .into_iter()
        .find(|s| starts_with_ignore_case(text, at, s))?;
    let space = at + scheme.len();
    if text.get(space) != Some(&' ') {
        return None;
    }
    let start = space + 1;
    let body_end = (start..text.len())
        .find(|&k| !is_token_char(text[k]) || starts_with(text, k, PEM_BEGIN))
        .unwrap_or(text.len());
    let end = (body_end..text.len())
        .find(|&k| text[k] != '=')
        .unwrap_or(text.len());
    let token = &text[start..body_end];
    // A token ends the word (`Bearer key=value` is a key's business), and
    // a secret's key is not a token (`Bearer password = x`).
    let word_ends = text
        .get(end)
        .is_none_or(|c| matches!(c, ' ' | ',' | ';' | ')' | '"' | '\''))
        || starts_with(text, end, PEM_BEGIN);
    if !word_ends || is_secret_key(token) {
        return None;
    }
    let credential_like = token.iter().any(|c| !c.is_ascii_alphabetic())
        || (token.iter().skip(1).any(char::is_ascii_uppercase)
            && token.iter().any(char::is_ascii_lowercase));
    (token.len() >= 6 && credential_like)
        .then(|| content_span(text, start, end))
        .flatten()
}

// --- Keys ------------------------------------------------------------------------

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Words that make a key secret wherever they stand in it (`db_password`,
/// `accessToken`, `X-Auth-Token`).
const SECRET_WORDS: [&str; 21] = [
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "passcode",
    "secret",
    "secrets",
    "token",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "creds",
    "cookie",
    "cookies",
    "session",
    "sig",
    "signature",
    "apikey",
    "privatekey",
    "connectionstring",
];

/// Adjacent words that do (`x-api-key`, `private_key`, `AccountKey`).
const SECRET_PAIRS: [(&str, &str); 9] = [
    ("api", "key"),
    ("private", "key"),
    ("access", "key"),
    ("account", "key"),
    ("signing", "key"),
    ("encryption", "key"),
    ("master", "key"),
    ("shared", "key"),
    ("connection", "string"),
];

/// Endings of a key written as one word (`dbpassword`, `githubtoken`).
const SECRET_ENDINGS: [&str; 12] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "accountkey",
    "connectionstring",
    "credential",
    "credentials",
];

/// Last words that make a key describe a secret rather than hold one
/// (`token_type`, `session_timeout`, `password_policy`).
const DESCRIBING_WORDS: [&str; 18] = [
    "type",
    "count",
    "length",
    "size",
    "ttl",
    "timeout",
    "expiry",
    "expires",
    "expiration",
    "lifetime",
    "url",
    "uri",
    "endpoint",
    "method",
    "algorithm",
    "policy",
    "format",
    "version",
];

/// A key's words, lowercase: split at `_`, `-`, `.` and camelCase humps
/// (`APIKey` → `api`, `key`).
fn key_words(key: &[char]) -> Vec<String> {
    let mut words = Vec::new();
    for part in key.split(|c| !c.is_alphanumeric()) {
        let mut word = String::new();
        for (k, &c) in part.iter().enumerate() {
            let hump = k > 0
                && c.is_uppercase()
                && (part[k - 1].is_lowercase()
                    || part[k - 1].is_numeric()
                    || (part[k - 1].is_uppercase()
                        && part.get(k + 1).is_some_and(|n| n.is_lowercase())));
            if hump && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.extend(c.to_lowercase());
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

/// Whether a key names a secret, in any spelling: `clientSecret`,
/// `client-secret`, `CLIENT_SECRET`, `x-api-key`, `db.password`,
/// `sessionId`… but not `author`, `signal` or `tokenizer` (words match
/// whole) nor `token_type` (it describes a secret).
fn is_secret_key(key: &[char]) -> bool {
    let words = key_words(key);
    let Some(last) = words.last() else {
        return false;
    };
    if words.len() > 1 && DESCRIBING_WORDS.contains(&last.as_str()) {
        return false;
    }
    let joined = words.concat();
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        || words
            .windows(2)
            .any(|pair| SECRET_PAIRS.contains(&(pair[0].as_str(), pair[1].as_str())))
        || SECRET_ENDINGS.iter().any(|ending| joined.ends_with(ending))
}

/// The quote opening a quoted key or value at `at`: `"`, `'`, or the same
/// escaped (`\"` in JSON held in a string).
fn quote_at(text: &[char], at: usize) -> Option<&'static str> {
    match (text.get(at), text.get(at + 1)) {
        (Some('"'), _) => Some("\""),
        (Some('\''), _) => Some("'"),
        (Some('\\'), Some('"')) => Some("\\\""),
        (Some('\\'), Some('\'')) => Some("\\'"),
        _ => None,
    }
}

fn key_value(text: &[char], at: usize) -> Option<Span> {
    let open = quote_at(text, at);
    let key_start = at + open.map_or(0, |q| q.len());
    let key_end = (key_start..text.len())
        .find(|&k| !is_key_char(text[k]))
        .unwrap_or(text.len());
    if key_end == key_start {
        return None;
    }
    // The closing quote, also when the opening one went with the text
    // before (`x="a"password":"v"`).
    let mut k = key_end + quote_at(text, key_end).map_or(0, |q| q.len());
    k = assignment_end(text, k)?;
    let key = &text[key_start..key_end];
    if !is_secret_key(key) {
        return None;
    }
    let cookie = key_words(key).iter().any(|w| w.starts_with("cookie"));
    let value = value_extent(text, k, cookie);
    let (from, to) = value.content;
    // Only the value is the span: the key stays text like any other, the
    // same whether or not its value was redacted before.
    (to > from).then(|| Span {
        start: from,
        end: value.end,
        replacement: if only_markers(&text[from..to]) {
            collect(&text[from..value.end])
        } else {
            format!("{REDACTED}{}", value.closing)
        },
    })
}

/// Just after `=`, `:`, `=>` or `:=` at `at` (one space allowed either
/// side; `://` is a URL, not an assignment).
fn assignment_end(text: &[char], at: usize) -> Option<usize> {
    let mut k = at + usize::from(text.get(at) == Some(&' '));
    let assignment = ["=>", ":=", "=", ":"]
        .into_iter()
        .find(|a| starts_with(text, k, a))?;
    if starts_with(text, k, "://") {
        return None;
    }
    k += assignment.len();
    Some(k + usize::from(text.get(k) == Some(&' ')))
}

/// A value: what is redacted, where it ends, and what follows the marker
/// in its place (a quoted value keeps its quotes).
struct Value {
    content: (usize, usize),
    end: usize,
    closing: &'static str,
}

/// The value starting at `start`. A quoted value ends at its closing quote
/// (or with the text); but a quoted "value" followed by an assignment was
/// the next key (`auth: "password": "v"`), so the value goes on with the
/// value that one names.
fn value_extent(text: &[char], start: usize, cookie: bool) -> Value {
    let Some(quote) = quote_at(text, start) else {
        let end = unquoted_end(text, start, cookie);
        return Value {
            content: (start, end),
            end,
            closing: "",
        };
    };
    let from = start + quote.len();
    let (mut to, mut end) = quoted_end(text, from, quote);
    loop {
        // A key's closing quote glued on (`x=" "password":"v"`) counts too.
        let after_quote = quote_at(text, end).and_then(|q| assignment_end(text, end + q.len()));
        end = if let Some(next) = assignment_end(text, end).or(after_quote) {
            match quote_at(text, next) {
                Some(inner) => quoted_end(text, next + inner.len(), inner).1,
                None => unquoted_end(text, next, cookie),
            }
        } else if text.get(end).is_some_and(|c| c.is_alphanumeric()) {
            // Text glued to the closing quote: the quotes were not a pair
            // (`password=" x="v w"`); the value runs on.
            unquoted_end(text, end, cookie)
        } else {
            break;
        };
        to = end;
    }
    Value {
        content: (from, to),
        end,
        closing: quote,
    }
}

/// Where the content of a value quoted with `quote` ends (before the
/// closing quote) and where the value ends (after it); without a closing
/// quote, both at the end of the text.
fn quoted_end(text: &[char], from: usize, quote: &str) -> (usize, usize) {
    let mut k = from;
    while k < text.len() {
        if starts_with(text, k, quote) {
            return (k, k + quote.len());
        }
        k += if text[k] == '\\' { 2 } else { 1 };
    }
    (text.len(), text.len())
}

/// Where an unquoted value ends: at a separator outside brackets, a full
/// stop, or the end of the text. Markers are read whole.
fn unquoted_end(text: &[char], start: usize, cookie: bool) -> usize {
    let mut k = start;
    while k < text.len() {
        if let Some(marker) = marker_at(text, k) {
            k += marker.chars().count();
            continue;
        }
        let c = text[k];
        if c == '{' || c == '[' {
            k = group_end(text, k);
            continue;
        }
        if starts_with(text, k, PEM_BEGIN) {
            k = pem_end(text, k);
            continue;
        }
        // A quote right after an assignment opens a value inside this one
        // (`auth: password => 'v'`), read whole.
        let before = &text[start..k];
        let before = before.strip_suffix(&[' ']).unwrap_or(before);
        let assigned = before.last().is_some_and(|&p| matches!(p, '=' | ':' | '>'));
        if let (Some(quote), true) = (quote_at(text, k), assigned) {
            k = quoted_end(text, k + quote.len(), quote).1;
            continue;
        }
        // A key's closing quote (`x=" "password":"v"`): the value runs on.
        if let Some(quote) = quote_at(text, k) {
            if assignment_end(text, k + quote.len()).is_some() {
                k += quote.len();
                continue;
            }
        }
        let full_stop = c == '.' && text.get(k + 1).is_none_or(|&n| n == ' ' || n == CUT);
        let arrow = c == '>' && k > start && text[k - 1] == '=';
        let separator = matches!(
            c,
            ',' | '&' | '|' | '"' | '\'' | '`' | ')' | ']' | '}' | '>' | '<'
        ) && !arrow
            || (c == ';' && !cookie);
        if separator || full_stop {
            break;
        }
        k += 1;
    }
    k
}

/// Just after the bracket closing the one at `open` (quoted text inside
/// does not count), or the end of the text.
fn group_end(text: &[char], open: usize) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut k = open;
    while k < text.len() {
        let c = text[k];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == '\\' => k += 1,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '{' | '[' => depth += 1,
                '}' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return k + 1;
                    }
                }
                _ => {}
            },
        }
        k += 1;
    }
    text.len()
}

// --- Words -------------------------------------------------------------------------

/// E-mail addresses, then tokens, in text no span rule claimed.
fn redact_words(text: &[char], out: &mut String) {
    let mut written = 0;
    let mut k = 0;
    while k < text.len() {
        if text[k] != '@' {
            k += 1;
            continue;
        }
        let local_start = (written..k)
            .rev()
            .find(|&j| !is_local_char(text[j]))
            .map_or(written, |j| j + 1);
        let domain_end = (k + 1..text.len())
            .find(|&j| !is_domain_char(text[j]))
            .unwrap_or(text.len());
        let domain = &text[k + 1..domain_end];
        let trimmed = domain.len()
            - domain
                .iter()
                .rev()
                .take_while(|c| matches!(c, '.' | '-'))
                .count();
        // A domain running into a marker was cut short by a redaction.
        let cut_short = text.get(domain_end) == Some(&'[');
        if local_start < k && !cut_short && is_mail_domain(&domain[..trimmed]) {
            redact_tokens(&text[written..local_start], out);
            out.push_str(EMAIL);
            written = k + 1 + trimmed;
            k = written;
        } else {
            k += 1;
        }
    }
    redact_tokens(&text[written..], out);
}

fn is_local_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-')
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-')
}

/// `example.com`: two or more non-empty labels, the last alphabetic (so
/// `pkg@1.2.3` is a version, not an address).
fn is_mail_domain(domain: &[char]) -> bool {
    let labels: Vec<&[char]> = domain.split(|&c| c == '.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| !label.is_empty())
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.iter().all(|c| c.is_alphabetic()))
}

/// Characters of a token-like run: base64 and base64url (`=` only as
/// padding at its end, so that `key=value` stays two runs).
fn is_unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '_' | '-')
}

/// Well-known credential prefixes; what follows them must look random too.
const TOKEN_PREFIXES: [&str; 25] = [
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xoxs-",
    "xoxe-",
    "xapp-",
    "AKIA",
    "ASIA",
    "AIza",
    "npm_",
    "pypi-",
    "hf_",
    "sk-",
];

fn redact_tokens(text: &[char], out: &mut String) {
    let mut k = 0;
    while k < text.len() {
        if !is_unit_char(text[k]) {
            out.push(text[k]);
            k += 1;
            continue;
        }
        let end = unit_end(text, k);
        if let Some(jwt_end) = jwt_end(text, k, end) {
            out.push_str(TOKEN);
            k = jwt_end;
            continue;
        }
        let labelled = is_labelled(&text[..k]);
        redact_unit(&text[k..end], labelled, out);
        k = end;
    }
}

fn unit_end(text: &[char], from: usize) -> usize {
    let body = (from..text.len())
        .find(|&j| !is_unit_char(text[j]))
        .unwrap_or(text.len());
    (body..text.len())
        .find(|&j| text[j] != '=')
        .unwrap_or(text.len())
}

/// `eyJ….eyJ….sig` starting at `start` (whose first unit ends at `end`):
/// where the token ends.
fn jwt_end(text: &[char], start: usize, end: usize) -> Option<usize> {
    let segment = |from: usize, to: usize| starts_with(text, from, "eyJ") && to - from >= 10;
    if !segment(start, end) || text.get(end) != Some(&'.') {
        return None;
    }
    let payload_end = unit_end(text, end + 1);
    if !segment(end + 1, payload_end) || text.get(payload_end) != Some(&'.') {
        return None;
    }
    Some(unit_end(text, payload_end + 1))
}

/// Whether the unit about to start after `before` is labelled like
/// `drift:` or `sha256:` (a digest, named): a word of 1 to 16 lower-case
/// letters and digits, starting with a letter, then a colon. No token
/// looks like that, so a label never goes while what it names stays.
fn is_labelled(before: &[char]) -> bool {
    let Some((colon, label)) = before.split_last() else {
        return false;
    };
    let len = label
        .iter()
        .rev()
        .take(17)
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .count();
    let word = &label[label.len() - len..];
    *colon == ':'
        && (1..=16).contains(&len)
        && word[0].is_ascii_lowercase()
        && label[..label.len() - len]
            .last()
            .is_none_or(|&c| !is_unit_char(c) && c != '=' && !c.is_alphanumeric())
}

/// A run of unit characters: hyphenated UUIDs in it stay, the rest is
/// judged piece by piece.
fn redact_unit(unit: &[char], labelled: bool, out: &mut String) {
    let mut piece = 0;
    let mut k = 0;
    while k < unit.len() {
        let bounded = (k == 0 || !unit[k - 1].is_ascii_alphanumeric())
            && unit.get(k + 36).is_none_or(|c| !c.is_ascii_alphanumeric());
        if bounded && is_uuid(&unit[k..unit.len().min(k + 36)]) {
            redact_piece(&unit[piece..k], labelled && piece == 0, out);
            out.extend(&unit[k..k + 36]);
            k += 36;
            piece = k;
        } else {
            k += 1;
        }
    }
    redact_piece(&unit[piece..], labelled && piece == 0, out);
}

fn is_uuid(text: &[char]) -> bool {
    text.len() == 36
        && text.iter().enumerate().all(|(k, c)| match k {
            8 | 13 | 18 | 23 => *c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn redact_piece(piece: &[char], labelled: bool, out: &mut String) {
    // What follows each position: letters and digits, and whether any is a
    // digit, upper or lower case (one pass from the right, so the prefix
    // search stays linear).
    let mut follows = vec![(0usize, false, false, false); piece.len() + 1];
    for k in (0..piece.len()).rev() {
        let (n, digit, upper, lower) = follows[k + 1];
        let c = piece[k];
        follows[k] = (
            n + usize::from(c.is_ascii_alphanumeric()),
            digit || c.is_ascii_digit(),
            upper || c.is_ascii_uppercase(),
            lower || c.is_ascii_lowercase(),
        );
    }
    let prefixed = (0..piece.len()).find(|&k| {
        (k == 0 || !piece[k - 1].is_ascii_alphanumeric())
            && TOKEN_PREFIXES.iter().any(|prefix| {
                let (n, digit, upper, lower) = follows[(k + prefix.len()).min(piece.len())];
                starts_with(piece, k, prefix) && n >= 8 && (digit || (upper && lower))
            })
    });
    let judged = prefixed.unwrap_or(piece.len());
    if looks_random(&piece[..judged], labelled) {
        push_token(&piece[..judged], out);
    } else {
        out.extend(&piece[..judged]);
    }
    push_token(&piece[judged..], out);
}

/// `[token]` in place of `piece`, keeping its slashes: a slash may end a
/// URL's authority, and that must still be so the next time round.
fn push_token(piece: &[char], out: &mut String) {
    for (k, part) in piece.split(|&c| c == '/').enumerate() {
        if k > 0 {
            out.push('/');
        }
        if !part.is_empty() {
            out.push_str(TOKEN);
        }
    }
}

/// Whether a piece of base64-ish text looks like a generated secret.
///
/// Judged on its letters and digits, of which it needs 20 or more:
/// - hex only (letters and digits): a digest or key when 32 or longer,
///   unless labelled (`drift:9f86…`); shorter hex reads as an id;
/// - otherwise at least two of lower case, upper case and digits, a
///   character class that changes at least 35% of the time from one
///   character to the next (random text: ~60%; camelCase identifiers and
///   version strings: 10-25%), and 3 bits of entropy per character.
///
/// So `Donaudampfschifffahrtsgesellschaft`, `/var/lib/opshub/data`,
/// `Windows10Enterprise2022H2` and UUIDs stay; API keys go.
fn looks_random(piece: &[char], labelled: bool) -> bool {
    #[derive(PartialEq)]
    enum Class {
        Lower,
        Upper,
        Digit,
    }
    let class = |c: &char| {
        if c.is_ascii_digit() {
            Class::Digit
        } else if c.is_ascii_uppercase() {
            Class::Upper
        } else {
            Class::Lower
        }
    };
    let chars: Vec<char> = piece
        .iter()
        .copied()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let n = chars.len();
    if n < 20 {
        return false;
    }
    let digits = chars.iter().filter(|c| c.is_ascii_digit()).count();
    let lower = chars.iter().filter(|c| c.is_ascii_lowercase()).count();
    let upper = chars.iter().filter(|c| c.is_ascii_uppercase()).count();
    let hex = chars.iter().all(char::is_ascii_hexdigit) && (lower == 0 || upper == 0);
    if hex {
        return digits > 0 && digits < n && n >= 32 && !labelled;
    }
    let classes = [lower, upper, digits].iter().filter(|&&n| n > 0).count();
    let switches = chars
        .windows(2)
        .filter(|pair| class(&pair[0]) != class(&pair[1]))
        .count();
    classes >= 2 && switches * 100 >= 35 * (n - 1) && entropy_bits(&chars) >= 3.0
}

/// Shannon entropy of the characters, in bits per character.
fn entropy_bits(chars: &[char]) -> f64 {
    let mut counts = [0u32; 128];
    for &c in chars {
        counts[c as usize & 127] += 1;
    }
    let n = chars.len() as f64;
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = f64::from(count) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests;
