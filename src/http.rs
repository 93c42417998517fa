//! Requests: headers, sending with the token, and mapping answers to [`Error`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::error::TimeoutKind;
use crate::generation::Generation;
use crate::trace::CallSpan;
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
    let span = CallSpan::new("POST", url.path());
    let sent = tokio::time::Instant::now();
    let call = Call {
        client,
        method: Method::POST,
        url,
        accept: EVENT_STREAM,
        body: Some(body.into()),
        // Waiting for the answer's headers is bounded by the idle timeout: no byte for
        // that long means the same as a silent stream.
        wait: config.idle_timeout.map(|limit| (limit, TimeoutKind::Idle)),
        idempotent: false,
    };
    let answer = span
        .run(call.send())
        .await
        .map_err(|e| e.with_project_id(project_id.as_ref()))?;
    let status = answer.response.status();
    span.answered(status.as_u16(), answer.attempts);
    if let Some(id) = &project_id {
        span.project(id);
    }
    if status.is_success() && is_content_type(answer.response.headers(), EVENT_STREAM) {
        return Ok(Generation::new(
            client,
            answer.response,
            project_id,
            sent,
            answer.attempts,
            span,
        ));
    }
    Err(error_from_response(answer, project_id).await)
}

/// `GET /agent/project/{id}`.
pub(crate) async fn get_project(
    client: &Client,
    url: Url,
    project_id: ProjectId,
) -> Result<Project> {
    let call = Call {
        client,
        method: Method::GET,
        url,
        accept: JSON,
        body: None,
        wait: Some((client.inner.request_timeout, TimeoutKind::Request)),
        idempotent: true,
    };
    let span = CallSpan::new("GET", call.url.path());
    span.project(&project_id);
    let answer = span
        .run(call.send())
        .await
        .map_err(|e| e.with_project_id(Some(&project_id)))?;
    span.answered(answer.response.status().as_u16(), answer.attempts);
    if !answer.response.status().is_success() {
        return Err(error_from_response(answer, Some(project_id)).await);
    }
    let bytes = answer
        .response
        .bytes()
        .await
        .map_err(|e| map_reqwest(e, TimeoutKind::Request).with_project_id(Some(&project_id)))?;
    Project::from_json(&bytes, &project_id).map_err(|e| e.with_project_id(Some(&project_id)))
}

/// One API call, sent with retries as the client's [`RetryPolicy`](crate::RetryPolicy)
/// allows.
struct Call<'a> {
    client: &'a Client,
    method: Method,
    url: Url,
    accept: &'static str,
    body: Option<bytes::Bytes>,
    /// How long one attempt may wait for the answer's headers, and which timeout that is.
    wait: Option<(Duration, TimeoutKind)>,
    /// Whether the call may be sent again after it may have reached the server: true
    /// for the status call, false for the generate calls (a second POST can create a
    /// second project and spend credits twice).
    idempotent: bool,
}

/// A failed attempt, and whether the request certainly never left.
struct Failure {
    error: Error,
    unsent: bool,
}

/// The server's answer to a call.
pub(crate) struct Answer {
    pub(crate) response: Response,
    /// Requests sent, the first included.
    pub(crate) attempts: u32,
    /// The token of the last request, to keep it out of error texts.
    pub(crate) token: Token,
}

impl Call<'_> {
    /// Sends the call, retrying what is safe to retry.
    async fn send(&self) -> Result<Answer> {
        let policy = &self.client.inner.retry;
        let mut attempt = 1;
        loop {
            let outcome = self.send_authorized().await;
            let (retryable, retry_after) = match &outcome {
                Ok((response, _)) => {
                    let status = response.status().as_u16();
                    let retryable =
                        matches!(status, 429 | 503) || (self.idempotent && status >= 500);
                    (
                        retryable,
                        retry_after(response.headers(), SystemTime::now()),
                    )
                }
                Err(failure) => {
                    let transient = matches!(
                        failure.error,
                        Error::Transport { .. } | Error::Timeout { .. }
                    );
                    (failure.unsent || (self.idempotent && transient), None)
                }
            };
            let delay = if retryable {
                policy.delay(attempt, retry_after)
            } else {
                None
            };
            let Some(delay) = delay else {
                return match outcome {
                    Ok((response, token)) => Ok(Answer {
                        response,
                        attempts: attempt,
                        token,
                    }),
                    Err(failure) => Err(failure.error.with_attempts(attempt)),
                };
            };
            #[cfg(feature = "tracing")]
            tracing::warn!(
                method = %self.method,
                path = self.url.path(),
                attempt,
                status = outcome.as_ref().ok().map(|(r, _)| r.status().as_u16()),
                error = outcome.as_ref().err().map(|f| f.error.kind()),
                delay_ms = delay.as_millis() as u64,
                "retrying laracopilot request"
            );
            drop(outcome);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt with the provider's token. After a 401 the provider is asked to
    /// refresh once, and the request goes again only if that gave a different token (a
    /// 401 means the server did no work, so this never spends credits twice).
    async fn send_authorized(&self) -> std::result::Result<(Response, Token), Failure> {
        let tokens = &self.client.inner.tokens;
        let unsent = |error| Failure {
            error,
            unsent: true,
        };
        let token = tokens.current().await.map_err(unsent)?;
        let response = self.send_once(&token).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((response, token));
        }
        match tokens.refresh_after_401(&token).await {
            Ok(fresh) if !fresh.same_as(&token) => {
                let response = self.send_once(&fresh).await?;
                Ok((response, fresh))
            }
            _ => Ok((response, token)),
        }
    }

    async fn send_once(&self, token: &Token) -> std::result::Result<Response, Failure> {
        let inner = &self.client.inner;
        let mut request = inner
            .http
            .request(self.method.clone(), self.url.clone())
            .header(AUTHORIZATION, token.authorization())
            .header(ACCEPT, self.accept)
            .header(USER_AGENT, inner.user_agent.clone());
        if let Some(body) = &self.body {
            request = request.header(CONTENT_TYPE, JSON).body(body.clone());
        }
        let kind = self.wait.map_or(TimeoutKind::Request, |(_, kind)| kind);
        let sent = match self.wait {
            // The status call's limit covers the whole exchange, body included.
            Some((limit, TimeoutKind::Request)) => request.timeout(limit).send().await,
            Some((limit, _)) => match tokio::time::timeout(limit, request.send()).await {
                Ok(sent) => sent,
                Err(_) => {
                    let error = Error::Timeout {
                        kind,
                        project_id: None,
                    };
                    return Err(Failure {
                        error,
                        unsent: false,
                    });
                }
            },
            None => request.send().await,
        };
        sent.map_err(|e| Failure {
            unsent: e.is_connect(),
            error: map_reqwest(e, kind),
        })
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
pub(crate) async fn error_from_response(answer: Answer, project_id: Option<ProjectId>) -> Error {
    let Answer {
        response,
        attempts,
        token,
    } = answer;
    let status = response.status();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let is_json = is_content_type(response.headers(), JSON);
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
            message: if is_json || parsed.is_some() {
                message
            } else {
                None
            },
            body: snippet(&body),
            project_id,
            attempts,
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

/// The start of `body`, cut on a character boundary.
fn snippet(body: &str) -> String {
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
