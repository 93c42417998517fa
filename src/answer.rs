//! What an answer means: the status, the error body and `Retry-After` of a response
//! turned into an [`Error`], and the status answer into a [`Project`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Response;
use serde::Deserialize;

use crate::error::TimeoutKind;
use crate::project::{decode_status, StatusAnswer};
use crate::{Error, Project, ProjectId, Token};

pub(crate) const EVENT_STREAM: &str = "text/event-stream";
pub(crate) const JSON: &str = "application/json";

/// Error bodies are read up to this size; the rest is not read.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// The part of an unexpected body kept in [`Error::Api`].
const BODY_SNIPPET: usize = 512;

/// The server's answer to a call, as the transport hands it over.
pub(crate) struct Answer {
    pub(crate) response: Response,
    /// Requests sent, the first included.
    pub(crate) attempts: u32,
    /// The token of the last request, to keep it out of error texts.
    pub(crate) token: Token,
    /// When the first request was sent.
    pub(crate) sent: tokio::time::Instant,
}

/// Whether the `Content-Type` of `headers` is `wanted` (parameters ignored).
pub(crate) fn is_content_type(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

/// The documented error bodies: `{"status": false, "message": ".."}` and Laravel's
/// `{"message": "..", "errors": {"field": [".."]}}`. Every field is optional.
#[derive(Deserialize, Default)]
struct ErrorBody {
    message: Option<String>,
    #[serde(default)]
    errors: BTreeMap<String, Messages>,
}

/// A validation entry: a list of messages, or a single message.
#[derive(Deserialize)]
#[serde(untagged)]
enum Messages {
    Many(Vec<String>),
    One(String),
}

/// Turns a non-success (or non-stream) answer into the matching [`Error`], reading at
/// most [`MAX_ERROR_BODY`] bytes of its body.
pub(crate) async fn error_from_response(answer: Answer, project_id: Option<ProjectId>) -> Error {
    let Answer {
        response,
        attempts,
        token,
        ..
    } = answer;
    let status = response.status();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let body = read_capped(response, MAX_ERROR_BODY).await;
    // A proxy or a debug page may echo the request's headers: the token never goes
    // further than this.
    let mut body = String::from_utf8_lossy(&body).into_owned();
    token.redact(&mut body);
    let parsed: Option<ErrorBody> = serde_json::from_str(&body).ok();
    let message = parsed.as_ref().and_then(|b| b.message.clone());

    match status.as_u16() {
        401 if message.as_deref().is_some_and(is_expired_message) => {
            Error::TokenExpired { locally: false }
        }
        401 => Error::Unauthorized { message },
        404 => Error::NotFound {
            message,
            project_id,
        },
        422 => {
            let body = parsed.unwrap_or_default();
            Error::Validation {
                message: body
                    .message
                    .unwrap_or_else(|| "the given data was invalid".into()),
                errors: body
                    .errors
                    .into_iter()
                    .map(|(field, messages)| {
                        let messages = match messages {
                            Messages::Many(list) => list,
                            Messages::One(one) => vec![one],
                        };
                        (field, messages)
                    })
                    .collect(),
            }
        }
        429 => Error::RateLimited {
            retry_after,
            project_id,
            attempts,
        },
        _ => Error::Api {
            status: status.as_u16(),
            message,
            body: snippet(&body),
            project_id,
            attempts,
        },
    }
}

/// Reads and decodes the body of a success answer of the status call.
pub(crate) async fn project_from_response(
    answer: Answer,
    requested: &ProjectId,
) -> Result<Project, Error> {
    let attempts = answer.attempts;
    let bytes = answer
        .response
        .bytes()
        .await
        .map_err(|e| Error::from_reqwest(e, TimeoutKind::Request))?;
    match decode_status(&bytes, requested) {
        Ok(StatusAnswer::Project(project)) => Ok(project),
        Ok(StatusAnswer::Refused {
            message,
            project_id,
        }) => Err(Error::Api {
            status: 200,
            message,
            body: snippet(&String::from_utf8_lossy(&bytes)),
            project_id,
            attempts,
        }),
        Err(e) => Err(Error::decode("project status", e)),
    }
}

/// The documented message of an expired token is "API token has expired."; compare
/// loosely so that punctuation or case changes do not turn it into `Unauthorized`.
fn is_expired_message(message: &str) -> bool {
    message.to_ascii_lowercase().contains("expired")
}

async fn read_capped(mut response: Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// The start of `body`, cut on a character boundary.
pub(crate) fn snippet(body: &str) -> String {
    if body.len() <= BODY_SNIPPET {
        return body.to_owned();
    }
    let mut end = BODY_SNIPPET;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past means now).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn retry_after_in_seconds_and_as_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            retry_after(&headers("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:50:07 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn snippet_is_capped_on_a_character_boundary() {
        let long = "é".repeat(400);
        let s = snippet(&long);
        assert!(s.len() <= BODY_SNIPPET + '…'.len_utf8());
        assert!(s.ends_with("é…"));
        assert_eq!(snippet("<html>short</html>"), "<html>short</html>");
    }
}
