//! Scripted misbehaviour: faults inside a stream ([`Fault`]) and canned answers in
//! place of the normal handling ([`Reply`]).

use std::time::Duration;

/// A fault injected into the next event stream with
/// [`MockServer::fault_next`](super::MockServer::fault_next) (or several at once with
/// [`MockServer::faults_next`](super::MockServer::faults_next)).
///
/// Events are counted from 0 in the order the stream sends them. Faults that name an
/// event beyond the end of the stream have no effect. Together they place a crash
/// or a hang anywhere: before the first byte ([`DelayHeaders`](Fault::DelayHeaders),
/// or [`Reply::hang`]), after `project_created` (`StallBefore(1)`), mid-stream
/// (`StallBefore(n)`, `DelayBefore(n, ..)`), inside an event (`DropMidEvent(n)`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> laracopilot::Result<()> {
/// use laracopilot_mock::{Fault, MockServer};
/// use laracopilot::Error;
///
/// let server = MockServer::start();
/// server.fault_next(Fault::DropAfter(3));
/// let generation = server.client().generate("Build a task management app").await?;
/// let error = generation.finish().await.unwrap_err();
/// assert!(matches!(error, Error::Incomplete { events: 3, .. }));
/// assert!(error.project_id().is_some());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// Sends events `0..n`, then writes nothing more while keeping the connection
    /// open (a hung server). The project stays `generating` until the client goes
    /// away (it is then `failed`: a hung generation never finishes) or the server
    /// stops.
    StallBefore(usize),
    /// Waits this long before event `n` (on top of any pacing), then goes on: a
    /// quiet gap in the middle of a stream.
    DelayBefore(usize, Duration),
    /// Sends events `0..n`, then writes nothing more, the connection open, until
    /// the test lets it go on with
    /// [`MockServer::release_held`](super::MockServer::release_held) (naming its
    /// project); then it goes on as if nothing happened. A hold is a pause the test
    /// ends, not a fault of the generation: a client that goes away meanwhile leaves
    /// it to [`OnClientDrop`](super::OnClientDrop), as anywhere else. With a hold
    /// before the terminal event, a test can act at the moment a client has read
    /// everything but the end (and then see the end written: the stream's
    /// [`closed_at`](super::StreamRecord::closed_at)).
    HoldBefore(usize),
    /// Accepts the request (the project exists, `generating`), then waits this long
    /// before sending the response headers: the client has sent its POST and seen
    /// no byte yet.
    DelayHeaders(Duration),
    /// Sends events `0..n`, then ends the response cleanly and closes the
    /// connection: the stream ends without its terminal event, which the SDK
    /// reports as [`Error::Incomplete`](laracopilot::Error::Incomplete).
    DropAfter(usize),
    /// Sends events `0..n` and the first half of event `n`, then tears the
    /// connection down without ending the response (a broken network): the SDK
    /// reports a [`Error::Transport`](laracopilot::Error::Transport).
    DropMidEvent(usize),
    /// Writes the stream in pieces of `k` bytes (0 counts as 1), each one flushed on
    /// its own; the client may still read several pieces at once.
    ChunkSize(usize),
    /// Ends lines with CRLF (`\r\n`) instead of LF.
    Crlf,
    /// Puts one invalid UTF-8 byte (`0xFF`) at the end of the first `"message"`
    /// string of the first event that has one. The JSON stays well-formed apart from
    /// that byte.
    InvalidUtf8,
    /// Pads the first event that is a JSON object, other than `project_created`,
    /// with a last field `"padding": "xxx…"` so that its JSON text is this many bytes
    /// long (an event already longer gets an empty padding). The padding is written
    /// piece by piece, never buffered whole.
    OversizedEvent(usize),
    /// Writes the text as a line of its own, then a blank line, right before event
    /// `n` (after any pacing or delay): what a proxy or a future server might put in
    /// a stream, such as `data: ping`, `data: [DONE]`, `: keep-alive`, `event: x`, or
    /// `data: {"type":"file_created","path":7}`. The SDK reads a `data` line it
    /// cannot make sense of as an `Event::Malformed` and goes on. Several may be
    /// queued for one stream; they are written in order.
    RawLineBefore(usize, String),
}

/// A canned answer given instead of the normal handling, for the next requests
/// (any endpoint, once the request has been read), with
/// [`MockServer::reply_next`](super::MockServer::reply_next).
///
/// Build one with its constructor functions (the variants may gain fields).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> laracopilot::Result<()> {
/// use std::time::Duration;
/// use laracopilot_mock::{MockServer, Reply};
///
/// let server = MockServer::start();
/// // One attempt per call, so that the reply is seen as it is (not retried).
/// let client = server
///     .client_builder()
///     .retry_policy(laracopilot::RetryPolicy::none())
///     .build()?;
/// server.reply_next(1, Reply::rate_limited(Some(7)));
/// let error = client.generate("Build a task management app").await.unwrap_err();
/// assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
///
/// // A gateway's 503 after a long wait: the server may have started the work.
/// server.reply_next(1, Reply::delayed(Duration::from_millis(50), Reply::unavailable()));
/// assert_eq!(client.generate("Build a task management app").await.unwrap_err().status(), Some(503));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reply {
    /// Laravel's throttle answer; from [`Reply::rate_limited`].
    #[non_exhaustive]
    RateLimited {
        /// The `Retry-After` value in seconds, if any.
        retry_after: Option<u64>,
    },
    /// Laravel's maintenance mode; from [`Reply::unavailable`].
    Unavailable,
    /// An HTML error page; from [`Reply::server_error_html`].
    ServerErrorHtml,
    /// Any status with this body; from [`Reply::status`].
    #[non_exhaustive]
    Status(u16, String),
    /// No answer at all; from [`Reply::hang`].
    Hang,
    /// A status, its headers and the start of a body, then nothing more; from
    /// [`Reply::stalled_body`].
    #[non_exhaustive]
    StalledBody {
        /// The status sent.
        status: u16,
        /// The part of the body sent before the stall.
        partial: String,
    },
    /// Another reply, after a delay; from [`Reply::delayed`].
    #[non_exhaustive]
    Delayed {
        /// How long the server waits before answering.
        delay: Duration,
        /// The answer it then gives.
        reply: Box<Reply>,
    },
}

impl Reply {
    /// 429 `{"message": "Too Many Attempts."}` (Laravel's throttle answer), with
    /// `Retry-After: <seconds>` when given.
    pub fn rate_limited(retry_after: Option<u64>) -> Reply {
        Reply::RateLimited { retry_after }
    }

    /// 503 `{"message": "Service Unavailable"}` (Laravel's maintenance mode), at
    /// once: a refusal that came back before the server could have accepted the work.
    pub fn unavailable() -> Reply {
        Reply::Unavailable
    }

    /// 500 with an HTML error page, as a proxy or Laravel without a JSON `Accept`
    /// would answer.
    pub fn server_error_html() -> Reply {
        Reply::ServerErrorHtml
    }

    /// `status` with `body`: sent as `application/json` when it parses as JSON, as
    /// `text/plain` otherwise. A status outside 100..=999 is sent as 500.
    pub fn status(status: u16, body: impl Into<String>) -> Reply {
        Reply::Status(status, body.into())
    }

    /// Reads the request, then sends nothing and keeps the connection open until the
    /// client goes away or the server stops: the client has sent its request and
    /// never sees a byte of an answer.
    pub fn hang() -> Reply {
        Reply::Hang
    }

    /// `status` (as `application/json`) and its headers, then `partial`, the start of
    /// a body, and then nothing: the connection stays open, the body never ends, until
    /// the client goes away or the server stops. A status outside 100..=999 is sent as
    /// 500. What a client's request timeout must bound, and what it may keep of the
    /// body it read.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use laracopilot_mock::{MockServer, Reply};
    ///
    /// let server = MockServer::start();
    /// let client = server
    ///     .client_builder()
    ///     .request_timeout(Duration::from_millis(200))
    ///     .retry_policy(laracopilot::RetryPolicy::none())
    ///     .build()?;
    /// server.reply_next(1, Reply::stalled_body(500, r#"{"message": "Server Er"#));
    /// let error = client.project("p1").await.unwrap_err();
    /// assert_eq!(error.status(), Some(500));
    /// assert!(matches!(&error, laracopilot::Error::Api { body, .. } if body.contains("Server Er")));
    /// # Ok(()) }
    /// ```
    pub fn stalled_body(status: u16, partial: impl Into<String>) -> Reply {
        Reply::StalledBody {
            status,
            partial: partial.into(),
        }
    }

    /// `reply` after `delay`, e.g. a gateway's 503 after many seconds
    /// (`Reply::delayed(Duration::from_secs(60), Reply::unavailable())`). The wait
    /// ends early if the server stops.
    pub fn delayed(delay: Duration, reply: Reply) -> Reply {
        Reply::Delayed {
            delay,
            reply: Box::new(reply),
        }
    }
}

/// The faults of one stream, resolved from a list of [`Fault`]s (a later fault of
/// the same kind replaces an earlier one).
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultPlan {
    pub(crate) stall_before: Option<usize>,
    pub(crate) delay_before: Option<(usize, Duration)>,
    pub(crate) hold_before: Option<usize>,
    pub(crate) delay_headers: Duration,
    pub(crate) drop_after: Option<usize>,
    pub(crate) drop_mid_event: Option<usize>,
    pub(crate) chunk_size: Option<usize>,
    pub(crate) crlf: bool,
    pub(crate) invalid_utf8: bool,
    pub(crate) oversized_event: Option<usize>,
    pub(crate) raw_lines: Vec<(usize, String)>,
}

impl FaultPlan {
    pub(crate) fn new(faults: &[Fault]) -> Self {
        let mut plan = FaultPlan::default();
        for fault in faults {
            if let Fault::RawLineBefore(n, line) = fault {
                plan.raw_lines.push((*n, line.clone()));
                continue;
            }
            match *fault {
                Fault::StallBefore(n) => plan.stall_before = Some(n),
                Fault::DelayBefore(n, delay) => plan.delay_before = Some((n, delay)),
                Fault::HoldBefore(n) => plan.hold_before = Some(n),
                Fault::DelayHeaders(delay) => plan.delay_headers = delay,
                Fault::DropAfter(n) => plan.drop_after = Some(n),
                Fault::DropMidEvent(n) => plan.drop_mid_event = Some(n),
                Fault::ChunkSize(k) => plan.chunk_size = Some(k.max(1)),
                Fault::Crlf => plan.crlf = true,
                Fault::InvalidUtf8 => plan.invalid_utf8 = true,
                Fault::OversizedEvent(bytes) => plan.oversized_event = Some(bytes),
                Fault::RawLineBefore(..) => {}
            }
        }
        plan
    }
}
