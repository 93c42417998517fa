//! The token never shows in an error, however a server echoes it: raw in an HTML
//! page, or JSON-escaped in a message or in Laravel's `errors` (`\/` as PHP writes a
//! slash, `\u00XX` escapes, surrogate pairs for a character beyond the BMP, escapes
//! mixed with plain characters). `Display`, `Debug` (plain and pretty), the message,
//! the validation errors, the body snippet and every `source()` are checked for the
//! token and for any 12-character slice of it, in every spelling. And `Token::new`
//! refuses every invisible format character.

use crate::common;

use std::sync::Arc;

use common::raw::{self, within, RawServer, Step, PATIENCE};
use laracopilot::{Client, Error, Token};

/// Tokens with the characters that escaping changes: `/`, `"`, `\`, characters
/// beyond ASCII and beyond the BMP.
const TOKENS: &[&str] = &[
    "lcp/live\"q\\9f8e7d6c5b4a/Z",
    "lcp_\u{1F600}_live/0123456789_x",
    "lcp_live_\u{fc}/\u{df}\"x\\y_01234\u{20ac}",
];

/// How servers spell a text inside a JSON string.
fn spellings(text: &str) -> Vec<String> {
    let utf16 = |c: char, upper: bool| -> String {
        let mut units = [0u16; 2];
        c.encode_utf16(&mut units)
            .iter()
            .map(|u| {
                if upper {
                    format!("\\u{u:04X}")
                } else {
                    format!("\\u{u:04x}")
                }
            })
            .collect()
    };
    // PHP's json_encode: `\/`, and every non-ASCII character as `\uXXXX`.
    let php: String = text
        .chars()
        .map(|c| match c {
            '"' => "\\\"".to_owned(),
            '\\' => "\\\\".to_owned(),
            '/' => "\\/".to_owned(),
            c if c.is_ascii() => c.to_string(),
            c => utf16(c, false),
        })
        .collect();
    // The least a JSON writer must escape.
    let minimal: String = text
        .chars()
        .map(|c| match c {
            '"' => "\\\"".to_owned(),
            '\\' => "\\\\".to_owned(),
            c => c.to_string(),
        })
        .collect();
    // Every character as `\uXXXX`.
    let lower: String = text.chars().map(|c| utf16(c, false)).collect();
    let upper: String = text.chars().map(|c| utf16(c, true)).collect();
    // Every other character escaped.
    let mixed: String = text
        .chars()
        .enumerate()
        .map(|(i, c)| match c {
            '"' => "\\\"".to_owned(),
            '\\' => "\\\\".to_owned(),
            c if i % 2 == 0 => utf16(c, true),
            c => c.to_string(),
        })
        .collect();
    vec![php, minimal, lower, upper, mixed]
}

/// Every spelling of every 12-character slice of `token` that must not appear:
/// as itself, JSON-escaped, and as `Debug` would show any of those.
fn forbidden(token: &str) -> Vec<String> {
    let chars: Vec<char> = token.chars().collect();
    let mut all = Vec::new();
    for window in chars.windows(12) {
        let slice: String = window.iter().collect();
        let mut forms = spellings(&slice);
        forms.push(slice);
        for form in forms {
            all.push(form.escape_debug().to_string());
            all.push(form);
        }
    }
    all.sort();
    all.dedup();
    all
}

fn assert_clean(token: &str, what: &str, text: &str) {
    for form in forbidden(token) {
        assert!(
            !text.contains(&form),
            "{what} shows the token (as {form:?}): {text}"
        );
    }
}

/// Checks every way an error can be shown, its fields and its sources.
fn assert_error_clean(token: &str, context: &str, error: &Error) {
    assert_clean(token, &format!("{context}: Display"), &error.to_string());
    assert_clean(token, &format!("{context}: Debug"), &format!("{error:?}"));
    assert_clean(token, &format!("{context}: Debug"), &format!("{error:#?}"));
    match error {
        Error::Api { message, body, .. } => {
            assert_clean(token, &format!("{context}: body"), body);
            if let Some(message) = message {
                assert_clean(token, &format!("{context}: message"), message);
            }
        }
        Error::Validation {
            message, errors, ..
        } => {
            assert_clean(token, &format!("{context}: message"), message);
            for (field, messages) in errors {
                assert_clean(token, &format!("{context}: errors key"), field);
                for m in messages {
                    assert_clean(token, &format!("{context}: errors"), m);
                }
            }
        }
        Error::Unauthorized {
            message: Some(m), ..
        }
        | Error::NotFound {
            message: Some(m), ..
        } => assert_clean(token, &format!("{context}: message"), m),
        _ => {}
    }
    let mut source = std::error::Error::source(error);
    let mut depth = 0;
    while let Some(s) = source {
        assert_clean(token, &format!("{context}: source"), &s.to_string());
        assert_clean(token, &format!("{context}: source"), &format!("{s:?}"));
        source = s.source();
        depth += 1;
        assert!(depth < 32, "a source chain that does not end");
    }
}

/// The bodies a server echoes the token in: (status, content type, body).
fn echoing_bodies(token: &str) -> Vec<(u16, &'static str, String)> {
    let mut bodies = Vec::new();
    for spelled in spellings(token) {
        bodies.push((
            500,
            "application/json",
            format!(
                r#"{{"status":false,"message":"Invalid header Authorization: Bearer {spelled}","trace":"{spelled}"}}"#
            ),
        ));
        bodies.push((
            422,
            "application/json",
            format!(
                r#"{{"message":"The token {spelled} is not a prompt.","errors":{{"prompt":["{spelled} is not a prompt.","ok"],"{spelled}":["{spelled}"],"single":"{spelled}"}}}}"#
            ),
        ));
        bodies.push((
            401,
            "application/json",
            format!(r#"{{"status":false,"message":"Unauthorized: {spelled}."}}"#),
        ));
        bodies.push((
            404,
            "application/json",
            format!(r#"{{"status":false,"message":"No project for {spelled}"}}"#),
        ));
        bodies.push((
            503,
            "text/html",
            format!("<html><script>var t = \"{spelled}\";</script></html>"),
        ));
    }
    bodies.push((
        502,
        "text/html",
        format!(
            "<html><body><pre>Authorization: Bearer {token}\nBearer {token}</pre></body></html>"
        ),
    ));
    bodies.push((
        200,
        "text/html",
        format!("<html><body>Signed in as {token}</body></html>"),
    ));
    bodies
}

fn client_for(server: &RawServer, token: &str) -> Client {
    Client::builder()
        .token(Token::new(token).expect("a valid token"))
        .base_url(server.base_url())
        .retry_policy(laracopilot::RetryPolicy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn error_bodies_that_echo_the_token_in_any_spelling_never_show_it() {
    for token in TOKENS {
        // One server for all the bodies, in order: three calls each.
        let bodies = echoing_bodies(token);
        let answers: Vec<Vec<u8>> = bodies
            .iter()
            .map(|(status, kind, body)| {
                raw::response(*status, &[("Content-Type", kind)], body.as_bytes())
            })
            .collect();
        let server =
            RawServer::start(move |request| vec![Step::Write(answers[request.index / 3].clone())]);
        let client = client_for(&server, token);
        for (status, _, body) in &bodies {
            let generate = within(PATIENCE, "generate", client.generate("Build an app"))
                .await
                .expect_err("an error answer");
            let follow_up = within(PATIENCE, "follow_up", client.follow_up("p1", "Add a page"))
                .await
                .expect_err("an error answer");
            let project = within(PATIENCE, "project", client.project("p1"))
                .await
                .expect_err("an error answer");
            for (call, error) in [
                ("generate", generate),
                ("follow_up", follow_up),
                ("project", project),
            ] {
                let context = format!("{call} answered {status} {body}");
                assert_error_clean(token, &context, &error);
            }
        }
        // The server did receive the token: the echo is real.
        let requests = server.requests();
        assert_eq!(requests.len(), bodies.len() * 3);
        for request in requests {
            assert_eq!(
                request.header("authorization"),
                Some(format!("Bearer {token}").as_str())
            );
        }
    }
}

#[tokio::test]
async fn a_masked_error_still_says_what_the_server_said_around_the_token() {
    let token = TOKENS[0];
    let spelled = &spellings(token)[0];
    let server = RawServer::answering(raw::json(
        422,
        &format!(
            r#"{{"message":"The token {spelled} is wrong.","errors":{{"prompt":["{spelled} is not a prompt."]}}}}"#
        ),
    ));
    let client = client_for(&server, token);
    let error = within(PATIENCE, "generate", client.generate("Build an app"))
        .await
        .unwrap_err();
    let mask = Token::new(token).unwrap().masked();
    let Error::Validation {
        message, errors, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(message, &format!("The token {mask} is wrong."));
    assert_eq!(errors["prompt"], [format!("{mask} is not a prompt.")]);
}

#[tokio::test]
async fn status_answers_that_echo_the_token_never_show_it() {
    for token in TOKENS {
        let mut bodies = Vec::new();
        for spelled in spellings(token) {
            bodies.extend([
                format!(r#"{{"status":false,"message":"Bearer {spelled}"}}"#),
                format!(r#"{{"status":"{spelled}"}}"#),
                format!(r#"{{"status":true,"project_id":"{spelled}"}}"#),
                format!(r#"{{"status":true,"project_id":"p2","name":"{spelled}"}}"#),
                format!(r#"{{"status":true,"project_id":"{spelled}"#),
            ]);
        }
        // One server for all the bodies, in order: a status call and a token check
        // each.
        let answers: Vec<Vec<u8>> = bodies.iter().map(|b| raw::json(200, b)).collect();
        let server =
            RawServer::start(move |request| vec![Step::Write(answers[request.index / 2].clone())]);
        let client = client_for(&server, token);
        for body in &bodies {
            let error = within(PATIENCE, "project", client.project("p1"))
                .await
                .expect_err("not a project");
            assert_error_clean(token, &format!("project answered {body}"), &error);
            let check = within(PATIENCE, "verify_token", client.verify_token()).await;
            match check {
                Err(error) => assert_error_clean(token, &format!("verify_token: {body}"), &error),
                Ok(check) => panic!("verify_token accepted {body}: {check:?}"),
            }
        }
        assert_eq!(server.requests().len(), bodies.len() * 2);
    }
}

#[tokio::test]
async fn a_failed_project_whose_status_answer_echoes_the_token_never_shows_it() {
    for token in TOKENS {
        let bodies: Vec<String> = spellings(token)
            .iter()
            .map(|spelled| {
                format!(
                    r#"{{"status":true,"project_id":"p1","project_status":"failed","name":"{spelled}","app_url":"https://x.example/{spelled}","debug":"{spelled}"}}"#
                )
            })
            .collect();
        let answers: Vec<Vec<u8>> = bodies.iter().map(|b| raw::json(200, b)).collect();
        let server =
            RawServer::start(move |request| vec![Step::Write(answers[request.index].clone())]);
        let client = client_for(&server, token);
        for body in &bodies {
            let options =
                laracopilot::WaitOptions::default().timeout(std::time::Duration::from_secs(5));
            let error = within(
                PATIENCE,
                "wait_for_project",
                client.wait_for_project("p1", options),
            )
            .await
            .expect_err("a failed project");
            let Error::GenerationFailed { project, .. } = &error else {
                panic!("{error:?}");
            };
            assert_eq!(project.project_status.as_deref(), Some("failed"));
            assert_error_clean(token, &format!("wait_for_project: {body}"), &error);
            for field in [&project.name, &project.app_url].into_iter().flatten() {
                assert_clean(token, "a field of the failed project", field);
            }
            assert_clean(token, "the failed project's JSON", project.raw_json());
        }
    }
}

#[tokio::test]
async fn an_echo_of_the_exact_header_the_client_sent_is_masked() {
    for token in TOKENS {
        // The server copies the Authorization header it received into its page.
        let server = RawServer::start(|request| {
            let header = request.header("authorization").unwrap_or_default();
            vec![Step::Write(raw::response(
                500,
                &[("Content-Type", "text/plain")],
                format!("debug: headers = {{authorization: {header}}}"),
            ))]
        });
        let client = client_for(&server, token);
        let error = within(PATIENCE, "generate", client.generate("Build an app"))
            .await
            .unwrap_err();
        assert_error_clean(token, "generate", &error);
        let Error::Api { body, .. } = &error else {
            panic!("{error:?}")
        };
        let mask = Token::new(*token).unwrap().masked();
        assert!(body.contains(&format!("Bearer {mask}")), "{body}");
    }
}

#[tokio::test]
async fn a_refused_token_refresh_keeps_the_token_out_of_the_401() {
    // A provider whose refresh fails with this crate's own error, about a new token
    // that is not valid: the message names no value.
    let token = TOKENS[1];
    let spelled = spellings(token).remove(0);
    let server = RawServer::answering(raw::json(
        401,
        &format!(r#"{{"status":false,"message":"Unauthorized {spelled}"}}"#),
    ));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let provider = laracopilot::tokens::FnToken::new(move || {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let value = if n == 0 {
                token.to_owned()
            } else {
                format!("{token}\u{200b}")
            };
            Ok(Token::new(value)?)
        }
    });
    let client = Client::builder()
        .token_provider(provider)
        .base_url(server.base_url())
        .retry_policy(laracopilot::RetryPolicy::none())
        .build()
        .unwrap();
    let error = within(PATIENCE, "generate", client.generate("Build an app"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    assert!(std::error::Error::source(&error).is_some(), "{error:?}");
    assert_error_clean(token, "generate after a failed refresh", &error);
}

/// Invisible format characters (Unicode category Cf), from several blocks.
const FORMAT_CHARACTERS: &[char] = &[
    '\u{ad}',    // soft hyphen
    '\u{600}',   // Arabic number sign
    '\u{61c}',   // Arabic letter mark
    '\u{6dd}',   // Arabic end of ayah
    '\u{70f}',   // Syriac abbreviation mark
    '\u{180e}',  // Mongolian vowel separator
    '\u{200b}',  // zero width space
    '\u{200c}',  // zero width non-joiner
    '\u{200d}',  // zero width joiner
    '\u{200e}',  // left-to-right mark
    '\u{200f}',  // right-to-left mark
    '\u{202a}',  // left-to-right embedding
    '\u{202e}',  // right-to-left override
    '\u{2060}',  // word joiner
    '\u{2061}',  // function application
    '\u{2064}',  // invisible plus
    '\u{2066}',  // left-to-right isolate
    '\u{2069}',  // pop directional isolate
    '\u{206f}',  // nominal digit shapes
    '\u{feff}',  // byte order mark
    '\u{fff9}',  // interlinear annotation anchor
    '\u{fffb}',  // interlinear annotation terminator
    '\u{110bd}', // Kaithi number sign
    '\u{1d173}', // musical symbol begin beam
    '\u{e0001}', // language tag
    '\u{e0020}', // tag space
    '\u{e007f}', // cancel tag
];

#[test]
fn token_new_refuses_every_invisible_format_character_anywhere_without_echoing() {
    for &c in FORMAT_CHARACTERS {
        for value in [
            format!("{c}lcp_secretvalue_0123456789"),
            format!("lcp_secretvalue{c}_0123456789"),
            format!("lcp_secretvalue_0123456789{c}"),
        ] {
            let error = Token::new(value.clone()).expect_err(&format!("U+{:04X}", c as u32));
            assert!(
                matches!(error, Error::Config { .. }),
                "U+{:04X}: {error:?}",
                c as u32
            );
            let shown = format!("{error} {error:?} {error:#?}");
            assert!(!shown.contains("secretvalue"), "{shown}");
            assert!(!shown.contains("0123456789"), "{shown}");
        }
    }
}

#[test]
fn token_new_accepts_visible_characters_that_only_look_unusual() {
    for value in [
        "lcp_live-0123456789",
        "lcp/live\"q\\9f8e7d6c5b4a/Z",
        "lcp_\u{e9}\u{fc}\u{df}_0123456789",
        "lcp_\u{1F600}_0123456789",
        "lcp_\u{5d0}\u{5d1}_0123456789",
        "lcp_\u{2212}_0123456789",
        "lcp_\u{3042}_0123456789",
        "!#$%&'()*+,-.:;<=>?@[]^_`{|}~",
    ] {
        let token = Token::new(value).unwrap_or_else(|e| panic!("{value:?}: {e:?}"));
        let half: String = value.chars().take(value.chars().count() / 2).collect();
        assert!(!format!("{token:?}").contains(&half), "{token:?}");
    }
}
