//! Requests: headers, sending with the token, and mapping answers to [`Error`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::error::TimeoutKind;
use crate::generation::Generation;
use crate::{Client, Error, Project, ProjectId, Result, Token};

const EVENT_STREAM: &str = "text/event-stream";
const JSON: &str = "application/json";

/// Error bodies are read up to this size; the rest is not read.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// The part of an unexpected body kept in [`Error::Api`].
const BODY_SNIPPET: usize = 512;

/// Starts a generate call and checks its status before handing back the stream.
pub(crate) async fn start_generation(
    client: &Client,
    url: Url,
    prompt: String,
    project_id: Option<ProjectId>,
) -> Result<Generation> {
    let body = serde_json::to_vec(&serde_json::json!({ "prompt": prompt }))
        .map_err(|e| Error::decode("prompt", e))?;
    let config = &client.inner.stream;
    let send = send(client, Method::POST, url, EVENT_STREAM, Some(body), None);
    // Waiting for the answer's headers is bounded by the idle timeout: no byte for
    // that long means the same as a silent stream.
    let response = match config.idle_timeout {
        Some(limit) => tokio::time::timeout(limit, send)
            .await
            .map_err(|_| Error::Timeout {
                kind: TimeoutKind::Idle,
                project_id: None,
            })?,
        None => send.await,
    }
    .map_err(|e| e.with_project_id(project_id.as_ref()))?;

    let status = response.status();
    if status.is_success() && is_content_type(response.headers(), EVENT_STREAM) {
        return Ok(Generation::new(response, config, project_id));
    }
    Err(error_from_response(response, project_id).await)
}

/// `GET /agent/project/{id}`.
pub(crate) async fn get_project(
    client: &Client,
    url: Url,
    project_id: ProjectId,
) -> Result<Project> {
    let timeout = client.inner.request_timeout;
    let response = send(client, Method::GET, url, JSON, None, Some(timeout))
        .await
        .map_err(|e| e.with_project_id(Some(&project_id)))?;
    if !response.status().is_success() {
        return Err(error_from_response(response, Some(project_id)).await);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| map_reqwest(e, TimeoutKind::Request).with_project_id(Some(&project_id)))?;
    Project::from_json(&bytes, &project_id).map_err(|e| e.with_project_id(Some(&project_id)))
}

/// Sends one request with the provider's token. After a 401 the provider is asked to
/// refresh once, and the request goes again only if that gave a different token (a
/// 401 means the server did no work, so this never spends credits twice).
async fn send(
    client: &Client,
    method: Method,
    url: Url,
    accept: &'static str,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
) -> Result<Response> {
    let inner = &client.inner;
    let attempt = |token: &Token| {
        let mut request = inner
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, token.authorization())
            .header(ACCEPT, accept)
            .header(USER_AGENT, inner.user_agent.clone());
        if let Some(body) = &body {
            request = request.header(CONTENT_TYPE, JSON).body(body.clone());
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        async move {
            request
                .send()
                .await
                .map_err(|e| map_reqwest(e, TimeoutKind::Request))
        }
    };

    let token = inner.tokens.current().await?;
    let response = attempt(&token).await?;
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    match inner.tokens.refresh_after_401(&token).await {
        Ok(fresh) if !fresh.same_as(&token) => attempt(&fresh).await,
        _ => Ok(response),
    }
}

/// Maps a reqwest error; `timeout` names the timeout that applies when it says it
/// timed out without being a connect timeout.
pub(crate) fn map_reqwest(error: reqwest::Error, timeout: TimeoutKind) -> Error {
    if error.is_timeout() {
        let kind = if error.is_connect() {
            TimeoutKind::Connect
        } else {
            timeout
        };
        return Error::Timeout {
            kind,
            project_id: None,
        };
    }
    Error::transport(error)
}

fn is_content_type(headers: &HeaderMap, wanted: &str) -> bool {
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
pub(crate) async fn error_from_response(
    response: Response,
    project_id: Option<ProjectId>,
) -> Error {
    let status = response.status();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let is_json = is_content_type(response.headers(), JSON);
    let body = read_capped(response, MAX_ERROR_BODY).await;
    let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
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
        },
        _ => Error::Api {
            status: status.as_u16(),
            message: if is_json || parsed.is_some() {
                message
            } else {
                None
            },
            body: snippet(&body),
            project_id,
        },
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

fn snippet(body: &[u8]) -> String {
    // Decode a little more than the cap so that a cut character is not counted, then
    // cut on a character boundary.
    let mut text = String::from_utf8_lossy(&body[..body.len().min(BODY_SNIPPET + 3)]).into_owned();
    if body.len() > BODY_SNIPPET {
        let mut end = BODY_SNIPPET;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
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
        let s = snippet(long.as_bytes());
        assert!(s.len() <= BODY_SNIPPET + '…'.len_utf8());
        assert!(s.ends_with("é…"));
        assert_eq!(snippet(b"<html>short</html>"), "<html>short</html>");
    }
}
