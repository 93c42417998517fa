//! One request in, one answer out: recording, canned replies, routing, the token
//! check, Laravel-style validation, and the three documented endpoints.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::fault::{FaultPlan, Reply};
use super::json;
use super::script::{self, DefaultScript, Script};
use super::state::{RecordedRequest, Shared, TokenState};
use super::stream::{EventStream, MockBody};

/// The API's path prefix.
pub(crate) const PREFIX: &str = "/api/v1";
/// Request bodies larger than this are refused with 413 (and not read further).
const MAX_REQUEST_BODY: usize = 1024 * 1024;

const SERVER_ERROR_HTML: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Server Error</title></head>\n<body><div class=\"code\">500</div><div class=\"message\">Server Error</div></body>\n</html>\n";

/// Serves one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let (body, too_large) = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(_) => (Bytes::new(), true),
    };
    shared.record(recorded(&parts, &body));
    if let Some(reply) = shared.take_reply() {
        return Ok(canned(reply));
    }
    if too_large {
        let message = "The request body is too large (or could not be read).";
        return Ok(json_answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({ "message": message }),
        ));
    }
    Ok(route(&shared, &parts, &body))
}

/// The documented endpoints.
enum Endpoint {
    Generate,
    FollowUp(String),
    Status(String),
}

fn route(shared: &Arc<Shared>, parts: &Parts, body: &[u8]) -> Response<MockBody> {
    let path = parts.uri.path();
    let segments: Vec<String> = path
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(|rest| rest.split('/').map(percent_decode).collect())
        .unwrap_or_default();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let endpoint = match segments.as_slice() {
        ["agent", "generate"] => Endpoint::Generate,
        ["agent", "generate", id] if !id.is_empty() => Endpoint::FollowUp((*id).to_owned()),
        ["agent", "project", id] if !id.is_empty() => Endpoint::Status((*id).to_owned()),
        _ => {
            let message = format!(
                "The route {} could not be found.",
                path.trim_start_matches('/')
            );
            return json_answer(StatusCode::NOT_FOUND, json!({ "message": message }));
        }
    };
    let allowed = match endpoint {
        Endpoint::Status(_) => parts.method == Method::GET || parts.method == Method::HEAD,
        _ => parts.method == Method::POST,
    };
    if !allowed {
        return method_not_allowed(parts, &endpoint);
    }
    if let Some(refused) = authorize(shared, parts) {
        return refused;
    }
    match endpoint {
        Endpoint::Generate => generate(shared, body),
        Endpoint::FollowUp(id) => follow_up(shared, id, body),
        Endpoint::Status(id) => status(shared, &id),
    }
}

/// `POST /agent/generate`: validates, stores a new project, streams.
fn generate(shared: &Arc<Shared>, body: &[u8]) -> Response<MockBody> {
    let prompt = match validate(shared, body) {
        Ok(prompt) => prompt,
        Err(message) => return invalid_prompt(message),
    };
    let setup = shared.take_stream_setup();
    // A custom script that announces a project names the stored one.
    let announced = setup.script.as_deref().and_then(announced_project);
    let id = match &announced {
        Some((id, _)) => id.clone(),
        None => shared.new_project_id(),
    };
    let app_url = match announced.and_then(|(_, url)| url) {
        Some(url) => url,
        None => format!("https://{id}.laracopilot.com"),
    };
    shared.create_project(
        &id,
        script::project_name(&prompt),
        app_url.clone(),
        prompt.clone(),
    );
    let script = match setup.script {
        Some(events) => Script::Custom(events.into_iter()),
        None => Script::Default(DefaultScript::new(
            id.clone(),
            app_url,
            true,
            script::new_project_files(&prompt),
            shared.config.events_per_generation,
        )),
    };
    let plan = FaultPlan::new(&setup.faults);
    event_stream(EventStream::new(Arc::clone(shared), id, script, plan))
}

/// `POST /agent/generate/{projectId}`: a known project, a valid prompt, then a stream
/// without container events.
fn follow_up(shared: &Arc<Shared>, id: String, body: &[u8]) -> Response<MockBody> {
    if shared.project(&id).is_none() {
        return project_not_found();
    }
    let prompt = match validate(shared, body) {
        Ok(prompt) => prompt,
        Err(message) => return invalid_prompt(message),
    };
    let files = script::follow_up_files(&prompt);
    let Some(app_url) = shared.start_follow_up(&id, prompt) else {
        return project_not_found();
    };
    let setup = shared.take_stream_setup();
    let script = match setup.script {
        Some(events) => Script::Custom(events.into_iter()),
        None => Script::Default(DefaultScript::new(
            id.clone(),
            app_url,
            false,
            files,
            shared.config.events_per_generation,
        )),
    };
    let plan = FaultPlan::new(&setup.faults);
    event_stream(EventStream::new(Arc::clone(shared), id, script, plan))
}

/// `GET /agent/project/{projectId}`.
fn status(shared: &Shared, id: &str) -> Response<MockBody> {
    match shared.project(id) {
        Some(project) => json_answer(
            StatusCode::OK,
            json!({
                "status": true,
                "project_id": project.project_id,
                "app_url": project.app_url,
                "project_status": project.status.as_str(),
                "name": project.name,
            }),
        ),
        None => project_not_found(),
    }
}

/// The id and app URL of the first `project_created` event of a custom script.
fn announced_project(events: &[Value]) -> Option<(String, Option<String>)> {
    let created = events
        .iter()
        .find(|e| e.get("type").and_then(Value::as_str) == Some("project_created"))?;
    let id = match created.get("project_id")? {
        Value::String(id) if !id.is_empty() => id.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let url = created
        .get("app_url")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((id, url))
}

/// The bearer token check: `None` when the request may go on, else the 401 answer.
fn authorize(shared: &Shared, parts: &Parts) -> Option<Response<MockBody>> {
    let token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let message = match token.and_then(|t| shared.token_state(t)) {
        Some(TokenState::Valid) => return None,
        Some(TokenState::Expired) => "API token has expired.",
        Some(TokenState::Revoked) | None => "Unauthorized.",
    };
    Some(json_answer(
        StatusCode::UNAUTHORIZED,
        json!({"status": false, "message": message}),
    ))
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Laravel's `required|string|min:N` on `prompt`, after its `TrimStrings` middleware.
/// A body that is not a JSON object has no `prompt`.
/// `Err` holds the validation message.
fn validate(shared: &Shared, body: &[u8]) -> Result<String, String> {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let min = shared.config.min_prompt_len;
    let required = || "The prompt field is required.".to_owned();
    let message = match value.as_ref().and_then(|v| v.get("prompt")) {
        None | Some(Value::Null) => required(),
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.is_empty() {
                required()
            } else if text.chars().count() < min {
                format!("The prompt field must be at least {min} characters.")
            } else {
                return Ok(text.to_owned());
            }
        }
        Some(_) => "The prompt field must be a string.".to_owned(),
    };
    Err(message)
}

/// Laravel's 422 for an invalid prompt.
fn invalid_prompt(message: String) -> Response<MockBody> {
    json_answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": message, "errors": {"prompt": [message]}}),
    )
}

fn project_not_found() -> Response<MockBody> {
    json_answer(
        StatusCode::NOT_FOUND,
        json!({"status": false, "message": "Project not found."}),
    )
}

fn method_not_allowed(parts: &Parts, endpoint: &Endpoint) -> Response<MockBody> {
    let supported = match endpoint {
        Endpoint::Status(_) => "GET, HEAD",
        _ => "POST",
    };
    let message = format!(
        "The {} method is not supported for route {}. Supported methods: {supported}.",
        parts.method,
        parts.uri.path().trim_start_matches('/'),
    );
    let mut answer = json_answer(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({ "message": message }),
    );
    answer
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(supported));
    answer
}

/// The answer for a canned [`Reply`].
fn canned(reply: Reply) -> Response<MockBody> {
    match reply {
        Reply::RateLimited { retry_after } => {
            let mut answer = json_answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"message": "Too Many Attempts."}),
            );
            let headers = answer.headers_mut();
            headers.insert("x-ratelimit-limit", HeaderValue::from_static("60"));
            headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            if let Some(seconds) = retry_after {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            answer
        }
        Reply::Unavailable => json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"message": "Service Unavailable"}),
        ),
        Reply::ServerErrorHtml => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html; charset=UTF-8",
            SERVER_ERROR_HTML,
        ),
        Reply::Status(code, body) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = if serde_json::from_str::<Value>(&body).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            answer(status, kind, body)
        }
    }
}

fn event_stream(stream: EventStream) -> Response<MockBody> {
    let closes = stream.closes_connection();
    let mut answer = Response::new(MockBody::Stream(Box::new(stream)));
    let headers = answer.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if closes {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

fn json_answer(status: StatusCode, body: Value) -> Response<MockBody> {
    answer(
        status,
        "application/json",
        json::to_vec(&body, json::ANSWER_KEYS),
    )
}

fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<MockBody> {
    let mut answer = Response::new(MockBody::full(body));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

/// The request as recorded, with the token in `Authorization` masked.
fn recorded(parts: &Parts, body: &[u8]) -> RecordedRequest {
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let text = if name == AUTHORIZATION {
                redact(&text)
            } else {
                text.into_owned()
            };
            (name.as_str().to_owned(), text)
        })
        .collect();
    RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

/// `Bearer ****` and the last four characters of the credentials (none when they are
/// shorter than 12 characters, as [`Token::masked`](crate::Token::masked) does).
pub(crate) fn redact(value: &str) -> String {
    let (scheme, credentials) = match value.trim().split_once(' ') {
        Some((scheme, credentials)) => (Some(scheme), credentials.trim()),
        None => (None, value.trim()),
    };
    let count = credentials.chars().count();
    let tail: String = if count >= 12 {
        credentials.chars().skip(count - 4).collect()
    } else {
        String::new()
    };
    match scheme {
        Some(scheme) => format!("{scheme} ****{tail}"),
        None => format!("****{tail}"),
    }
}

/// Decodes `%XX` escapes of one path segment (invalid escapes are kept as they are).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_the_scheme_and_at_most_the_last_four_characters() {
        assert_eq!(redact("Bearer lcp_live_0123456789"), "Bearer ****6789");
        assert_eq!(redact("Bearer short"), "Bearer ****");
        assert_eq!(redact("rawtokenvalue1234"), "****1234");
    }

    #[test]
    fn bearer_tokens_are_found_whatever_the_scheme_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn percent_escapes_are_decoded_and_invalid_ones_kept() {
        assert_eq!(percent_decode("..%2Fx%3Fy"), "../x?y");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
