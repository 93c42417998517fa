//! One request in, one answer out: reading and recording it, canned replies,
//! routing, the token check, Laravel-style validation, the three endpoints.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::Value;

use super::demo;
use super::fault::{FaultPlan, Reply};
use super::script::{DefaultScript, Kind, Script};
use super::state::{RecordedRequest, Shared, TokenState};
use super::stream::{EventStream, Fixed, MockBody};
use laracopilot::Token;

/// The API's path prefix.
pub(crate) const PREFIX: &str = "/api/v1";
/// Request bodies larger than this are refused with 413 (and not read further).
pub(crate) const MAX_REQUEST_BODY: usize = 1024 * 1024;

const SERVER_ERROR_HTML: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Server Error</title></head>\n<body><div class=\"code\">500</div><div class=\"message\">Server Error</div></body>\n</html>\n";

/// Laravel's 422: `{"message": .., "errors": {"prompt": [..]}}`.
#[derive(Serialize)]
struct Invalid<'a> {
    message: &'a str,
    errors: PromptErrors<'a>,
}

#[derive(Serialize)]
struct PromptErrors<'a> {
    prompt: [&'a str; 1],
}

/// The status answer, keys in the documented order.
#[derive(Serialize)]
struct StatusAnswer<'a> {
    status: bool,
    project_id: &'a str,
    app_url: &'a str,
    project_status: &'a str,
    name: &'a str,
}

/// Serves one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let limited = Limited::new(body, MAX_REQUEST_BODY).collect();
    let (body, unread) = match tokio::time::timeout(shared.config.read_timeout, limited).await {
        Ok(Ok(collected)) => (collected.to_bytes(), None),
        Ok(Err(_)) => (Bytes::new(), Some(StatusCode::PAYLOAD_TOO_LARGE)),
        Err(_) => (Bytes::new(), Some(StatusCode::REQUEST_TIMEOUT)),
    };
    shared.record(recorded(&parts, &body));
    if parts.method == Method::POST && is_generate_path(parts.uri.path()) {
        shared.traffic.post(parts.uri.path(), &body);
    }
    if let Some(status) = unread {
        let message = match status {
            StatusCode::REQUEST_TIMEOUT => "The request body did not arrive in time.",
            _ => "The request body is too large (or could not be read).",
        };
        return Ok(with(
            message_answer(status, message),
            header::CONNECTION,
            "close",
        ));
    }
    if let Some(reply) = shared.take_reply() {
        return Ok(canned(reply).await);
    }
    let answer = route(&shared, &parts, &body);
    let delay = match answer.body() {
        Either::Right(stream) => stream.delay_headers(),
        Either::Left(_) => Duration::ZERO,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(answer)
}

/// Whether `path` is `POST /agent/generate` or `POST /agent/generate/{projectId}`'s.
fn is_generate_path(path: &str) -> bool {
    const GENERATE: &str = "/agent/generate";
    path.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(GENERATE))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The documented endpoints.
enum Endpoint {
    Generate,
    FollowUp(String),
    Status(String),
    Plans,
}

fn route(shared: &Arc<Shared>, parts: &Parts, body: &[u8]) -> Response<MockBody> {
    let path = parts.uri.path();
    let segments: Vec<String> = path
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(|rest| {
            let decode = |s| percent_decode_str(s).decode_utf8_lossy().into_owned();
            rest.split('/').map(decode).collect()
        })
        .unwrap_or_default();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let endpoint = match segments.as_slice() {
        ["agent", "generate"] => Endpoint::Generate,
        ["agent", "generate", id] if !id.is_empty() => Endpoint::FollowUp((*id).to_owned()),
        ["agent", "project", id] if !id.is_empty() => Endpoint::Status((*id).to_owned()),
        ["subscription-plans"] => Endpoint::Plans,
        _ => {
            let path = path.trim_start_matches('/');
            let message = format!("The route {path} could not be found.");
            return message_answer(StatusCode::NOT_FOUND, &message);
        }
    };
    let (allowed, supported) = match endpoint {
        Endpoint::Status(_) | Endpoint::Plans => (
            parts.method == Method::GET || parts.method == Method::HEAD,
            "GET, HEAD",
        ),
        _ => (parts.method == Method::POST, "POST"),
    };
    if !allowed {
        let message = format!(
            "The {} method is not supported for route {}. Supported methods: {supported}.",
            parts.method,
            path.trim_start_matches('/'),
        );
        let answer = message_answer(StatusCode::METHOD_NOT_ALLOWED, &message);
        return with(answer, header::ALLOW, supported);
    }
    if let Some(refused) = authorize(shared, parts) {
        return refused;
    }
    match endpoint {
        Endpoint::Generate => start_stream(shared, None, body),
        Endpoint::FollowUp(id) => start_stream(shared, Some(id), body),
        Endpoint::Status(id) => match shared.project(&id) {
            Some(project) => json_answer(
                StatusCode::OK,
                &StatusAnswer {
                    status: true,
                    project_id: project.project_id.as_str(),
                    app_url: &project.app_url,
                    project_status: project.status.as_str(),
                    name: &project.name,
                },
            ),
            None => project_not_found(),
        },
        Endpoint::Plans => json_answer(
            StatusCode::OK,
            &serde_json::json!({ "data": shared.config.plans }),
        ),
    }
}

/// `POST /agent/generate` (`follow_up` is `None`: a new project, stored) or
/// `POST /agent/generate/{projectId}` (a known project, no container events): a
/// valid prompt, then the stream.
fn start_stream(
    shared: &Arc<Shared>,
    follow_up: Option<String>,
    body: &[u8],
) -> Response<MockBody> {
    if follow_up
        .as_ref()
        .is_some_and(|id| shared.project(id).is_none())
    {
        return project_not_found();
    }
    let prompt = match validate(shared, body) {
        Ok(prompt) => prompt,
        Err(message) => return invalid_prompt(&message),
    };
    let new_project = follow_up.is_none();
    let files = demo::files(&prompt, new_project);
    let (script, faults) = shared.take_stream_setup(&prompt);
    let accepted = prompt.clone();
    let (id, app_url) = match follow_up {
        Some(id) => match shared.start_follow_up(&id, prompt) {
            Some(app_url) => (id, app_url),
            None => return project_not_found(),
        },
        None => {
            // A custom script that announces a project names the stored one.
            let announced = script.iter().flatten().find_map(|event| match &event.kind {
                Kind::ProjectCreated(id, url) => Some((id.clone(), url.clone())),
                _ => None,
            });
            let (id, url) = announced.unwrap_or_default();
            let id = id.unwrap_or_else(|| shared.new_project_id());
            let app_url = url.unwrap_or_else(|| format!("https://{id}.laracopilot.com"));
            shared.create_project(&id, demo::project_name(&prompt), app_url.clone(), prompt);
            (id, app_url)
        }
    };
    let script = match script {
        Some(events) => Script::Custom(events.into_iter()),
        None => {
            let events = shared.config.events_per_generation;
            Script::Default(DefaultScript::new(
                id.clone(),
                app_url,
                new_project,
                files,
                events,
            ))
        }
    };
    let plan = FaultPlan::new(&faults);
    let ticket = shared.traffic.opened(&accepted, &id, !new_project);
    event_stream(EventStream::new(
        Arc::clone(shared),
        id,
        script,
        plan,
        ticket,
    ))
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
    Some(refusal(StatusCode::UNAUTHORIZED, message))
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Laravel's `required|string|min:N` on `prompt`, after its `TrimStrings` middleware.
/// A body that is not a JSON object has no `prompt`. `Err` holds the message.
fn validate(shared: &Shared, body: &[u8]) -> Result<String, String> {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let min = shared.config.min_prompt_len;
    let required = || "The prompt field is required.".to_owned();
    match value.as_ref().and_then(|v| v.get("prompt")) {
        None | Some(Value::Null) => Err(required()),
        Some(Value::String(text)) => match text.trim() {
            "" => Err(required()),
            text if text.chars().count() < min => Err(format!(
                "The prompt field must be at least {min} characters."
            )),
            text => Ok(text.to_owned()),
        },
        Some(_) => Err("The prompt field must be a string.".to_owned()),
    }
}

fn invalid_prompt(message: &str) -> Response<MockBody> {
    let errors = PromptErrors { prompt: [message] };
    json_answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        &Invalid { message, errors },
    )
}

fn project_not_found() -> Response<MockBody> {
    refusal(StatusCode::NOT_FOUND, "Project not found.")
}

/// `{"status": false, "message": ..}`: 401, and 404 for an unknown project.
fn refusal(status: StatusCode, message: &str) -> Response<MockBody> {
    #[derive(Serialize)]
    struct Refusal<'a> {
        status: bool,
        message: &'a str,
    }
    json_answer(
        status,
        &Refusal {
            status: false,
            message,
        },
    )
}

/// `{"message": ..}`: unknown routes, 405, 408, 413, 429, 503.
fn message_answer(status: StatusCode, message: &str) -> Response<MockBody> {
    #[derive(Serialize)]
    struct Message<'a> {
        message: &'a str,
    }
    json_answer(status, &Message { message })
}

/// `answer` with one more header.
fn with(
    mut answer: Response<MockBody>,
    name: header::HeaderName,
    value: &'static str,
) -> Response<MockBody> {
    answer
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    answer
}

/// The answer for a canned [`Reply`], after its delays.
async fn canned(mut reply: Reply) -> Response<MockBody> {
    let mut delay = Duration::ZERO;
    while let Reply::Delayed {
        delay: more,
        reply: inner,
    } = reply
    {
        delay = delay.saturating_add(more);
        reply = *inner;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match reply {
        Reply::RateLimited { retry_after } => {
            let mut answer = message_answer(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.");
            let headers = answer.headers_mut();
            headers.insert("x-ratelimit-limit", HeaderValue::from_static("60"));
            headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            if let Some(seconds) = retry_after {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            answer
        }
        Reply::Unavailable => {
            message_answer(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        Reply::Status(code, body) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let kind = match serde_json::from_str::<Value>(&body) {
                Ok(_) => "application/json",
                Err(_) => "text/plain; charset=utf-8",
            };
            answer(status, kind, body)
        }
        // Dropped (and the connection closed) when the client goes or the server stops.
        Reply::Hang => std::future::pending().await,
        Reply::StalledBody { status, partial } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut answer = Response::new(Either::Left(Fixed::stalled(partial.into())));
            *answer.status_mut() = status;
            with(answer, CONTENT_TYPE, "application/json")
        }
        // `Delayed` was unwrapped above.
        Reply::ServerErrorHtml | Reply::Delayed { .. } => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html; charset=UTF-8",
            SERVER_ERROR_HTML,
        ),
    }
}

fn event_stream(stream: EventStream) -> Response<MockBody> {
    let closes = stream.closes_connection();
    let mut answer = Response::new(Either::Right(stream));
    let headers = answer.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if closes {
        return with(answer, header::CONNECTION, "close");
    }
    answer
}

fn json_answer(status: StatusCode, body: &impl Serialize) -> Response<MockBody> {
    // Structs of strings and booleans: serializing into a `Vec` cannot fail.
    let json = serde_json::to_vec(body).unwrap_or_default();
    answer(status, "application/json", json)
}

fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<MockBody> {
    let mut answer = Response::new(Either::Left(Fixed::whole(body.into())));
    *answer.status_mut() = status;
    with(answer, CONTENT_TYPE, content_type)
}

/// The request as recorded, with the credentials in `Authorization` masked.
pub(crate) fn recorded(parts: &Parts, body: &[u8]) -> RecordedRequest {
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

/// The scheme, if any, and the credentials as [`Token::masked`] shows them (`****`
/// when they are not a valid token).
fn redact(value: &str) -> String {
    let (scheme, credentials) = match value.trim().split_once(' ') {
        Some((scheme, credentials)) => (Some(scheme), credentials.trim()),
        None => (None, value.trim()),
    };
    let masked = Token::new(credentials).map_or_else(|_| "****".to_owned(), |t| t.masked());
    match scheme {
        Some(scheme) => format!("{scheme} {masked}"),
        None => masked,
    }
}
