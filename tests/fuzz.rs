//! Every endpoint fuzzed over a real connection: the router serves on a TCP
//! port and requests go out as raw HTTP/1.1 bytes (so they can carry invalid
//! UTF-8 and repeated fields). Each server function of the route matrix and
//! each page gets malformed variants generated from its valid request —
//! truncated and wrong-typed JSON, invalid UTF-8, bad UUIDs, negative and
//! huge numbers, 1 MB strings, control characters, missing and repeated
//! fields, wrong content types — as every role and signed out. Every answer
//! is a 4xx with a short, clear message (never a 5xx, never a dropped
//! connection), and no row is written.

mod support;

use futures::StreamExt;
use opshub::api::AppError;
use opshub::domain::Role;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use support::app::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous: a request that takes this long has hung.
const DEADLINE: Duration = Duration::from_secs(60);
/// "1 MB strings".
const LONG: usize = 1 << 20;
/// Requests in flight at once.
const PARALLEL: usize = 8;
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// One malformed request body.
struct Variant {
    what: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// The body decodes, so the function's own checks answer it (and the
    /// caller's role matters).
    decodes: bool,
}

fn variant(
    what: impl Into<String>,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
) -> Variant {
    Variant {
        what: what.into(),
        content_type,
        body: body.into(),
        decodes: false,
    }
}

/// A bad value in a well-formed body. (1 MB strings decode too, but are
/// sent once: what they cost is reading them.)
fn bad_value(what: String, content_type: Option<&'static str>, body: Vec<u8>) -> Variant {
    let decodes = !what.contains("1 MB");
    Variant {
        decodes,
        ..variant(what, content_type, body)
    }
}

/// Text values that are wrong for any short text field.
fn bad_texts() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("1 MB string", "x".repeat(LONG).into_bytes()),
        ("201 two-byte characters", "ü".repeat(201).into_bytes()),
        ("NUL", b"ac\0me".to_vec()),
        ("escape sequence", b"a\x1b[31mb".to_vec()),
        ("header injection", b"acme\r\nX-Injected: 1".to_vec()),
        ("invalid UTF-8", b"ac\xff\xfeme".to_vec()),
    ]
}

/// Wrong values for a field whose valid value is `valid`: UUIDs get bad
/// UUIDs, numbers get negative and huge ones.
fn bad_values_like(valid: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut bad = bad_texts();
    if uuid::Uuid::parse_str(valid).is_ok() {
        bad.push(("not a UUID", b"not-a-uuid".to_vec()));
        let mut broken = valid.to_string();
        broken.pop();
        bad.push(("UUID with a bad digit", format!("{broken}g").into_bytes()));
        bad.push(("UUID too long", format!("{valid}0").into_bytes()));
    }
    if valid.parse::<i64>().is_ok() {
        for number in ["-1", "0", "99999999999999999999999", "1e3", "NaN"] {
            bad.push(("bad number", number.as_bytes().to_vec()));
        }
    }
    bad
}

// ---------------------------------------------------------------- JSON bodies

const MARK: &str = "\u{1}MARK\u{1}";

/// The body with the value at `path` replaced by raw JSON text.
fn json_with(valid: &Value, path: &[String], raw: &[u8]) -> Vec<u8> {
    let mut value = valid.clone();
    *pointer(&mut value, path) = Value::String(MARK.into());
    splice(
        &value.to_string(),
        &Value::String(MARK.into()).to_string(),
        raw,
    )
}

/// The body with the field at `path` given twice.
fn json_repeating(valid: &Value, path: &[String]) -> Vec<u8> {
    let mut value = valid.clone();
    let original = pointer(&mut value, path).to_string();
    *pointer(&mut value, path) = Value::String(MARK.into());
    let name = Value::String(path.last().unwrap().clone()).to_string();
    let marked = format!("{name}:{}", Value::String(MARK.into()));
    splice(
        &value.to_string(),
        &marked,
        format!("{name}:{original},{name}:{original}").as_bytes(),
    )
}

fn json_without(valid: &Value, path: &[String]) -> Vec<u8> {
    let mut value = valid.clone();
    let (last, parent) = path.split_last().unwrap();
    pointer(&mut value, parent)
        .as_object_mut()
        .unwrap()
        .remove(last);
    value.to_string().into_bytes()
}

fn pointer<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter()
        .fold(value, |value, key| &mut value[key.as_str()])
}

fn splice(text: &str, marker: &str, raw: &[u8]) -> Vec<u8> {
    let at = text.find(marker).expect("the marker is in the body");
    let mut bytes = text.as_bytes()[..at].to_vec();
    bytes.extend_from_slice(raw);
    bytes.extend_from_slice(&text.as_bytes()[at + marker.len()..]);
    bytes
}

fn json_string(bytes: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.into()).to_string().into_bytes(),
        // Raw bytes inside the quotes: the body is not UTF-8.
        Err(_) => [&b"\""[..], bytes, b"\""].concat(),
    }
}

fn json_variants(valid_text: &str) -> Vec<Variant> {
    let valid: Value = serde_json::from_str(valid_text).unwrap();
    let bytes = valid_text.as_bytes();
    let json = Some(JSON);
    let mut out = vec![
        variant("truncated at half", json, &bytes[..bytes.len() / 2]),
        variant("truncated by one byte", json, &bytes[..bytes.len() - 1]),
    ];
    for other in [
        "",
        "not json",
        "[]",
        "null",
        "7",
        "\"acme\"",
        "{\"tenant\":",
    ] {
        out.push(variant(format!("body {other:?}"), json, other));
    }
    for content_type in [
        None,
        Some("text/plain"),
        Some(FORM),
        Some("multipart/form-data; boundary=x"),
    ] {
        out.push(variant(
            format!("content type {content_type:?}"),
            content_type,
            bytes,
        ));
    }
    for (name, value) in valid.as_object().unwrap() {
        json_field_variants(&valid, std::slice::from_ref(name), value, true, &mut out);
    }
    out
}

fn json_field_variants(
    valid: &Value,
    path: &[String],
    value: &Value,
    top: bool,
    out: &mut Vec<Variant>,
) {
    let json = Some(JSON);
    let at = path.join(".");
    out.push(variant(
        format!("{at} twice"),
        json,
        json_repeating(valid, path),
    ));
    if top {
        // Filters inside a query are optional by design; arguments are not.
        out.push(variant(
            format!("{at} missing"),
            json,
            json_without(valid, path),
        ));
        out.push(variant(
            format!("{at} null"),
            json,
            json_with(valid, path, b"null"),
        ));
    }
    for wrong in ["-1", "1e300", "18446744073709551616", "true", "[\"acme\"]"] {
        out.push(variant(
            format!("{at} = {wrong}"),
            json,
            json_with(valid, path, wrong.as_bytes()),
        ));
    }
    out.push(variant(
        format!("{at} = lone surrogate"),
        json,
        json_with(valid, path, br#""\ud800""#),
    ));
    match value {
        Value::String(text) => {
            out.push(variant(
                format!("{at} = {{}}"),
                json,
                json_with(valid, path, b"{}"),
            ));
            for (what, bad) in bad_values_like(text) {
                out.push(bad_value(
                    format!("{at} = {what}"),
                    json,
                    json_with(valid, path, &json_string(&bad)),
                ));
            }
        }
        Value::Object(fields) => {
            out.push(variant(
                format!("{at} = 1 MB string"),
                json,
                json_with(valid, path, &json_string(&bad_texts()[0].1)),
            ));
            for (name, inner) in fields {
                let inner_path = [path, std::slice::from_ref(name)].concat();
                json_field_variants(valid, &inner_path, inner, false, out);
            }
        }
        other => panic!("{at}: the matrix has a value fuzzing does not know: {other}"),
    }
}

// ---------------------------------------------------------------- form bodies

fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(text: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = text.bytes();
    while let Some(b) = rest.next() {
        if b == b'%' {
            let hex: String = [rest.next().unwrap() as char, rest.next().unwrap() as char]
                .iter()
                .collect();
            bytes.push(u8::from_str_radix(&hex, 16).unwrap());
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).unwrap()
}

/// A form's fields: names, and values as bytes (which may not be UTF-8).
type Pairs = Vec<(String, Vec<u8>)>;

fn form_body(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name.as_bytes()), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn form_variants(valid_text: &str) -> Vec<Variant> {
    let pairs: Pairs = valid_text
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (decode(name), decode(value).into_bytes())
        })
        .collect();
    let form = Some(FORM);
    let bytes = valid_text.as_bytes();
    let mut out = Vec::new();
    if !bytes.is_empty() {
        out.push(variant(
            "truncated at half",
            form,
            &bytes[..bytes.len() / 2],
        ));
        out.push(variant(
            "truncated by one byte",
            form,
            &bytes[..bytes.len() - 1],
        ));
    }
    for other in [
        &b"&&="[..],
        b"tenant",
        b"{\"tenant\":\"acme\"}",
        b"%",
        b"a=%F",
        b"\xff\xfe",
    ] {
        out.push(variant(
            format!("body {:?}", String::from_utf8_lossy(other)),
            form,
            other,
        ));
    }
    for content_type in [
        None,
        Some("text/plain"),
        Some(JSON),
        Some("multipart/form-data; boundary=x"),
    ] {
        out.push(variant(
            format!("content type {content_type:?}"),
            content_type,
            bytes,
        ));
    }
    for (index, (name, value)) in pairs.iter().enumerate() {
        let with = |replace: &dyn Fn(&mut Pairs)| {
            let mut changed = pairs.clone();
            replace(&mut changed);
            form_body(&changed)
        };
        out.push(variant(
            format!("{name} missing"),
            form,
            with(&|p| {
                p.remove(index);
            }),
        ));
        if !name.ends_with("[]") {
            out.push(variant(
                format!("{name} twice"),
                form,
                with(&|p| p.push(p[index].clone())),
            ));
            out.push(variant(
                format!("{name} as a list"),
                form,
                with(&|p| p[index].0.push_str("[]")),
            ));
        }
        out.push(variant(
            format!("{name} as a map"),
            form,
            with(&|p| p[index].0.push_str("[x]")),
        ));
        for (what, bad) in bad_values_like(std::str::from_utf8(value).unwrap()) {
            let mut changed = pairs.clone();
            changed[index].1 = bad.clone();
            out.push(bad_value(
                format!("{name} = {what}"),
                form,
                form_body(&changed),
            ));
            // The same bytes unencoded, as a careless client sends them.
            let raw: Vec<u8> = [
                form_body(&changed[..index]),
                if index > 0 { b"&".to_vec() } else { vec![] },
                format!("{}=", encode(name.as_bytes())).into_bytes(),
                bad.iter()
                    .copied()
                    .filter(|b| !b"&=%+".contains(b))
                    .collect(),
            ]
            .concat();
            out.push(variant(format!("{name} = {what}, unencoded"), form, raw));
        }
    }
    out
}

// ----------------------------------------------------------------- the wire

struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

fn request(
    method: &str,
    target: &[u8],
    content_type: Option<&str>,
    body: &[u8],
    cookie: Option<&str>,
) -> Vec<u8> {
    let mut head = method.as_bytes().to_vec();
    head.push(b' ');
    head.extend_from_slice(target);
    head.extend_from_slice(
        b" HTTP/1.1\r\nHost: opshub.test\r\nSec-Fetch-Site: same-origin\r\nConnection: close\r\n",
    );
    if let Some(content_type) = content_type {
        head.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    if let Some(cookie) = cookie {
        head.extend_from_slice(format!("Cookie: {cookie}\r\n").as_bytes());
    }
    head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    head.extend_from_slice(body);
    head
}

/// Sends one request on a new connection and reads the whole answer.
async fn exchange(addr: SocketAddr, bytes: Vec<u8>) -> Result<Answer, String> {
    let talk = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut reader, mut writer) = stream.into_split();
        // Written and read at once: the server may answer before it has read
        // a long request whole. The writer lives until the answer is in
        // (dropping it would half-close the connection).
        let write = async move {
            let _ = writer.write_all(&bytes).await;
            writer
        };
        let read = async {
            let mut answer = Vec::new();
            reader.read_to_end(&mut answer).await.map(|_| answer)
        };
        let (_writer, answer) = tokio::join!(write, read);
        parse(&answer.map_err(|e| format!("read: {e}"))?)
    };
    tokio::time::timeout(DEADLINE, talk)
        .await
        .map_err(|_| format!("no answer within {DEADLINE:?}"))?
}

fn parse(answer: &[u8]) -> Result<Answer, String> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "connection dropped ({} bytes, no complete head)",
                answer.len()
            )
        })?;
    let headers = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line: {headers}"))?;
    let raw = &answer[end + 4..];
    let body = if headers.contains("transfer-encoding: chunked") {
        dechunk(raw).ok_or("connection dropped inside a chunked body")?
    } else {
        let length = headers
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse::<usize>().ok());
        if length.is_some_and(|n| n != raw.len()) {
            return Err(format!(
                "connection dropped: {} of {length:?} body bytes",
                raw.len()
            ));
        }
        raw.to_vec()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).ok()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

// ------------------------------------------------------------------ the walk

struct Probe {
    what: String,
    bytes: Vec<u8>,
    /// Must the answer be a 4xx (not a redirect, not a success)?
    refused: bool,
    /// A server function: the answer is an `AppError` in JSON.
    api: bool,
}

fn check(probe: &Probe, answer: Result<Answer, String>) -> Option<String> {
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return Some(format!("{}: {e}", probe.what)),
    };
    let body = String::from_utf8_lossy(&answer.body);
    let short = || body.chars().take(300).collect::<String>();
    if answer.status >= 500 {
        return Some(format!("{}: {} {}", probe.what, answer.status, short()));
    }
    if probe.refused && !(400..500).contains(&answer.status) {
        return Some(format!(
            "{}: {} where a 4xx was due: {}",
            probe.what,
            answer.status,
            short()
        ));
    }
    if (400..500).contains(&answer.status) {
        let message = if answer.body.is_empty() && !probe.api {
            // Refused by the HTTP server before the app (a request line it
            // cannot read): the status line says why.
            answer
                .headers
                .lines()
                .next()
                .unwrap_or_default()
                .splitn(3, ' ')
                .nth(2)
                .unwrap_or_default()
                .to_string()
        } else if probe.api {
            match serde_json::from_slice::<AppError>(&answer.body) {
                Ok(error) => error.to_string(),
                Err(_) => {
                    return Some(format!(
                        "{}: {} is not an AppError: {}",
                        probe.what,
                        answer.status,
                        short()
                    ))
                }
            }
        } else {
            body.to_string()
        };
        // A clear message: present, not the input echoed back, no internals.
        let limit = if probe.api { 1_000 } else { 200_000 };
        if message.trim().is_empty() || message.len() > limit || message.contains(&"x".repeat(64)) {
            return Some(format!(
                "{}: {} has no short message ({} bytes)",
                probe.what,
                answer.status,
                message.len()
            ));
        }
        for internal in [
            "panicked",
            "sqlx",
            "SELECT ",
            "stack backtrace",
            "RUST_BACKTRACE",
        ] {
            if message.contains(internal) {
                return Some(format!(
                    "{}: the answer shows {internal:?}: {}",
                    probe.what,
                    short()
                ));
            }
        }
    }
    if answer
        .headers
        .lines()
        .any(|line| line.starts_with("x-injected"))
    {
        return Some(format!("{}: a header was injected", probe.what));
    }
    None
}

async fn walk(addr: SocketAddr, probes: Vec<Probe>) -> Vec<String> {
    futures::stream::iter(probes)
        .map(|probe| async move {
            let answer = exchange(addr, probe.bytes.clone()).await;
            check(&probe, answer)
        })
        .buffer_unordered(PARALLEL)
        .filter_map(|failure| async move { failure })
        .collect()
        .await
}

/// Page paths with each parameter and each query field the page reads
/// replaced by bad values (raw bytes where they are not escaped).
fn page_targets(route: &str, tenant: &str, run: &str) -> Vec<(String, Vec<u8>, bool)> {
    let route = &route
        .replace(":tenant", "{tenant}")
        .replace(":run_id", "{run_id}");
    let valid = fill(route, tenant, run);
    let mut targets = Vec::new();
    for (param, value) in [("{tenant}", tenant), ("{run_id}", run)] {
        if !route.contains(param) {
            continue;
        }
        let other = if param == "{tenant}" {
            ("{run_id}", run)
        } else {
            ("{tenant}", tenant)
        };
        let mut bad: Vec<(&str, Vec<u8>)> = bad_values_like(value)
            .into_iter()
            .filter(|(what, _)| *what != "1 MB string")
            .map(|(what, bytes)| (what, encode(&bytes).into_bytes()))
            .collect();
        bad.push(("raw invalid UTF-8", b"ac\xffme".to_vec()));
        bad.push(("100 KB string", "x".repeat(100 * 1024).into_bytes()));
        bad.push(("dot-dot", b"..".to_vec()));
        bad.push(("escaped slashes", b"%2F..%2F..%2Fetc".to_vec()));
        for (what, bytes) in bad {
            let target = route.replace(other.0, other.1).into_bytes();
            let at = String::from_utf8_lossy(&target).find(param).unwrap();
            let target = [&target[..at], &bytes[..], &target[at + param.len()..]].concat();
            // Only the sign-in page answers without a session; a wrong
            // tenant or run is a 404.
            targets.push((format!("{route} {param} = {what}"), target, true));
        }
    }
    let reads = page_query_fields(route);
    // The fields the page reads; a page that reads none shows that an
    // unknown field is harmless.
    let fields = page_query_candidates()
        .into_iter()
        .filter(|(field, _)| reads.contains(&field.as_str()) || (reads.is_empty() && field == "q"));
    for (field, valid_value) in fields {
        let mut bad: Vec<(&str, Vec<u8>)> = bad_values_like(&valid_value)
            .into_iter()
            .filter(|(what, _)| *what != "1 MB string")
            .map(|(what, bytes)| (what, encode(&bytes).into_bytes()))
            .collect();
        bad.push(("100 KB string", "x".repeat(100 * 1024).into_bytes()));
        bad.push(("raw invalid UTF-8", b"\xff\xfe".to_vec()));
        bad.push(("cut escape", b"%E".to_vec()));
        for (what, bytes) in bad {
            let target = [valid.as_bytes(), b"?", field.as_bytes(), b"=", &bytes[..]].concat();
            let read = reads.contains(&field.as_str());
            targets.push((format!("{route}?{field} = {what}"), target, read));
        }
    }
    targets
}

/// Query fields of the pages' filters, with a valid value each (from the
/// matrix's valid bodies of the server functions behind the pages).
fn page_query_candidates() -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for path in [
        "/api/runs/hub",
        "/api/findings/list",
        "/api/notifications/feed",
    ] {
        let case = server_fn_case(path).unwrap();
        let (_, body) = (case.body)("acme", &uuid::Uuid::nil().to_string());
        let body: Value = serde_json::from_str(&body).unwrap();
        for (name, value) in body["query"].as_object().unwrap() {
            let pair = (name.clone(), value.as_str().unwrap().to_string());
            if !fields.contains(&pair) {
                fields.push(pair);
            }
        }
    }
    fields
}

/// Which of those fields a page reads (and so must refuse when bad).
fn page_query_fields(route: &str) -> Vec<&'static str> {
    if route.ends_with("/operations") {
        vec![
            "bucket",
            "operation",
            "initiator",
            "from",
            "to",
            "q",
            "older",
            "limit",
        ]
    } else if route.ends_with("/findings") {
        vec!["status", "scope", "subject_type", "run", "older"]
    } else if route.ends_with("/notifications") {
        vec!["kind", "unread", "older"]
    } else {
        vec![]
    }
}

on_both! { app =>
    async fn malformed_requests_get_a_clear_4xx_and_change_nothing(app) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(opshub::server::http::serve(app.state.clone(), listener, std::future::pending()));

        let roles = [
            ("signed out", None, None),
            ("viewer", Some(Role::Viewer), Some(app.sign_in("viewer@acme.example").await)),
            ("operator", Some(Role::Operator), Some(app.sign_in("operator@acme.example").await)),
            ("admin", Some(Role::Admin), Some(app.sign_in("admin@acme.example").await)),
        ];
        let acme_run = app.newest_run("acme").await.id.to_string();
        let acme_viewer = app.state.store.user_credentials("viewer@acme.example").await.unwrap().unwrap().user.id.to_string();
        let unknown = uuid::Uuid::now_v7().to_string();
        let before = app.db.count_rows().await;

        let mut probes = Vec::new();
        let mut variants_seen = 0;
        let paths = server_fn_paths();
        assert!(paths.len() >= 10, "{paths:?}");
        for path in &paths {
            let case = server_fn_case(path)
                .unwrap_or_else(|| panic!("{path} is not in the matrix: add it to server_fn_case"));
            let id = match case.takes {
                Some(IdKind::Run) => &acme_run,
                Some(IdKind::User) => &acme_viewer,
                None => &unknown,
            };
            let (content_type, valid) = (case.body)("acme", id);
            let variants = if content_type == JSON { json_variants(&valid) } else { form_variants(&valid) };
            for variant in variants {
                let same = variant.content_type == Some(content_type) && variant.body == valid.as_bytes();
                assert!(!same, "{path}: {} is the valid request", variant.what);
                // Each variant as one role in turn; one that reaches the
                // function's checks also as every role allowed through them.
                let turn = variants_seen % roles.len();
                variants_seen += 1;
                let callers = roles.iter().enumerate().filter(|(index, (_, role, _))| {
                    *index == turn || (variant.decodes && role.is_some() && *role >= case.needs)
                });
                for (_, (role, _, cookie)) in callers {
                    probes.push(Probe {
                        what: format!("POST {path} as {role}: {}", variant.what),
                        bytes: request("POST", path.as_bytes(), variant.content_type, &variant.body, cookie.as_deref()),
                        refused: true,
                        api: true,
                    });
                }
            }
        }
        let api_probes = probes.len();

        let routes = page_routes();
        assert!(routes.len() >= 5, "{routes:?}");
        for route in &routes {
            for (what, target, refused) in page_targets(route, "acme", &acme_run) {
                // Each variant as one role in turn, and always as someone
                // signed in (signed out, a page only redirects to sign-in).
                let turn = variants_seen % roles.len();
                variants_seen += 1;
                let callers = roles.iter().enumerate().filter(|(index, (_, role, _))| {
                    *index == turn || (turn == 0 && *role == Some(Role::Viewer))
                });
                for (_, (role, _, cookie)) in callers {
                    // Signed out, every page but sign-in redirects there.
                    let refused = refused && cookie.is_some() && route != "/sign-in";
                    probes.push(Probe {
                        what: format!("GET {what} as {role}"),
                        bytes: request("GET", &target, None, b"", cookie.as_deref()),
                        refused,
                        api: false,
                    });
                }
            }
        }
        eprintln!("{api_probes} server-function requests, {} page requests", probes.len() - api_probes);

        let failures = walk(addr, probes).await;
        for failure in &failures {
            eprintln!("mishandled: {failure}");
        }
        assert!(
            failures.is_empty(),
            "{} of the malformed requests were mishandled:\n{}",
            failures.len(),
            failures.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
        );
        assert_eq!(app.db.count_rows().await, before, "malformed requests wrote rows");
        // Nothing signed anyone out, and the server still serves.
        for (role, _, cookie) in roles.iter().filter(|(_, _, cookie)| cookie.is_some()) {
            let answer = exchange(addr, request("GET", b"/t/acme/operations", None, b"", cookie.as_deref())).await.unwrap();
            assert_eq!(answer.status, 200, "{role}'s session");
        }
    }
}
