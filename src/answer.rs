//! What an answer means: the status, the error body and `Retry-After` of a response
//! turned into an [`Error`], and the status answer into a [`Project`]. Every body is
//! read up to a cap and a deadline; whatever was read by then is what the error shows.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Response;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::error::{BoxError, ErrorContext, TimeoutKind};
use crate::lenient::{self, Fields};
use crate::plans::{decode_plans, SubscriptionPlan};
use crate::project::{decode_status, StatusAnswer};
use crate::{Error, Project, ProjectId, Token};

pub(crate) const EVENT_STREAM: &str = "text/event-stream";
pub(crate) const JSON: &str = "application/json";

/// Error bodies are read up to this size; the rest is not read.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// Status answers are read up to this size (a project's description is a few hundred
/// bytes); a larger one is refused unread.
pub(crate) const MAX_STATUS_ANSWER: usize = 256 * 1024;
/// The part of an unexpected body kept in [`Error::Api`].
const BODY_SNIPPET: usize = 512;

/// The server's answer to a call, as the transport hands it over.
pub(crate) struct Received {
    pub(crate) response: Response,
    /// Requests sent, the first included.
    pub(crate) attempts: u32,
    /// The token of the last request, to keep it out of error texts.
    pub(crate) token: Token,
    /// When the first request was sent.
    pub(crate) sent: Instant,
    /// Whether a failure of this answer may mean that work started on the server.
    pub(crate) may_have_started_work: bool,
    /// Why the token provider could not replace a token the server rejected.
    pub(crate) refresh_error: Option<BoxError>,
    /// The start of the body, already read (to tell what an answer is).
    pub(crate) prefix: Bytes,
    /// When reading this answer's error body must end, when its reading began
    /// already (a 401's, before the token refresh): one budget of time for the
    /// whole body, however many reads share it.
    pub(crate) body_deadline: Option<Instant>,
}

/// The earlier of two optional instants.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the `Content-Type` of `headers` is `wanted` (parameters ignored).
pub(crate) fn is_content_type(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

/// The `Content-Encoding` of an answer when it is not `identity`: the SDK asks for no
/// compression, so such a body cannot be read.
pub(crate) fn unasked_coding(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_ENCODING)?;
    let text = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    (!text.is_empty() && !text.eq_ignore_ascii_case("identity")).then_some(text)
}

/// Whether the start of a body is an event stream (an SSE field or comment, after an
/// optional byte order mark): `None` while too little of it has arrived to tell.
pub(crate) fn looks_like_event_stream(start: &[u8]) -> Option<bool> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    if !start.is_empty() && start.len() < BOM.len() && BOM.starts_with(start) {
        // The first bytes of a byte order mark, the rest still on its way.
        return None;
    }
    let start = start.strip_prefix(BOM).unwrap_or(start);
    let start = start.trim_ascii_start();
    const FIELDS: [&[u8]; 5] = [b":", b"data:", b"event:", b"id:", b"retry:"];
    if FIELDS.iter().any(|field| start.starts_with(field)) {
        return Some(true);
    }
    let undecided = FIELDS
        .iter()
        .any(|field| !start.is_empty() && field.starts_with(start));
    if start.is_empty() || undecided {
        return None;
    }
    Some(false)
}

/// The documented error bodies: `{"status": false, "message": ".."}` and Laravel's
/// `{"message": "..", "errors": {"field": [".."]}}`, read leniently.
#[derive(Default)]
struct ErrorBody {
    /// `"status": false`: the documented shape of the API's own errors.
    status_false: bool,
    message: Option<String>,
    errors: BTreeMap<String, Vec<String>>,
    project_id: Option<ProjectId>,
}

impl ErrorBody {
    fn parse(text: &str) -> Option<ErrorBody> {
        const KEYS: [&str; 4] = ["status", "message", "errors", "project_id"];
        let fields = Fields::read(text, &KEYS).ok()?;
        Some(ErrorBody {
            status_false: fields.get(0).map(RawValue::get) == Some("false"),
            message: fields.get(1).and_then(lenient::text),
            errors: fields.get(2).map(validation_errors).unwrap_or_default(),
            project_id: fields.get(3).and_then(lenient::id),
        })
    }
}

/// Laravel's `errors`: each field with a list of messages (or a single one); what is
/// not text is left out.
fn validation_errors(raw: &RawValue) -> BTreeMap<String, Vec<String>> {
    let Ok(map) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get()) else {
        return BTreeMap::new();
    };
    map.into_iter()
        .map(|(field, value)| {
            let messages = match serde_json::from_str::<Vec<Box<RawValue>>>(value.get()) {
                Ok(list) => list.iter().filter_map(|m| lenient::text(m)).collect(),
                Err(_) => lenient::text(&value).into_iter().collect(),
            };
            (field, messages)
        })
        .collect()
}

/// A non-success (or unexpected) answer, read up to its cap and deadline, the token
/// masked everywhere in it.
pub(crate) struct ErrorAnswer {
    status: u16,
    retry_after: Option<Duration>,
    /// The body as text (lossy), with the token masked however it was spelled.
    body: String,
    parsed: Option<ErrorBody>,
    /// Why the answer is not what the call expected, when its status is a success.
    unexpected: Option<String>,
    attempts: u32,
    may_have_started_work: bool,
    refresh_error: Option<BoxError>,
}

impl ErrorAnswer {
    /// Reads the rest of `answer`'s body, up to [`MAX_ERROR_BODY`] and `deadline`.
    pub(crate) async fn read(answer: Received, deadline: Option<Instant>) -> ErrorAnswer {
        let Received {
            mut response,
            attempts,
            token,
            may_have_started_work,
            refresh_error,
            prefix,
            body_deadline,
            ..
        } = answer;
        let deadline = earliest(body_deadline, deadline);
        let status = response.status().as_u16();
        let headers = response.headers();
        let retry_after = retry_after(headers, SystemTime::now());
        let coding = unasked_coding(headers);
        let mut unexpected = None;
        if (200..300).contains(&status) {
            let kind = headers
                .get(CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            unexpected = Some(match kind {
                Some(kind) => format!("the answer is {kind}, not what the call asked for"),
                None => "the answer has no content type".to_owned(),
            });
        }
        let (body, parsed) = if let Some(coding) = coding {
            let why = format!("the body is compressed (Content-Encoding: {coding}), which the SDK did not ask for");
            unexpected = Some(why.clone());
            (format!("({why})"), None)
        } else {
            let mut bytes = prefix.to_vec();
            // A body cut short by a reset, the cap or the deadline still says what it
            // says so far.
            let _how = read_capped(&mut response, MAX_ERROR_BODY, deadline, &mut bytes).await;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            // A proxy or a debug page may echo the request's headers: the token never
            // goes further than this, in the text or in what JSON decoding makes of it.
            let mut parsed = ErrorBody::parse(&text);
            if let Some(parsed) = &mut parsed {
                redact_body(&token, parsed);
            }
            let mut body = text;
            token.redact(&mut body);
            (body, parsed)
        };
        ErrorAnswer {
            status,
            retry_after,
            body,
            parsed,
            unexpected,
            attempts,
            may_have_started_work,
            refresh_error,
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    /// Whether the body has the API's documented error shape (`"status": false`):
    /// evidence that the API itself answered, not a proxy or a portal.
    pub(crate) fn is_api_error(&self) -> bool {
        self.parsed.as_ref().is_some_and(|p| p.status_false)
    }

    /// The matching [`Error`]; `project_id` is the call's.
    pub(crate) fn into_error(self, project_id: Option<ProjectId>) -> Error {
        let ErrorAnswer {
            status,
            retry_after,
            body,
            parsed,
            unexpected,
            attempts,
            may_have_started_work,
            refresh_error,
        } = self;
        let api_error = parsed.as_ref().is_some_and(|p| p.status_false);
        let parsed = parsed.unwrap_or_default();
        let message = parsed.message;
        let project_id = project_id.or(parsed.project_id);
        let context = ErrorContext::of(project_id, attempts);
        let error = match status {
            401 if message.as_deref().is_some_and(is_expired_message) => Error::TokenExpired {
                locally: false,
                message,
                source: refresh_error,
                context,
            },
            401 => Error::Unauthorized {
                message,
                source: refresh_error,
                context,
            },
            // Only the API's own answer says the project is unknown; a proxy's or a
            // portal's 404 page says nothing about it.
            404 if api_error => Error::NotFound { message, context },
            422 => Error::Validation {
                message: message.unwrap_or_else(|| "the given data was invalid".into()),
                errors: parsed.errors,
                context,
            },
            429 => Error::RateLimited {
                retry_after,
                message,
                context,
            },
            404 => Error::Api {
                status,
                message: Some(message.or(unexpected).unwrap_or_else(|| {
                    "a 404 that is not the API's own answer (no \"status\": false JSON)".into()
                })),
                body: snippet(&body),
                retry_after,
                context,
            },
            _ => Error::Api {
                status,
                message: message.or(unexpected),
                body: snippet(&body),
                retry_after,
                context,
            },
        };
        error.started_work(may_have_started_work)
    }
}

/// Masks the token in what JSON decoding made of an error body.
fn redact_body(token: &Token, body: &mut ErrorBody) {
    if let Some(message) = &mut body.message {
        token.redact(message);
    }
    let errors = std::mem::take(&mut body.errors);
    body.errors = errors
        .into_iter()
        .map(|(mut field, mut messages)| {
            token.redact(&mut field);
            messages.iter_mut().for_each(|m| token.redact(m));
            (field, messages)
        })
        .collect();
}

/// Reads a non-success (or unexpected) answer and turns it into its [`Error`].
pub(crate) async fn error_from_response(
    answer: Received,
    project_id: Option<ProjectId>,
    deadline: Option<Instant>,
) -> Error {
    ErrorAnswer::read(answer, deadline)
        .await
        .into_error(project_id)
}

/// The body of a success answer of a JSON call, read up to [`MAX_STATUS_ANSWER`]
/// (the call's own timeout bounds the time), as text; `what` names the answer in
/// errors.
async fn json_body(answer: Received, what: &'static str) -> Result<String, Error> {
    let attempts = answer.attempts;
    let mut response = answer.response;
    let mut bytes = answer.prefix.to_vec();
    if let Some(coding) = unasked_coding(response.headers()) {
        return Err(not_a_project(
            Some(format!("the body is compressed (Content-Encoding: {coding}), which the SDK did not ask for")),
            String::new(),
            None,
            attempts,
        ));
    }
    match read_capped(&mut response, MAX_STATUS_ANSWER, None, &mut bytes).await {
        Ok(Read::Whole) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(Read::Capped | Read::Stalled) => Err(Error::decode(
            what,
            format!("the answer is larger than {MAX_STATUS_ANSWER} bytes"),
        )),
        Err(error) => Err(Error::from_reqwest(error, TimeoutKind::Request)),
    }
}

/// Reads and decodes the body of a success answer of the status call.
pub(crate) async fn project_from_response(
    answer: Received,
    requested: &ProjectId,
) -> Result<Project, Error> {
    let attempts = answer.attempts;
    let token = answer.token.clone();
    let mut text = json_body(answer, "project status").await?;
    match decode_status(&text, requested) {
        Ok(StatusAnswer::Project(mut project)) => {
            // It may end up in an error (a failed project's): the token never does.
            project.redact_with(|field| token.redact(field));
            Ok(project)
        }
        Ok(StatusAnswer::Refused {
            message,
            project_id,
        }) => {
            token.redact(&mut text);
            let mut message = message;
            if let Some(message) = &mut message {
                token.redact(message);
            }
            Err(not_a_project(message, snippet(&text), project_id, attempts))
        }
        Ok(StatusAnswer::Unexpected(mut why)) => {
            token.redact(&mut text);
            token.redact(&mut why);
            Err(not_a_project(Some(why), snippet(&text), None, attempts))
        }
        Err(e) => Err(Error::decode("project status", e)),
    }
}

/// Reads and decodes the body of a success answer of the plans call: the plans, or
/// an [`Error::Api`] (an answer that is not the documented list, a proxy's page) or
/// [`Error::Decode`] (too large).
pub(crate) async fn plans_from_response(answer: Received) -> Result<Vec<SubscriptionPlan>, Error> {
    let attempts = answer.attempts;
    let token = answer.token.clone();
    let mut text = json_body(answer, "subscription plans").await?;
    match decode_plans(&text) {
        Ok(mut plans) => {
            for plan in &mut plans {
                plan.redact_with(|field| token.redact(field));
            }
            Ok(plans)
        }
        Err(why) => {
            token.redact(&mut text);
            let mut why = format!("not the list of subscription plans: {why}");
            token.redact(&mut why);
            Err(not_a_project(Some(why), snippet(&text), None, attempts))
        }
    }
}

/// A 200 answer that is not what a JSON call asked for (a status answer refused or
/// about another project, a list that is not the plans, a body unreadable as
/// sent): an API error that started no work.
fn not_a_project(
    message: Option<String>,
    body: String,
    project_id: Option<ProjectId>,
    attempts: u32,
) -> Error {
    Error::Api {
        status: 200,
        message,
        body,
        retry_after: None,
        context: ErrorContext::of(project_id, attempts),
    }
}

/// The documented message of an expired token is "API token has expired."; compare
/// loosely so that punctuation or case changes do not turn it into `Unauthorized`.
fn is_expired_message(message: &str) -> bool {
    message.to_ascii_lowercase().contains("expired")
}

/// How a capped read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The body ended.
    Whole,
    /// The cap was reached; the rest was not read.
    Capped,
    /// The deadline passed first.
    Stalled,
}

/// Appends the body of `response` to `into` until it ends, `into` holds `cap` bytes,
/// or `deadline` passes.
pub(crate) async fn read_capped(
    response: &mut Response,
    cap: usize,
    deadline: Option<Instant>,
    into: &mut Vec<u8>,
) -> Result<Read, reqwest::Error> {
    while into.len() < cap {
        let Some(chunk) = next_chunk(response, deadline).await else {
            return Ok(Read::Stalled);
        };
        let Some(chunk) = chunk? else {
            return Ok(Read::Whole);
        };
        let room = cap - into.len();
        into.extend_from_slice(chunk.get(..room).unwrap_or(&chunk));
    }
    Ok(Read::Capped)
}

/// The next chunk of `response`'s body, or `None` when `deadline` passed first.
pub(crate) async fn next_chunk(
    response: &mut Response,
    deadline: Option<Instant>,
) -> Option<reqwest::Result<Option<Bytes>>> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, response.chunk()).await.ok(),
        None => Some(response.chunk().await),
    }
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
    format!("{}…", body.get(..end).unwrap_or_default())
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past means now).
/// Seconds too many for the integer type saturate: "later than we can count" is not
/// "no delay".
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
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
        assert_eq!(retry_after(&headers("-5"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn a_retry_after_too_large_for_the_integer_type_saturates() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            retry_after(&headers("99999999999999999999999999"), now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            retry_after(&headers(&u64::MAX.to_string()), now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn snippet_is_capped_on_a_character_boundary() {
        let long = "é".repeat(400);
        let s = snippet(&long);
        assert!(s.len() <= BODY_SNIPPET + '…'.len_utf8());
        assert!(s.ends_with("é…"));
        assert_eq!(snippet("<html>short</html>"), "<html>short</html>");
    }

    #[test]
    fn the_start_of_an_event_stream_is_recognized() {
        for yes in [
            &b"data: {}"[..],
            b":ok\n",
            b"\xEF\xBB\xBFdata:",
            b"\n\nevent: x",
            b"retry: 5",
        ] {
            assert_eq!(looks_like_event_stream(yes), Some(true), "{yes:?}");
        }
        for no in [&b"<html>"[..], b"{\"status\":false}", b"date", b"Data:"] {
            assert_eq!(looks_like_event_stream(no), Some(false), "{no:?}");
        }
        for no in [&b"\xEF<"[..], b"\xEF\xBB<", b"\xBB\xBF", b"\xEF\xBB\xBF<"] {
            assert_eq!(looks_like_event_stream(no), Some(false), "{no:?}");
        }
        for unsure in [
            &b""[..],
            b"da",
            b"\xEF",
            b"\xEF\xBB",
            b"\xEF\xBB\xBF",
            b"  ",
            b"ev",
        ] {
            assert_eq!(looks_like_event_stream(unsure), None, "{unsure:?}");
        }
    }

    #[test]
    fn no_start_of_an_event_stream_is_called_something_else_however_little_has_arrived() {
        // A body arrives in pieces of any size: every prefix of a stream's start is
        // undecided or a stream, never "not a stream".
        for stream in [
            &b"\xEF\xBB\xBFdata: {}\n\n"[..],
            b"\xEF\xBB\xBF\r\n: keep-alive\n\n",
            b"\n\nevent: message\ndata: {}\n\n",
            b"  retry: 5\n",
            b"id: 7\ndata: {}\n\n",
        ] {
            for cut in 0..=stream.len() {
                let start = stream.get(..cut).unwrap_or_default();
                assert_ne!(looks_like_event_stream(start), Some(false), "{start:?}");
            }
        }
    }

    #[test]
    fn error_bodies_are_read_leniently() {
        let body = ErrorBody::parse(
            r#"{"message":"bad","message":"worse","errors":{"prompt":["a",1,"b"],"name":"one","x":5},"status":false}"#,
        )
        .unwrap();
        assert!(body.status_false);
        assert_eq!(body.message.as_deref(), Some("worse"));
        assert_eq!(body.errors["prompt"], ["a", "b"]);
        assert_eq!(body.errors["name"], ["one"]);
        assert!(body.errors["x"].is_empty());
        let odd = ErrorBody::parse(r#"{"message":7,"errors":[1]}"#).unwrap();
        assert!(odd.message.is_none() && odd.errors.is_empty() && !odd.status_false);
        assert!(ErrorBody::parse("<html>").is_none());
    }
}
