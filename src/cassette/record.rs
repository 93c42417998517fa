//! Recording: the transport tells the recorder about each request it sends, and the
//! answer's body passes through a tee that writes each chunk's line as it goes by.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};
use reqwest::ResponseBuilderExt as _;
use url::Url;

use super::wire::{self, ChunkLine, EndLine, HeadLine, RequestLine, WireRequest};
use super::Ending;
use crate::redact::ChunkRedactor;
use crate::Token;

/// Who writes the cassettes of this crate.
pub(super) const RECORDER: &str = concat!("laracopilot-rust/", env!("CARGO_PKG_VERSION"));

/// Answer headers that describe the framing of one connection, not the answer: a
/// replay frames its bodies itself.
const FRAMING: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// The cassettes open in this process, so that clients recording to the same file at
/// the same time share it (one writer, one sequence of exchange ids).
static OPEN: Mutex<Vec<(PathBuf, Weak<Tape>)>> = Mutex::new(Vec::new());

/// Records a client's exchanges into one cassette file. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Recorder {
    tape: Arc<Tape>,
}

/// The open file.
struct Tape {
    path: PathBuf,
    /// `None` once a write failed: the rest of the recording is dropped rather than
    /// interleaved with a torn line.
    file: Mutex<Option<File>>,
    next_id: AtomicU64,
}

/// A request as the transport is about to send it.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: &'a str,
    /// The path relative to the base URL ([`relative_path`]).
    pub(crate) path: String,
    pub(crate) accept: &'a str,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) user_agent: &'a HeaderValue,
    pub(crate) body: Option<&'a [u8]>,
}

/// The path of `url` under `base`'s path (`/agent/generate`); the whole path when
/// it is not under it.
pub(crate) fn relative_path(base: &Url, url: &Url) -> String {
    let prefix = base.path().trim_end_matches('/');
    let path = url.path();
    match path.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => path.to_owned(),
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.tape.path)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// The recorder of the cassette at `path`: the one already open in this process,
    /// or a new file (created, or truncated) starting with the header line.
    pub(crate) fn open(path: &Path) -> io::Result<Recorder> {
        let key = key(path)?;
        let mut open = lock(&OPEN);
        open.retain(|(_, tape)| tape.strong_count() > 0);
        if let Some(tape) = open
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, tape)| tape.upgrade())
        {
            return Ok(Recorder { tape });
        }
        let mut file = File::create(path)?;
        file.write_all(&wire::header(RECORDER))?;
        let tape = Arc::new(Tape {
            path: path.to_owned(),
            file: Mutex::new(Some(file)),
            next_id: AtomicU64::new(1),
        });
        open.push((key, Arc::downgrade(&tape)));
        Ok(Recorder { tape })
    }

    /// Writes the request's line; the returned recording follows its answer.
    pub(crate) fn start(&self, request: Outgoing<'_>, token: &Token) -> Recording {
        let id = self.tape.next_id.fetch_add(1, Ordering::Relaxed);
        let redactor = token.redactor();
        let mut headers = vec![
            ("accept".to_owned(), request.accept.to_owned()),
            (
                "authorization".to_owned(),
                format!("Bearer {}", token.masked()),
            ),
            (
                "user-agent".to_owned(),
                redactor.text(&String::from_utf8_lossy(request.user_agent.as_bytes())),
            ),
        ];
        if let Some(kind) = request.content_type {
            headers.push(("content-type".to_owned(), kind.to_owned()));
        }
        headers.sort();
        let body = redactor.bytes(request.body.unwrap_or_default());
        let path = redactor.text(&request.path);
        let request = WireRequest::new(request.method, &path, &headers, &body);
        self.tape.write(&RequestLine { x: id, request });
        Recording {
            tape: Arc::clone(&self.tape),
            id,
            started: Instant::now(),
            token: token.clone(),
            body: ChunkRedactor::default(),
            compressed: None,
            ended: false,
        }
    }
}

/// The key of a cassette path: its directory resolved, and its file name.
fn key(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Ok(std::fs::canonicalize(directory)?.join(name))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tape {
    /// Appends one line with one write; after a failure, writes nothing more.
    fn write(&self, value: &impl serde::Serialize) {
        let Some(line) = wire::line(value) else {
            return;
        };
        let mut file = lock(&self.file);
        if let Some(open) = file.as_mut() {
            if let Err(_error) = open.write_all(&line) {
                *file = None;
                tracing::warn!(
                    path = %self.path.display(),
                    error = %_error,
                    "laracopilot cassette: a write failed, the recording stops here"
                );
            }
        }
    }
}

/// One exchange being recorded. Dropped before its end (the caller dropped the
/// stream, or the request was given up), it records that.
pub(crate) struct Recording {
    tape: Arc<Tape>,
    id: u64,
    started: Instant,
    /// The token of the request, whose redactor masks what goes on the tape.
    token: Token,
    body: ChunkRedactor,
    /// The answer's body is compressed (`Content-Encoding`, named here): the token
    /// could not be found inside it, so its bytes are not stored.
    compressed: Option<String>,
    ended: bool,
}

impl Recording {
    /// Records the answer's head, and hands back the answer with its body passing
    /// through the tape.
    pub(crate) fn tee(mut self, response: reqwest::Response) -> reqwest::Response {
        self.answered(response.status().as_u16(), response.headers());
        let url = response.url().clone();
        let response: http::Response<reqwest::Body> = response.into();
        let (mut parts, body) = response.into_parts();
        // The conversion keeps everything but the URL.
        if let Ok(with_url) = http::Response::builder().url(url).body(()) {
            parts.extensions.extend(with_url.into_parts().0.extensions);
        }
        let body = reqwest::Body::wrap(Tee {
            inner: body,
            recording: self,
        });
        reqwest::Response::from(http::Response::from_parts(parts, body))
    }

    /// No answer came: the request failed with `error`.
    pub(crate) fn failed(mut self, error: &reqwest::Error) {
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        let why = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            cause.to_string()
        };
        let how = if error.is_connect() {
            Ending::Unsent
        } else {
            Ending::Reset
        };
        self.end(how, Some(why));
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn answered(&mut self, status: u16, headers: &HeaderMap) {
        self.compressed = crate::answer::unasked_coding(headers).map(|coding| {
            format!("a compressed body ({coding}) is not stored: the token could not be masked inside it")
        });
        let redactor = self.token.redactor();
        let headers: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| !FRAMING.contains(&name.as_str()))
            .map(|(name, value)| {
                let text = String::from_utf8_lossy(value.as_bytes());
                let text = if name == SET_COOKIE {
                    masked_cookie(&text)
                } else {
                    redactor.text(&text)
                };
                (name.as_str().to_owned(), text)
            })
            .collect();
        let t = wire::millis(self.elapsed());
        let x = self.id;
        self.tape.write(&HeadLine {
            x,
            t,
            status,
            headers: &headers,
        });
    }

    fn chunk(&mut self, data: &[u8]) {
        if self.compressed.is_some() {
            return;
        }
        let at = self.elapsed();
        let ready = self.body.push(self.token.redactor(), at, data);
        self.write_chunks(ready);
    }

    fn write_chunks(&self, chunks: Vec<(Duration, Vec<u8>)>) {
        for (at, data) in chunks.iter().filter(|(_, data)| !data.is_empty()) {
            self.tape.write(&ChunkLine::new(self.id, *at, data));
        }
    }

    fn end(&mut self, how: Ending, error: Option<String>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let held = self.body.finish(self.token.redactor());
        self.write_chunks(held);
        let error = error.map(|e| self.token.redactor().text(&e));
        self.tape.write(&EndLine {
            x: self.id,
            t: wire::millis(self.elapsed()),
            end: how.as_str(),
            error: error.as_deref(),
            omitted: self.compressed.as_deref(),
        });
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.end(Ending::Dropped, None);
    }
}

/// `name=****` and the cookie's attributes: a session cookie is a secret too.
fn masked_cookie(value: &str) -> String {
    let (pair, attributes) = match value.split_once(';') {
        Some((pair, attributes)) => (pair, Some(attributes)),
        None => (value, None),
    };
    let name = pair.split_once('=').map_or(pair, |(name, _)| name).trim();
    match attributes {
        Some(attributes) => format!("{name}=****;{attributes}"),
        None => format!("{name}=****"),
    }
}

/// An answer's body on its way to the caller, each chunk recorded as it passes.
struct Tee {
    inner: reqwest::Body,
    recording: Recording,
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.recording.chunk(data);
                }
                if this.inner.is_end_stream() {
                    this.recording.end(Ending::Complete, None);
                }
            }
            Poll::Ready(Some(Err(error))) => {
                let why = format!("the body broke off: {error}");
                this.recording.end(Ending::Reset, Some(why));
            }
            Poll::Ready(None) => this.recording.end(Ending::Complete, None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_kept_relative_to_the_base_url() {
        let url = |s: &str| Url::parse(s).unwrap();
        let base = url("https://builder.laracopilot.com/api/v1");
        assert_eq!(
            relative_path(
                &base,
                &url("https://builder.laracopilot.com/api/v1/agent/generate")
            ),
            "/agent/generate"
        );
        let slash = url("http://127.0.0.1:1/api/v1/");
        assert_eq!(
            relative_path(&slash, &url("http://127.0.0.1:1/api/v1/agent/project/p1")),
            "/agent/project/p1"
        );
        let root = url("http://127.0.0.1:1/");
        assert_eq!(
            relative_path(&root, &url("http://127.0.0.1:1/agent/generate")),
            "/agent/generate"
        );
        assert_eq!(
            relative_path(&base, &url("https://builder.laracopilot.com/api/v10/x")),
            "/api/v10/x"
        );
    }

    #[test]
    fn cookie_values_are_masked_and_attributes_kept() {
        assert_eq!(
            masked_cookie("laravel_session=abc123; path=/; httponly"),
            "laravel_session=****; path=/; httponly"
        );
        assert_eq!(masked_cookie("XSRF-TOKEN=x"), "XSRF-TOKEN=****");
    }
}
