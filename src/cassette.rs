//! Cassettes: a client's real exchanges with LaraCopilot, recorded once and replayed
//! exactly, as often as needed (feature `record`; replaying is `MockServer::replay`
//! of the [`laracopilot-mock`](https://docs.rs/laracopilot-mock) crate).
//!
//! Record one real session (a real token, real credits spent once), commit the
//! file, and replay it in CI for ever: the server's own chunk boundaries, its pacing,
//! its headers, the token masked, and a loud failure when the code under test asks
//! for something that is not on the tape.
//!
//! ```no_run
//! # async fn run() -> laracopilot::Result<()> {
//! // Once, with a real token: every exchange of this client goes on the tape.
//! let client = laracopilot::Client::builder()
//!     .from_env()
//!     .record_to("tests/cassettes/task-app.cassette")
//!     .build()?;
//! client.generate("Build a task management app").await?.finish().await?;
//! # Ok(()) }
//! ```
//!
//! Then in a test (with `laracopilot-mock` as a dev-dependency), with no token and no
//! network:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile_dir();
//! # let path = dir.join("task-app.cassette");
//! # record_a_session(&path)?;
//! use laracopilot::cassette::Cassette;
//! use laracopilot_mock::{CassetteExt, MockServer};
//!
//! let tape = Cassette::load(&path)?;
//! let server = MockServer::replay(tape.clone());
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # runtime.block_on(async {
//! let outcome = server.client().generate("Build a task management app").await?.finish().await?;
//! assert!(outcome.files.iter().any(|f| f == "app/Models/Task.php"));
//!
//! // The same tape, broken after its fifth event: the typed error, with the project id.
//! let broken = MockServer::replay(tape.cut_after(5));
//! let error = broken.client().generate("Build a task management app").await?.finish().await.unwrap_err();
//! assert!(matches!(error, laracopilot::Error::Incomplete { .. }) && error.project_id().is_some());
//! # Ok::<(), laracopilot::Error>(()) })?;
//! assert!(server.unmatched().is_empty());
//! # std::fs::remove_dir_all(dir)?;
//! # Ok(()) }
//! # fn tempfile_dir() -> std::path::PathBuf {
//! #     let dir = std::env::temp_dir().join(format!("laracopilot-doc-{}", std::process::id()));
//! #     std::fs::create_dir_all(&dir).unwrap();
//! #     dir
//! # }
//! # fn record_a_session(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! #     let live = laracopilot_mock::MockServer::start();
//! #     let client = live.client_builder().record_to(path).build()?;
//! #     let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! #     runtime.block_on(async { client.generate("Build a task management app").await?.finish().await })?;
//! #     Ok(())
//! # }
//! ```
//!
//! # The format (version 1)
//!
//! A cassette is a text file of JSON objects, one per line (readable, diffable, easy
//! to edit by hand). The first line names the format and its version; every other
//! line belongs to one exchange (a request and its answer), named by `"x"`, so that
//! concurrent streams recorded into one file stay apart; an exchange's lines keep
//! their order. `"t"` is the time in milliseconds since the request was sent.
//!
//! ```text
//! {"cassette":1,"recorder":"laracopilot-rust/0.1.0"}
//! {"x":1,"request":{"method":"POST","path":"/agent/generate","headers":{"accept":"text/event-stream","authorization":"Bearer ****9f8e","content-type":"application/json","user-agent":"laracopilot-rust/0.1.0"},"body":"{\"prompt\":\"Build a task management app\"}"}}
//! {"x":1,"t":41.2,"status":200,"headers":[["content-type","text/event-stream"],["cache-control","no-cache"]]}
//! {"x":1,"t":41.9,"data":"data: {\"type\":\"project_created\",\"project_id\":\"p1\",\"app_url\":\"https://p1.laracopilot.com\"}\n\n"}
//! {"x":1,"t":102.3,"b64":"ZGF0YTogeyJ0eXBlIjoiY29udGFpbmVyX3Byb2dyZXNzIiwibWVzc2FnZSI6Ikluc3RhbGHD"}
//! {"x":1,"t":2043.0,"end":"complete"}
//! ```
//!
//! | line | fields |
//! |---|---|
//! | header (first line) | `cassette`: the format version (1); `recorder`: who wrote it |
//! | request | `x`; `request`: `method`, `path` (relative to the base URL, so `/agent/generate`), `headers` (`accept`, `content-type`, `user-agent`, and `authorization` as the token's mask, `Bearer ****9f8e`), `body` (text) or `body_b64` |
//! | answer head | `x`, `t`, `status`, `headers` (name and value pairs, in order) |
//! | body chunk | `x`, `t`, and `data` (the bytes as text, when they are valid UTF-8) or `b64` (standard base64, when not: a chunk may end inside a character) |
//! | end | `x`, `t`, `end`: `complete` (the body ended), `reset` (the connection broke, or no answer came; `error` says why), `dropped` (the client stopped reading first, as the SDK does after a terminal event), `stalled` (only in the mock crate's fault variants: nothing more is sent, the connection stays open), `unsent` (the connection could not be made: the request never reached the server); `omitted` when the body's bytes are not on the tape (a compressed body) |
//!
//! A replay ends each body as its end line says: `complete` and `dropped` end it
//! cleanly, `reset` breaks the connection, `stalled` keeps it open and silent. An
//! exchange without an end line was cut off by the end of the recording (a crash): its
//! replay breaks the connection after the last chunk. An exchange without a head line
//! got no answer: its replay breaks the connection (`reset`) or never answers; one
//! that was `unsent` is skipped (the client's resend is answered by the next one).
//! Framing headers (`content-length`, `transfer-encoding`, `connection`,
//! `keep-alive`) are not kept: a replay sends every body chunked. Unknown fields are
//! ignored, so later versions of this crate may add some; another `cassette` version
//! is refused.
//!
//! Size: a tape is its bodies JSON-escaped (quotes cost two bytes) plus about 26 bytes
//! per chunk line and a few hundred per exchange. The offline LaraCopilot's default
//! new-project stream ("Build a task management app": 34 events in 34 chunks, a
//! 3,316-byte body) makes a 5,247-byte cassette, 1.6 times its body; a real
//! generation's tape grows with its events the same way.
//!
//! # Secrets
//!
//! The token never reaches the file. `Authorization` is written as the token's mask
//! (the dashboard's `****` and its last four characters), and wherever the server
//! echoes the token (in a header, a body, an error page), every spelling the SDK
//! promises to mask is replaced by the mask (the same redactor as for errors: plain,
//! JSON-escaped, percent-encoded once or twice, HTML character references, hex, and
//! base64 standard or URL-safe at any alignment and wrapped at any width; see the
//! README's list), also when the body's chunks split it; a prefix of 12 characters
//! or more of any of these spellings (a truncated echo) is masked too. `Set-Cookie`
//! values are written as `name=****`. A compressed body (`Content-Encoding: gzip`,
//! ...), inside which no spelling can be found, is not stored: its end line says so
//! (`"omitted"`), and a replay serves its head with an empty body (the SDK refuses
//! a compressed answer anyway, naming the coding).
//!
//! # Crash safety
//!
//! Each line is written with one write as its chunk passes by (no buffering of a
//! body; the caller waits for that write only, about 2 µs a chunk with the masking
//! of the token; no `fsync`):
//! a process killed mid-stream leaves a cassette that [`Cassette::load`] reads up to
//! the last complete line, and a torn last line is reported by
//! [`Cassette::torn_line`], not an error. The one chunk that may wait is one whose
//! last bytes could begin a spelling of the token: it is written once the next chunk
//! shows whether they do, or when the body ends.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

mod record;
mod wire;

pub(crate) use record::{relative_path, Outgoing, Recorder};

/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// A recorded session: exchanges of requests and answers, in the order their
/// requests were sent. See the [module documentation](self) for the file format.
///
/// Load one with [`Cassette::load`], replay it with
/// `MockServer::replay` of the [`laracopilot-mock`](https://docs.rs/laracopilot-mock)
/// crate, and turn it into its faulty variants there (`CassetteExt`: `cut_after`,
/// `reset_after`, `stall_before`, `crlf`, `chunk_size`, `rate_limited`,
/// `unavailable`, `revoked`, `expired`) to test every failure on real traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cassette {
    exchanges: Vec<Exchange>,
    recorder: Option<String>,
    torn_line: Option<usize>,
}

/// One request and its answer, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exchange {
    /// The exchange's id in the file (`"x"`), unique within the cassette.
    pub id: u64,
    /// The request as sent, the token masked.
    pub request: Request,
    /// The answer's status and headers; `None` when no answer came (the connection
    /// failed, or the client gave up waiting).
    pub answer: Option<Answer>,
    /// The body as it arrived, chunk by chunk.
    pub chunks: Vec<Chunk>,
    /// How the exchange ended; `None` when the recording stopped first (a crash).
    pub end: Option<End>,
}

/// A recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path relative to the base URL, e.g. `/agent/generate`.
    pub path: String,
    /// The headers that matter (`accept`, `authorization` masked, `content-type`,
    /// `user-agent`), by lowercase name, sorted.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Bytes,
}

/// The head of a recorded answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answer {
    /// When the head arrived, since the request was sent.
    pub at: Duration,
    /// The HTTP status.
    pub status: u16,
    /// The headers in the order received, by lowercase name (framing headers left
    /// out).
    pub headers: Vec<(String, String)>,
}

/// A piece of a body, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Chunk {
    /// When it arrived, since the request was sent.
    pub at: Duration,
    /// Its bytes.
    pub data: Bytes,
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct End {
    /// When, since the request was sent.
    pub at: Duration,
    /// How.
    pub how: Ending,
    /// What the client's HTTP stack said, for [`Ending::Reset`] and
    /// [`Ending::Unsent`].
    pub error: Option<String>,
    /// Why the body's bytes are not on the tape: a compressed body (the token could
    /// not be masked inside it) is recorded as its head only.
    pub omitted: Option<String>,
}

/// The ways an exchange ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ending {
    /// The body ended normally.
    Complete,
    /// The connection broke (or no answer came at all).
    Reset,
    /// The client stopped reading before the end (it dropped the stream).
    Dropped,
    /// Nothing more comes, and the connection stays open (fault variants only).
    Stalled,
    /// The request never reached the server: the connection could not be made (the
    /// SDK may then have sent it again). A replay skips it: the server it stands for
    /// never saw it.
    Unsent,
}

impl Ending {
    /// The name in the file: `complete`, `reset`, `dropped`, `stalled` or `unsent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Complete => "complete",
            Ending::Reset => "reset",
            Ending::Dropped => "dropped",
            Ending::Stalled => "stalled",
            Ending::Unsent => "unsent",
        }
    }

    fn parse(text: &str) -> Option<Ending> {
        [
            Ending::Complete,
            Ending::Reset,
            Ending::Dropped,
            Ending::Stalled,
            Ending::Unsent,
        ]
        .into_iter()
        .find(|e| e.as_str() == text)
    }
}

/// Why a cassette could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CassetteError {
    /// The file could not be read or written.
    #[error("cannot access the cassette {}", path.display())]
    #[non_exhaustive]
    Io {
        /// The cassette's path.
        path: PathBuf,
        /// The error of the operating system.
        #[source]
        source: io::Error,
    },
    /// A line is not what the format says (a torn last line is not an error: see
    /// [`Cassette::torn_line`]).
    #[error("line {line} of the cassette: {message}")]
    #[non_exhaustive]
    Line {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file is a cassette of another format version.
    #[error("the cassette has format version {found}; this crate reads version {FORMAT_VERSION}")]
    #[non_exhaustive]
    Version {
        /// The version the file names.
        found: u64,
    },
}

impl Exchange {
    /// The whole body, its chunks joined.
    pub fn body(&self) -> Vec<u8> {
        self.chunks
            .iter()
            .flat_map(|c| c.data.iter().copied())
            .collect()
    }

    /// Whether the answer is an event stream (a 2xx `text/event-stream`): a generate
    /// or follow-up stream.
    pub fn is_event_stream(&self) -> bool {
        self.answer.as_ref().is_some_and(|answer| {
            (200..300).contains(&answer.status)
                && answer.header("content-type").is_some_and(|v| {
                    v.split(';')
                        .next()
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
                })
        })
    }

    /// How many server-sent events the body holds (blocks of `data` lines ended by
    /// a blank line), for an event stream; 0 otherwise.
    pub fn events(&self) -> usize {
        self.event_ends().len()
    }

    /// Where each server-sent event of the body ends, for an event stream (empty
    /// otherwise): the offset just after the blank line that dispatches it. Lines end
    /// in LF, CRLF or CR; a block without a `data` line that holds something (a
    /// comment, a keep-alive) is not an event. For cutting a tape at an event.
    pub fn event_ends(&self) -> Vec<usize> {
        if self.is_event_stream() {
            event_ends(&self.body())
        } else {
            Vec::new()
        }
    }
}

/// Where each server-sent event of `body` ends (see [`Exchange::event_ends`]).
fn event_ends(body: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut has_data = false;
    let mut line_start = 0;
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        if byte != b'\n' && byte != b'\r' {
            at += 1;
            continue;
        }
        let line = body.get(line_start..at).unwrap_or_default();
        let next = if byte == b'\r' && body.get(at + 1) == Some(&b'\n') {
            at + 2
        } else {
            at + 1
        };
        if line.is_empty() {
            if has_data {
                ends.push(next);
            }
            has_data = false;
        } else if let Some(rest) = line.strip_prefix(b"data") {
            // The field is `data` only when the name ends there.
            if let Some(value) = rest.strip_prefix(b":") {
                has_data |= !value.trim_ascii().is_empty();
            }
        }
        line_start = next;
        at = next;
    }
    ends
}

impl Chunk {
    /// A chunk of `data` that arrived `at` after the request was sent.
    pub fn new(at: Duration, data: Bytes) -> Self {
        Chunk { at, data }
    }
}

impl Answer {
    /// An answer head with `status` and `headers` (lowercase names), arrived `at`.
    pub fn new(at: Duration, status: u16, headers: Vec<(String, String)>) -> Self {
        Answer {
            at,
            status,
            headers,
        }
    }
}

impl End {
    /// An end `how` at `at`, with the client's `error` for a reset or an unsent
    /// request.
    pub fn new(at: Duration, how: Ending, error: Option<String>) -> Self {
        End {
            at,
            how,
            error,
            omitted: None,
        }
    }
}

impl Answer {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

impl fmt::Display for Request {
    /// `METHOD path`, and the body (its first 200 characters) when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.body.is_empty() {
            write!(f, " {}", shown_body(&self.body))?;
        }
        Ok(())
    }
}

/// A body as a test's message shows it: text (lossy), at most 200 characters.
pub(crate) fn shown_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Cassette {
    /// Reads a cassette file. A torn last line (the recording was killed while
    /// writing it) is left out and reported by [`torn_line`](Cassette::torn_line);
    /// everything before it is read.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let path = std::env::temp_dir().join(format!("laracopilot-load-{}.cassette", std::process::id()));
    /// # std::fs::write(&path, "{\"cassette\":1}\n{\"x\":1,\"request\":{\"method\":\"GET\",\"path\":\"/agent/project/p1\"}}\n{\"x\":1,\"t\":5,\"sta")?;
    /// let cassette = laracopilot::cassette::Cassette::load(&path)?;
    /// assert_eq!(cassette.len(), 1);
    /// assert_eq!(cassette.torn_line(), Some(3));
    /// # std::fs::remove_file(&path)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`CassetteError::Io`] when the file cannot be read; [`CassetteError::Line`]
    /// for a complete line that is not what the format says (the first line must be
    /// the header); [`CassetteError::Version`] for another format version.
    pub fn load(path: impl AsRef<Path>) -> Result<Cassette, CassetteError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| CassetteError::Io {
            path: path.to_owned(),
            source,
        })?;
        Cassette::parse(&bytes)
    }

    /// Reads a cassette from its bytes, as [`load`](Cassette::load) does.
    ///
    /// # Errors
    ///
    /// As [`load`](Cassette::load), without `Io`.
    pub fn parse(bytes: &[u8]) -> Result<Cassette, CassetteError> {
        wire::parse(bytes)
    }

    /// Writes the cassette to `path` (through a temporary file beside it, renamed
    /// into place): the header, then each exchange's lines together, in order.
    ///
    /// # Errors
    ///
    /// [`CassetteError::Io`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CassetteError> {
        let path = path.as_ref();
        let io_error = |source| CassetteError::Io {
            path: path.to_owned(),
            source,
        };
        let name = path.file_name().ok_or_else(|| {
            io_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path names no file",
            ))
        })?;
        let mut temporary = name.to_owned();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = path.with_file_name(temporary);
        std::fs::write(&temporary, self.to_vec()).map_err(io_error)?;
        std::fs::rename(&temporary, path).map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            io_error(e)
        })
    }

    /// The cassette in its file format.
    pub fn to_vec(&self) -> Vec<u8> {
        wire::write(self)
    }

    /// The exchanges, in the order their requests were sent.
    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    /// The exchanges, to edit in place (a variant of your own).
    pub fn exchanges_mut(&mut self) -> &mut [Exchange] {
        &mut self.exchanges
    }

    /// Inserts `exchange` at position `index` (at the end when `index` is past it);
    /// give it an id of its own ([`next_exchange_id`](Cassette::next_exchange_id)).
    pub fn insert_exchange(&mut self, index: usize, exchange: Exchange) {
        let index = index.min(self.exchanges.len());
        self.exchanges.insert(index, exchange);
    }

    /// An exchange id that no exchange of the cassette has yet.
    pub fn next_exchange_id(&self) -> u64 {
        self.exchanges
            .iter()
            .map(|e| e.id)
            .max()
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// The exchange with id `id`.
    pub fn exchange(&self, id: u64) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| e.id == id)
    }

    /// How many exchanges the cassette holds.
    pub fn len(&self) -> usize {
        self.exchanges.len()
    }

    /// Whether the cassette holds no exchange.
    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty()
    }

    /// The server-sent events of every event stream on the tape, counted over the
    /// streams in order: the numbering the fault variants use.
    pub fn events(&self) -> usize {
        self.exchanges.iter().map(Exchange::events).sum()
    }

    /// The number (from 1) of a torn last line that [`load`](Cassette::load) left
    /// out: the recording was killed while writing it.
    pub fn torn_line(&self) -> Option<usize> {
        self.torn_line
    }

    /// Who wrote the cassette (`laracopilot-rust/<version>` for this crate), from
    /// its header.
    pub fn recorder(&self) -> Option<&str> {
        self.recorder.as_deref()
    }
}

/// Builds a cassette from parsed parts (the wire module's result).
fn assemble(
    exchanges: Vec<Exchange>,
    recorder: Option<String>,
    torn_line: Option<usize>,
) -> Cassette {
    Cassette {
        exchanges,
        recorder,
        torn_line,
    }
}

/// Exchanges by id, for the parser.
type Index = HashMap<u64, usize>;
