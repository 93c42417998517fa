//! The redactor end to end: a server echoes the token in every spelling the README
//! lists under "Tokens" (plain, JSON-escaped, percent-encoded once and twice, HTML
//! character references, hex, base64 standard and URL-safe inside `Bearer <token>`
//! and `user:token`, wrapped at 76 columns with CRLF and at 64 with LF, a
//! 12-character prefix) in error bodies (a 401, a 422's field errors, a 500's HTML
//! page), in a status answer and in a failed project. `{}`, `{:#}` (anyhow) and
//! `{:?}` of each error, and `{:?}` of each project, never show it: neither a piece
//! of the token itself (the module's search) nor a 12-character piece of it in the
//! spelling the server used.

use super::*;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// The shortest piece of the token whose spelled form counts as a leak.
const SPELLED_PIECE: usize = 12;

/// Each character of `text` as `f` writes it.
fn per_char(text: &str, f: impl Fn(char) -> String) -> String {
    text.chars().map(f).collect()
}

/// Each byte of `text` as `f` writes it.
fn per_byte(text: &str, f: impl Fn(u8) -> String) -> String {
    text.bytes().map(f).collect()
}

/// `text` cut into lines of `width`, joined with `separator`.
fn wrap(text: &str, width: usize, separator: &str) -> String {
    text.as_bytes()
        .chunks(width)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join(separator)
}

/// The README's spellings of `secret`, each named.
fn spellings(secret: &str) -> Vec<(&'static str, String)> {
    let long = format!("someone@example.com:{secret}:and-a-few-more-bytes-after-it");
    vec![
        ("plain", secret.to_owned()),
        (
            "json \\u lower",
            per_char(secret, |c| format!("\\u{:04x}", c as u32)),
        ),
        (
            "json \\u upper",
            per_char(secret, |c| format!("\\u{:04X}", c as u32)),
        ),
        ("percent lower", per_byte(secret, |b| format!("%{b:02x}"))),
        ("percent upper", per_byte(secret, |b| format!("%{b:02X}"))),
        ("percent twice", per_byte(secret, |b| format!("%25{b:02X}"))),
        (
            "html decimal",
            per_char(secret, |c| format!("&#{};", c as u32)),
        ),
        (
            "html hex",
            per_char(secret, |c| format!("&#x{:x};", c as u32)),
        ),
        (
            "html hex padded",
            per_char(secret, |c| format!("&#x{:04X};", c as u32)),
        ),
        ("hex lower", per_byte(secret, |b| format!("{b:02x}"))),
        ("hex upper", per_byte(secret, |b| format!("{b:02X}"))),
        ("base64 bearer", STANDARD.encode(format!("Bearer {secret}"))),
        (
            "base64 url-safe bearer",
            URL_SAFE.encode(format!("Bearer {secret}")),
        ),
        (
            "base64 basic auth",
            STANDARD.encode(format!("user:{secret}")),
        ),
        (
            "base64 url-safe basic auth",
            URL_SAFE_NO_PAD.encode(format!("user:{secret}")),
        ),
        (
            "base64 mime 76 crlf",
            wrap(&STANDARD.encode(&long), 76, "\r\n"),
        ),
        ("base64 pem 64 lf", wrap(&STANDARD.encode(&long), 64, "\n")),
        ("prefix of 12", secret.chars().take(12).collect()),
    ]
}

/// The characters of the base64 encoding of `piece`, placed `align` bytes into a
/// 3-byte group, that depend on `piece` alone.
fn base64_core(engine: &base64::engine::GeneralPurpose, piece: &str, align: usize) -> String {
    let mut padded = vec![0u8; align];
    padded.extend_from_slice(piece.as_bytes());
    let encoded = engine.encode(padded);
    let first = (8 * align).div_ceil(6);
    let last = 8 * (align + piece.len()) / 6;
    encoded[first..last].to_owned()
}

/// What must not appear: every piece of [`SPELLED_PIECE`] characters of the token,
/// in each spelling of [`spellings`] (base64 at each alignment), and as `Debug`
/// writes each of those. Named by spelling, never by the text.
fn needles() -> Vec<(&'static str, String)> {
    let chars: Vec<char> = TOKEN.chars().collect();
    let mut all = Vec::new();
    for window in chars.windows(SPELLED_PIECE) {
        let piece: String = window.iter().collect();
        let mut forms: Vec<(&'static str, String)> = spellings(&piece)
            .into_iter()
            .filter(|(name, _)| !name.starts_with("base64") && *name != "prefix of 12")
            .collect();
        for align in 0..3 {
            forms.push(("base64", base64_core(&STANDARD, &piece, align)));
            forms.push(("base64 url-safe", base64_core(&URL_SAFE, &piece, align)));
        }
        for (name, form) in forms {
            all.push((name, form.escape_debug().to_string()));
            all.push((name, form));
        }
    }
    all.sort();
    all.dedup();
    all
}

/// The spelling in which `text` shows a piece of the token, if any: looked for as
/// written, and with line breaks (raw, JSON-escaped, or as `Debug` writes them)
/// taken out, for a wrapped base64 echo.
fn find_spelled<'a>(text: &str, needles: &'a [(&'static str, String)]) -> Option<&'a str> {
    let mut joined = text.to_owned();
    for line_break in ["\\\\r", "\\\\n", "\\r", "\\n", "\r", "\n"] {
        joined = joined.replace(line_break, "");
    }
    needles
        .iter()
        .find(|(_, needle)| text.contains(needle.as_str()) || joined.contains(needle.as_str()))
        .map(|(name, _)| *name)
}

/// `text` as a JSON string's contents: quotes and backslashes escaped, line breaks
/// as `\r` and `\n`.
fn in_json(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The server's answers that echo `spelled` (a spelling of the token), each named
/// with the call that meets it.
fn echoes(spelled: &str) -> Vec<(&'static str, &'static str, ResponseTemplate)> {
    // JSON-escaped spellings are written as they are (they are JSON's escapes);
    // others are escaped as any text in a JSON string.
    let json = if spelled.starts_with("\\u") {
        spelled.to_owned()
    } else {
        in_json(spelled)
    };
    let body = |text: String| ResponseTemplate::new(200).set_body_raw(text, "application/json");
    vec![
        (
            "401",
            "generate",
            ResponseTemplate::new(401).set_body_raw(
                format!(
                    r#"{{"status":false,"message":"Unauthorized. Bearer {json} was rejected"}}"#
                ),
                "application/json",
            ),
        ),
        (
            "422",
            "generate",
            ResponseTemplate::new(422).set_body_raw(
                format!(
                    r#"{{"message":"The given data was invalid.","errors":{{"prompt":["The prompt may not contain {json}."],"{json}":["Unknown field {json}."]}}}}"#
                ),
                "application/json",
            ),
        ),
        (
            "500 html",
            "follow_up",
            ResponseTemplate::new(500).set_body_raw(
                format!(
                    "<html><body><h1>Server Error</h1><pre>Authorization: Bearer {spelled}\r\n</pre></body></html>"
                ),
                "text/html",
            ),
        ),
        (
            "status answer",
            "project",
            body(format!(
                r#"{{"status":true,"project_id":"p1","project_status":"ready","name":"{json}","app_url":"https://p1.laracopilot.com/?t={json}","debug":"{json}"}}"#
            )),
        ),
        (
            "failed project",
            "wait_for_project",
            body(format!(
                r#"{{"status":true,"project_id":"p1","project_status":"failed","name":"Tasks","error":"token {json} refused","app_url":"https://p1.laracopilot.com/{json}"}}"#
            )),
        ),
    ]
}

#[tokio::test]
async fn the_token_echoed_in_every_documented_spelling_never_shows() {
    let needles = needles();
    let mut printed = Printed::default();
    let mut checked = 0;
    for (spelling, spelled) in spellings(TOKEN) {
        for (answer, call, response) in echoes(&spelled) {
            let label = format!("{spelling} in a {answer}");
            let server = server().await;
            Mock::given(any())
                .respond_with(response)
                .mount(&server)
                .await;
            let client = one_attempt(&server);
            let options = laracopilot::WaitOptions::default().timeout(Duration::from_secs(5));
            let result = bounded(async {
                match call {
                    "generate" => client.generate("Build a task app").await.map(|_| None),
                    "follow_up" => client
                        .follow_up("p1", "Add a dark mode")
                        .await
                        .map(|_| None),
                    "project" => client.project("p1").await.map(Some),
                    _ => client.wait_for_project("p1", options).await.map(Some),
                }
            })
            .await;
            let texts: Vec<(String, String)> = match result {
                Ok(Some(project)) => {
                    assert_eq!(answer, "status answer", "{label}: {project:?}");
                    vec![
                        ("{:?}".into(), format!("{project:?}")),
                        ("{:#?}".into(), format!("{project:#?}")),
                        ("raw_json".into(), project.raw_json().to_owned()),
                    ]
                }
                Ok(None) => panic!("{label}: the call succeeded"),
                Err(error) => {
                    let kind = error.kind();
                    let expected = match answer {
                        "401" => "unauthorized",
                        "422" => "validation",
                        "500 html" => "api",
                        _ => "generation_failed",
                    };
                    assert_eq!(kind, expected, "{label}");
                    let mut texts = vec![
                        ("{}".into(), error.to_string()),
                        ("{:?}".into(), format!("{error:?}")),
                        ("{:#?}".into(), format!("{error:#?}")),
                    ];
                    if let Error::GenerationFailed { project, .. } = &error {
                        texts.push(("the project's {:?}".into(), format!("{project:?}")));
                    }
                    texts.push((
                        "{:#} of anyhow".into(),
                        format!("{:#}", anyhow::Error::new(error)),
                    ));
                    texts
                }
            };
            for (how, text) in texts {
                if let Some(found) = find_spelled(&text, &needles) {
                    panic!("{label}: {how} shows a piece of the token spelled as {found}");
                }
                printed.text(format!("{label}: {how}"), text);
                checked += 1;
            }
        }
    }
    assert!(checked >= spellings(TOKEN).len() * 5 * 4, "{checked}");
    // And no piece of the token as itself, anywhere.
    printed.assert_clean();
}

#[test]
fn the_spelled_search_catches_each_spelling_cut_short_or_wrapped() {
    let needles = needles();
    for (name, spelled) in spellings(TOKEN) {
        if name == "prefix of 12" {
            continue;
        }
        let echoed = format!("Authorization: {spelled}; see the logs");
        assert!(find_spelled(&echoed, &needles).is_some(), "{name}");
        assert!(
            find_spelled(&format!("{echoed:?}"), &needles).is_some(),
            "{name} in Debug"
        );
    }
    assert!(find_spelled("nothing here but ****9f8e", &needles).is_none());
}
