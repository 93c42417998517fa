//! Replaying a cassette: each request is answered from the tape, matched by method,
//! path and body in recorded order; the body goes out in its recorded chunks (each
//! its own HTTP/1.1 chunk, flushed), paced as recorded times a factor. A request that
//! is not on the tape gets a loud 501 and is kept for the test to see.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::time::{Instant, Sleep};

use super::routes::{self, MAX_REQUEST_BODY, PREFIX};
use super::state::{RecordedRequest, Shared};
use laracopilot::cassette::{self, Cassette, Chunk, End, Ending, Exchange};

/// The status of an answer to a request that is not on the tape: a 5xx (the SDK
/// reports it as [`Error::Api`](laracopilot::Error::Api)), distinct from any 500 a real
/// server may have put on the tape.
pub const UNMATCHED_STATUS: u16 = 501;

/// At most this many unmatched requests are kept (the oldest dropped first).
const MAX_UNMATCHED: usize = 1_000;

/// Headers of the tape that describe its connection's framing, not the answer: the
/// replay sends every body chunked.
const FRAMING: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// A request that matched nothing on the tape, from
/// [`MockServer::unmatched`](super::MockServer::unmatched).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unmatched {
    /// The request as received (the path with its `/api/v1` prefix), the token
    /// masked.
    pub request: RecordedRequest,
    /// What the tape expected next: the first exchange not yet replayed, or `None`
    /// when every exchange was.
    pub expected: Option<cassette::Request>,
}

/// A body as a test's message shows it: text (lossy), at most 200 characters.
fn shown_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

impl fmt::Display for Unmatched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let request = &self.request;
        write!(f, "replay: {} {}", request.method, request.path)?;
        if !request.body.is_empty() {
            write!(f, " {}", shown_body(request.body.as_bytes()))?;
        }
        f.write_str(" is not on the tape; ")?;
        match &self.expected {
            Some(expected) => {
                write!(
                    f,
                    "next on the tape: {} {PREFIX}{}",
                    expected.method, expected.path
                )?;
                if !expected.body.is_empty() {
                    write!(f, " {}", shown_body(&expected.body))?;
                }
                Ok(())
            }
            None => f.write_str("every exchange on the tape was replayed"),
        }
    }
}

/// The tape being replayed.
pub(crate) struct Replay {
    pacing: f64,
    state: Mutex<State>,
}

struct State {
    exchanges: Vec<Exchange>,
    played: Vec<bool>,
    unmatched: VecDeque<Unmatched>,
}

impl Replay {
    /// Replays `cassette` with its times multiplied by `pacing` (0: at once).
    pub(crate) fn new(cassette: Cassette, pacing: f64) -> Self {
        let exchanges = cassette.exchanges().to_vec();
        // A request that never reached the server is not the server's to answer.
        let played = exchanges
            .iter()
            .map(|e| e.end.as_ref().is_some_and(|end| end.how == Ending::Unsent))
            .collect();
        Replay {
            pacing,
            state: Mutex::new(State {
                played,
                exchanges,
                unmatched: VecDeque::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The requests that matched nothing, oldest first.
    pub(crate) fn unmatched(&self) -> Vec<Unmatched> {
        self.state().unmatched.iter().cloned().collect()
    }

    /// How many exchanges of the tape were not replayed yet.
    pub(crate) fn unplayed(&self) -> usize {
        self.state()
            .played
            .iter()
            .filter(|played| !**played)
            .count()
    }

    /// The first exchange not yet replayed with this method, path (relative to the
    /// API's prefix) and body, now marked as replayed; or the mismatch, kept.
    fn take(
        &self,
        request: RecordedRequest,
        path: Option<&str>,
        body: &[u8],
    ) -> Result<Exchange, Box<Unmatched>> {
        let mut state = self.state();
        let State {
            exchanges,
            played,
            unmatched,
        } = &mut *state;
        let found = exchanges.iter().zip(played.iter()).position(|(e, played)| {
            !played
                && e.request.method.eq_ignore_ascii_case(&request.method)
                && Some(e.request.path.as_str()) == path
                && same_body(&e.request.body, body)
        });
        if let Some((exchange, played)) =
            found.and_then(|i| exchanges.get(i).zip(played.get_mut(i)))
        {
            *played = true;
            return Ok(exchange.clone());
        }
        let expected = exchanges
            .iter()
            .zip(played.iter())
            .find(|(_, played)| !**played)
            .map(|(e, _)| e.request.clone());
        let mismatch = Unmatched { request, expected };
        if unmatched.len() >= MAX_UNMATCHED {
            unmatched.pop_front();
        }
        unmatched.push_back(mismatch.clone());
        Err(Box::new(mismatch))
    }
}

/// The same body: the same bytes, or the same JSON value (so that a request written
/// by hand with other spacing still matches).
fn same_body(recorded: &[u8], received: &[u8]) -> bool {
    if recorded == received {
        return true;
    }
    match (
        serde_json::from_slice::<Value>(recorded),
        serde_json::from_slice::<Value>(received),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Serves one request from the tape. An `Err` closes the connection without an
/// answer (an exchange that got none).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    replay: Arc<Replay>,
    request: Request<Incoming>,
) -> Result<Response<ReplayBody>, io::Error> {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let limited = Limited::new(body, MAX_REQUEST_BODY).collect();
    let body = match tokio::time::timeout(shared.config.read_timeout, limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            let message = "The request body is too large (or could not be read).";
            return Ok(json_answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({ "message": message }),
            ));
        }
        Err(_) => {
            let message = "The request body did not arrive in time.";
            return Ok(json_answer(
                StatusCode::REQUEST_TIMEOUT,
                &json!({ "message": message }),
            ));
        }
    };
    let recorded = routes::recorded(&parts, &body);
    shared.record(recorded.clone());
    let path = parts
        .uri
        .path()
        .strip_prefix(PREFIX)
        .filter(|rest| rest.starts_with('/'));
    match replay.take(recorded, path, &body) {
        Ok(exchange) => play(exchange, arrived, replay.pacing).await,
        Err(unmatched) => Ok(mismatch(&unmatched)),
    }
}

/// The 501 naming what was asked and what the tape expected.
fn mismatch(unmatched: &Unmatched) -> Response<ReplayBody> {
    let asked = &unmatched.request;
    let expected = unmatched.expected.as_ref().map(|e| {
        json!({
            "method": e.method,
            "path": format!("{PREFIX}{}", e.path),
            "body": String::from_utf8_lossy(&e.body),
        })
    });
    let status = StatusCode::from_u16(UNMATCHED_STATUS).unwrap_or(StatusCode::NOT_IMPLEMENTED);
    json_answer(
        status,
        &json!({
            "message": unmatched.to_string(),
            "asked": { "method": asked.method, "path": asked.path, "body": asked.body },
            "expected": expected,
        }),
    )
}

fn json_answer(status: StatusCode, body: &Value) -> Response<ReplayBody> {
    let chunk = Chunk::new(Duration::ZERO, Bytes::from(body.to_string()));
    let end = Some((Duration::ZERO, Ending::Complete));
    let mut answer = Response::new(ReplayBody::new(vec![chunk], end, Instant::now(), 0.0));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}

/// Answers with the recorded exchange, on its schedule.
async fn play(
    exchange: Exchange,
    arrived: Instant,
    pacing: f64,
) -> Result<Response<ReplayBody>, io::Error> {
    let Some(answer) = exchange.answer else {
        // No answer was recorded: the connection broke, or the client gave up.
        return match exchange.end {
            Some(End {
                how: Ending::Reset,
                at,
                ..
            }) => {
                wait_until(arrived, at, pacing).await;
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "replay: the recorded request got no answer",
                ))
            }
            _ => std::future::pending().await,
        };
    };
    wait_until(arrived, answer.at, pacing).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let end = exchange.end.map(|end| (end.at, end.how));
    let mut response = Response::new(ReplayBody::new(exchange.chunks, end, arrived, pacing));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        if FRAMING.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    Ok(response)
}

/// `at` on the tape, scaled by `pacing`.
fn scaled(at: Duration, pacing: f64) -> Duration {
    Duration::try_from_secs_f64(at.as_secs_f64() * pacing).unwrap_or(Duration::MAX)
}

async fn wait_until(arrived: Instant, at: Duration, pacing: f64) {
    let offset = scaled(at, pacing);
    if offset.is_zero() {
        return;
    }
    match arrived.checked_add(offset) {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        // `sleep` clamps a duration too long for the clock.
        None => tokio::time::sleep(offset).await,
    }
}

/// A recorded body on its schedule, each chunk its own frame, flushed before the
/// next one is due, then its recorded end.
pub(crate) struct ReplayBody {
    chunks: VecDeque<Chunk>,
    end: Option<(Duration, Ending)>,
    arrived: Instant,
    pacing: f64,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Return `Pending` once (waking at once) so that hyper writes out the chunk
    /// just handed over before the next: one write per recorded chunk.
    flush_first: bool,
    finished: bool,
}

impl ReplayBody {
    fn new(
        chunks: Vec<Chunk>,
        end: Option<(Duration, Ending)>,
        arrived: Instant,
        pacing: f64,
    ) -> Self {
        ReplayBody {
            chunks: chunks.into(),
            end,
            arrived,
            pacing,
            sleep: None,
            flush_first: false,
            finished: false,
        }
    }

    /// Ready once `at` (scaled) has come.
    fn due(&mut self, at: Duration, cx: &mut Context<'_>) -> Poll<()> {
        let offset = scaled(at, self.pacing);
        if offset.is_zero() {
            return Poll::Ready(());
        }
        let sleep = match &mut self.sleep {
            Some(sleep) => sleep,
            None => {
                let Some(deadline) = self.arrived.checked_add(offset) else {
                    return Poll::Pending;
                };
                if deadline <= Instant::now() {
                    return Poll::Ready(());
                }
                self.sleep
                    .insert(Box::pin(tokio::time::sleep_until(deadline)))
            }
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sleep = None;
        Poll::Ready(())
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            if this.flush_first {
                this.flush_first = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let at = match (this.chunks.front(), this.end) {
                (Some(chunk), _) => chunk.at,
                (None, Some((at, _))) => at,
                (None, None) => Duration::ZERO,
            };
            if this.due(at, cx).is_pending() {
                return Poll::Pending;
            }
            if let Some(chunk) = this.chunks.pop_front() {
                if chunk.data.is_empty() {
                    continue;
                }
                this.flush_first = true;
                return Poll::Ready(Some(Ok(Frame::data(chunk.data))));
            }
            return match this.end {
                Some((_, Ending::Complete)) => {
                    this.finished = true;
                    Poll::Ready(None)
                }
                // The recorded client stopped reading here (the SDK does after a
                // terminal event): what came after is not on the tape, so the body
                // ends here.
                Some((_, Ending::Dropped)) => {
                    this.finished = true;
                    Poll::Ready(None)
                }
                // Never woken again: the connection stays open and silent until the
                // client or the server closes it.
                Some((_, Ending::Stalled)) => Poll::Pending,
                // Reset, or cut off by the end of the recording (a crash): the
                // connection breaks.
                _ => {
                    this.finished = true;
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "replay: the tape ends here without the body's end",
                    ))))
                }
            };
        }
    }
}
