//! No secret on tape: a server that echoes the bearer token every way it can be
//! spelled (plain, JSON-escaped as PHP writes it, also once more as JSON quoted in
//! JSON, `\uXXXX`, percent-encoded, base64
//! alone and inside Basic credentials, URL-safe base64), in headers, cookies, event
//! streams cut into chunks as small as one byte, status answers and error bodies,
//! is recorded; the cassette file holds neither the token nor any 12-character
//! slice of it or of any of those spellings, and still replays.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use common::cassette::{RawReply, RawRequest, RawServer};
use laracopilot::cassette::Cassette;
use laracopilot::{Client, Error, RetryPolicy, Token};
use laracopilot_mock::MockServer;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// A token with characters that every spelling writes differently: `/` (PHP's
/// `\/`), `+` (base64's alphabet, percent-encoded), `é` (`\u00e9`, `%C3%A9`, split
/// over two 1-byte chunks).
const SECRET: &str = "lcp_live/S3CR3T+t0k3n_é-never-print-9f8e";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Every spelling of the token the echo server uses, and the leak scan looks for.
fn spellings(token: &str) -> Vec<(&'static str, String)> {
    let php: String = token
        .chars()
        .map(|c| match c {
            '/' => "\\/".to_owned(),
            c if !c.is_ascii() => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        })
        .collect();
    let unicode: String = token
        .encode_utf16()
        .map(|u| format!("\\u{u:04X}"))
        .collect();
    vec![
        ("plain", token.to_owned()),
        ("php_quoted", php.replace('\\', "\\\\")),
        ("php", php),
        ("unicode", unicode),
        (
            "percent",
            utf8_percent_encode(token, NON_ALPHANUMERIC).to_string(),
        ),
        ("b64", b64(token)),
        ("basic", b64(&format!("api:{token}"))),
        ("colon", b64(&format!("{token}:"))),
        (
            "url",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token),
        ),
    ]
}

/// The token the request carried, read off its `Authorization` header.
fn token_of(request: &RawRequest) -> String {
    let header = request.header("authorization").unwrap_or_default();
    let value = String::from_utf8_lossy(header);
    value.trim_start_matches("Bearer ").to_owned()
}

/// Splits `body` into chunks of `size` bytes, 1 ms apart.
fn chunked(mut reply: RawReply, body: &[u8], size: usize) -> RawReply {
    for piece in body.chunks(size) {
        reply = reply.chunk(Duration::from_millis(1), piece);
    }
    reply
}

/// Echoes the request's token in every spelling, everywhere.
fn echo(request: &RawRequest) -> RawReply {
    let token = token_of(request);
    let spelled = spellings(&token);
    let by = |wanted: &str| {
        let found = spelled.iter().find(|(name, _)| *name == wanted);
        found.map(|(_, text)| text.clone()).unwrap_or_default()
    };
    let json: serde_json::Map<String, serde_json::Value> = spelled
        .iter()
        .map(|(name, text)| ((*name).to_owned(), text.clone().into()))
        .collect();
    let size = String::from_utf8_lossy(&request.body)
        .split_whitespace()
        .find_map(|word| word.parse::<usize>().ok())
        .unwrap_or(4096);
    let reply = |status, kind| {
        let mut reply = RawReply::new(status, kind)
            .header("X-Echo", format!("Bearer {token}"))
            .header(
                "X-Echo-Basic",
                format!("Basic {}", b64(&format!("api:{token}"))),
            )
            .header(
                "Set-Cookie",
                format!("laravel_session={token}; path=/; httponly"),
            )
            .header("Link", format!("<https://x.test/?t={}>", by("percent")));
        for (name, text) in &spelled {
            reply = reply.header(&format!("X-Echo-{name}"), text.as_str());
        }
        reply
    };
    let path = request.path.as_str();
    if path.ends_with("/agent/generate") {
        // The escaped spellings go into JSON as they are (raw text), the others as
        // JSON strings.
        let raw_fields: String = spelled
            .iter()
            .map(|(name, text)| format!(r#","{name}_raw":"{text}""#))
            .collect();
        let body = format!(
            "data: {{\"type\":\"project_created\",\"project_id\":\"p1\"}}\n\n\
             : keep-alive {token}\n\n\
             data: {{\"type\":\"debug\",\"authorization\":\"Bearer {token}\"{raw_fields}}}\n\n\
             data: {{\"type\":\"tool_progress\",\"echo\":{}}}\n\n\
             data: {{\"type\":\"stream_end\",\"project_id\":\"p1\"}}\n\n",
            serde_json::Value::Object(json)
        );
        chunked(reply(200, "text/event-stream"), body.as_bytes(), size)
    } else if path.contains("/agent/project/") {
        let body = format!(
            r#"{{"status":true,"project_id":"echo","name":"{}","project_status":"ready","app_url":"https://x.test/?t={}"}}"#,
            by("php"),
            by("percent")
        );
        chunked(reply(200, "application/json"), body.as_bytes(), 5)
    } else {
        let body = format!(
            r#"{{"status":false,"message":"Unauthorized: Bearer {token}","seen":"{}","basic":"{}"}}"#,
            by("php_quoted"),
            by("basic")
        );
        chunked(reply(401, "application/json"), body.as_bytes(), 3)
    }
}

fn client(server: &RawServer, path: &std::path::Path) -> Client {
    Client::builder()
        .token(Token::new(SECRET).unwrap())
        .base_url(server.base_url())
        .retry_policy(RetryPolicy::none())
        .record_to(path)
        .build()
        .unwrap()
}

/// Where in `file` a 12-character slice of `text` occurs, if anywhere.
fn leak<'a>(file: &[u8], text: &'a str) -> Option<&'a str> {
    let indices: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    indices
        .windows(13)
        .map(|w| &text[w[0]..w[12]])
        .find(|slice| {
            file.windows(slice.len())
                .any(|window| window == slice.as_bytes())
        })
}

#[tokio::test]
async fn the_token_is_on_no_line_of_the_cassette_however_it_is_echoed() {
    let dir = common::cassette::dir();
    let path = dir.path().join("echo.cassette");
    let server = RawServer::start(echo);
    let client = client(&server, &path);
    for size in [1, 2, 3, 5, 7, 13, 64, 4096] {
        let prompt = format!("Echo in chunks of {size} bytes, and my token {SECRET} too");
        let outcome = common::bounded(async { client.generate(prompt).await?.finish().await });
        outcome
            .await
            .unwrap_or_else(|e| panic!("chunks of {size}: {e:?}"));
    }
    let project = client.project("echo").await.unwrap();
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    let error = client
        .follow_up("p401", "Echo in an error body")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    drop(client);

    // The server did echo it, in full, every way.
    assert!(server.requests().iter().all(|r| token_of(r) == SECRET));
    let file = std::fs::read(&path).unwrap();
    // The file's bytes, and what its lines decode to (JSON strings unescaped, base64
    // decoded, each body joined over its chunks): a spelling could hide in either.
    let cassette = Cassette::load(&path).unwrap();
    let mut blobs = vec![file.clone()];
    for exchange in cassette.exchanges() {
        let request = &exchange.request;
        blobs.push(request.path.clone().into_bytes());
        blobs.push(request.body.to_vec());
        blobs.extend(request.headers.iter().map(|(_, v)| v.clone().into_bytes()));
        if let Some(answer) = &exchange.answer {
            blobs.extend(answer.headers.iter().map(|(_, v)| v.clone().into_bytes()));
        }
        blobs.push(exchange.body());
        blobs.extend(
            exchange
                .end
                .iter()
                .filter_map(|e| e.error.clone())
                .map(String::into_bytes),
        );
    }
    for (name, spelled) in spellings(SECRET) {
        for blob in &blobs {
            assert!(
                !blob.windows(spelled.len()).any(|w| w == spelled.as_bytes()),
                "the {name} spelling is on tape"
            );
            if let Some(slice) = leak(blob, &spelled) {
                let at = blob
                    .windows(slice.len())
                    .position(|w| w == slice.as_bytes())
                    .unwrap();
                let context = String::from_utf8_lossy(
                    &blob[at.saturating_sub(60)..(at + 60).min(blob.len())],
                );
                panic!("a 12-character slice of the {name} spelling is on tape: {slice:?} in {context:?}");
            }
        }
    }
    // What the tape says instead: the mask.
    let mask = Token::new(SECRET).unwrap().masked();
    let text = String::from_utf8_lossy(&file);
    assert!(text.contains(&format!("\"authorization\":\"Bearer {mask}\"")));
    assert!(
        text.contains("laravel_session=****; path=/; httponly"),
        "cookies are masked"
    );
    assert!(
        text.matches(&mask).count() > 50,
        "every echo was masked, not dropped"
    );

    // And the masked tape still replays: the same events, the same errors.
    assert_eq!(cassette.len(), 10);
    let replay = MockServer::replay(cassette);
    let replayed = replay
        .client_builder()
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    for size in [1, 2, 3, 5, 7, 13, 64, 4096] {
        let prompt = format!("Echo in chunks of {size} bytes, and my token {SECRET} too");
        // The recorded prompt is masked, so this prompt is not on the tape...
        let error = replayed.generate(prompt).await.unwrap_err();
        assert_eq!(error.status(), Some(501));
        // ...but the masked one is.
        let masked = format!("Echo in chunks of {size} bytes, and my token {mask} too");
        let outcome = common::bounded(async { replayed.generate(masked).await?.finish().await });
        outcome
            .await
            .unwrap_or_else(|e| panic!("replay of chunks of {size}: {e:?}"));
    }
}

#[test]
fn the_scan_finds_what_it_looks_for() {
    // The leak scan itself, on a file that does leak.
    for (name, spelled) in spellings(SECRET) {
        let file = format!("{{\"x\":1,\"data\":\"..{}..\"}}", &spelled[2..]);
        assert!(leak(file.as_bytes(), &spelled).is_some(), "{name}");
    }
    assert!(
        leak(b"lcp_live/S3", SECRET).is_none(),
        "11 characters are not a slice"
    );
}
