//! The response bodies: a fixed one, and the event stream, which renders one event
//! at a time when hyper asks for more (no task, no channel, one event buffered),
//! applies pacing and faults, spends credits and updates the project's status.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde_json::Value;
use tokio::time::Sleep;

use super::fault::FaultPlan;
use super::json;
use super::script::Script;
use super::state::{ProjectStatus, Shared};

/// The largest piece handed to hyper at once.
const MAX_PIECE: usize = 64 * 1024;
/// Padding of oversized events comes from this block, never from a buffer of the
/// full size.
static PAD: [u8; MAX_PIECE] = [b'x'; MAX_PIECE];
/// Appended to a `message` to mark where the invalid byte goes; replaced after
/// serialization.
const INVALID_MARK: char = '\u{E000}';
/// The value of the `padding` field, marking where the padding goes.
const PAD_MARK: &str = "\u{E001}";

/// A response body.
#[derive(Debug)]
pub(crate) enum MockBody {
    /// A complete body (JSON or HTML), sent with a `Content-Length`.
    Full(Option<Bytes>),
    /// An event stream.
    Stream(Box<EventStream>),
}

impl MockBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(bytes.into()))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            MockBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Stream(stream) => stream.poll_next_piece(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Streaming,
    /// `StallBefore`: nothing more is ever written.
    Stalled,
    Ended,
}

/// One part of a rendered event.
#[derive(Debug)]
enum Part {
    Bytes(Bytes),
    /// This many padding bytes, taken from [`PAD`].
    Pad(usize),
}

/// The event stream of one generation or follow-up.
#[derive(Debug)]
pub(crate) struct EventStream {
    shared: Arc<Shared>,
    project_id: String,
    script: Script,
    plan: FaultPlan,
    pacing: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    phase: Phase,
    /// Events started so far.
    sent: usize,
    /// The rest of the event being written.
    out: VecDeque<Part>,
    /// `DropMidEvent`: bytes of the current event still to write before the
    /// connection is torn down.
    cut: Option<usize>,
    /// Return `Pending` once (waking at once) before the next piece, so that hyper
    /// flushes what it has: one write per piece for `ChunkSize`, and everything out
    /// before a torn-down connection.
    flush_first: bool,
    /// The status to record once the current event is fully written.
    on_written: Option<ProjectStatus>,
    /// A terminal event was produced (only the first one sets the status).
    terminal_seen: bool,
    /// The stream ends after the current event (`credits_exhausted`).
    stop_after: bool,
    /// The project's final status was recorded.
    status_recorded: bool,
    invalid_utf8_pending: bool,
    oversized_pending: Option<usize>,
}

impl EventStream {
    pub(crate) fn new(
        shared: Arc<Shared>,
        project_id: String,
        script: Script,
        plan: FaultPlan,
    ) -> Self {
        let pacing = shared.config.pacing;
        EventStream {
            project_id,
            script,
            pacing,
            sleep: None,
            phase: Phase::Streaming,
            sent: 0,
            out: VecDeque::new(),
            cut: None,
            flush_first: false,
            on_written: None,
            terminal_seen: false,
            stop_after: false,
            status_recorded: false,
            invalid_utf8_pending: plan.invalid_utf8,
            oversized_pending: plan.oversized_event,
            plan,
            shared,
        }
    }

    /// Whether the response should close the connection after the body.
    pub(crate) fn closes_connection(&self) -> bool {
        self.plan.drop_after.is_some()
    }

    fn poll_next_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        loop {
            if self.flush_first {
                self.flush_first = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.cut == Some(0) {
                self.out.clear();
                self.finish(ProjectStatus::Failed);
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "mock fault: connection dropped in the middle of an event",
                ))));
            }
            if let Some(piece) = self.take_piece() {
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            match self.phase {
                Phase::Ended => return Poll::Ready(None),
                // Never woken again: the connection stays open and silent until the
                // client or the server closes it.
                Phase::Stalled => return Poll::Pending,
                Phase::Streaming => {}
            }
            let index = self.sent;
            if self.stop_after || self.plan.drop_after == Some(index) {
                self.finish(ProjectStatus::Failed);
                return Poll::Ready(None);
            }
            if self.plan.stall_before == Some(index) {
                self.phase = Phase::Stalled;
                return Poll::Pending;
            }
            if index > 0 && !self.pacing.is_zero() {
                let pacing = self.pacing;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(pacing)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            let Some(event) = self.script.next_event() else {
                self.finish(ProjectStatus::Failed);
                return Poll::Ready(None);
            };
            self.start_event(event);
        }
    }

    /// The next piece of the current event, if any is left.
    fn take_piece(&mut self) -> Option<Bytes> {
        let limit = self
            .plan
            .chunk_size
            .unwrap_or(MAX_PIECE)
            .min(self.cut.unwrap_or(usize::MAX))
            .min(MAX_PIECE);
        let piece = loop {
            match self.out.front_mut()? {
                Part::Bytes(bytes) if bytes.is_empty() => {}
                Part::Pad(0) => {}
                Part::Bytes(bytes) if bytes.len() <= limit => {
                    break std::mem::take(bytes);
                }
                Part::Bytes(bytes) => break bytes.split_to(limit),
                Part::Pad(left) => {
                    let n = (*left).min(limit);
                    *left -= n;
                    break Bytes::from_static(&PAD[..n]);
                }
            }
            self.out.pop_front();
        };
        while matches!(self.out.front(), Some(Part::Bytes(b)) if b.is_empty())
            || matches!(self.out.front(), Some(Part::Pad(0)))
        {
            self.out.pop_front();
        }
        if let Some(cut) = &mut self.cut {
            *cut -= piece.len();
            if *cut == 0 {
                self.flush_first = true;
            }
        } else if self.out.is_empty() {
            if let Some(status) = self.on_written.take() {
                self.finish_status(status);
            }
        }
        if self.plan.chunk_size.is_some() {
            self.flush_first = true;
        }
        Some(piece)
    }

    /// Renders the next event of the script, after spending credits for it.
    fn start_event(&mut self, mut event: Value) {
        let index = self.sent;
        self.sent += 1;
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == "file_created" {
            if self.shared.spend_credit() {
                if let Some(path) = event.get("path").and_then(Value::as_str) {
                    self.shared.add_file(&self.project_id, path);
                }
            } else {
                event = serde_json::json!({
                    "type": "credits_exhausted",
                    "project_id": self.project_id,
                    "message": "Your team has run out of credits.",
                });
                self.stop_after = true;
            }
        }
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let status = match kind {
            "stream_end" => Some(ProjectStatus::Ready),
            "credits_exhausted" => Some(ProjectStatus::CreditsExhausted),
            _ => None,
        };
        if let (Some(status), false) = (status, self.terminal_seen) {
            self.terminal_seen = true;
            self.on_written = Some(status);
        }
        self.render(event);
        if self.plan.drop_mid_event == Some(index) {
            let len: usize = self
                .out
                .iter()
                .map(|part| match part {
                    Part::Bytes(bytes) => bytes.len(),
                    Part::Pad(n) => *n,
                })
                .sum();
            self.cut = Some(len / 2);
            self.on_written = None;
        }
    }

    /// `data: <json>` and a blank line, with the faults that change bytes.
    fn render(&mut self, mut event: Value) {
        let mut invalid_utf8 = false;
        if self.invalid_utf8_pending {
            if let Some(Value::String(message)) = event.get_mut("message") {
                message.push(INVALID_MARK);
                invalid_utf8 = true;
                self.invalid_utf8_pending = false;
            }
        }
        let mut pad_to = None;
        if let Some(size) = self.oversized_pending {
            let is_created = event.get("type").and_then(Value::as_str) == Some("project_created");
            if let (Value::Object(map), false) = (&mut event, is_created) {
                map.insert("padding".into(), Value::String(PAD_MARK.into()));
                pad_to = Some(size);
                self.oversized_pending = None;
            }
        }
        let mut line = b"data: ".to_vec();
        json::write(&event, json::EVENT_KEYS, &mut line);
        if invalid_utf8 {
            replace_last(
                &mut line,
                INVALID_MARK.encode_utf8(&mut [0; 4]).as_bytes(),
                &[0xFF],
            );
        }
        let end: &[u8] = if self.plan.crlf { b"\r\n\r\n" } else { b"\n\n" };
        let mark = PAD_MARK.as_bytes();
        match pad_to.and_then(|size| Some((size, memchr::memmem::rfind(&line, mark)?))) {
            Some((size, at)) => {
                let json_len = line.len() - b"data: ".len() - mark.len();
                let mut suffix = line.split_off(at);
                suffix.drain(..mark.len());
                suffix.extend_from_slice(end);
                self.out.push_back(Part::Bytes(line.into()));
                self.out.push_back(Part::Pad(size.saturating_sub(json_len)));
                self.out.push_back(Part::Bytes(suffix.into()));
            }
            None => {
                line.extend_from_slice(end);
                self.out.push_back(Part::Bytes(line.into()));
            }
        }
    }

    /// The stream is over: records `status` unless a terminal event already did.
    fn finish(&mut self, status: ProjectStatus) {
        self.phase = Phase::Ended;
        self.finish_status(status);
    }

    fn finish_status(&mut self, status: ProjectStatus) {
        if !self.status_recorded {
            self.status_recorded = true;
            self.shared.set_status(&self.project_id, status);
        }
    }
}

impl Drop for EventStream {
    /// A stream dropped before its terminal event was written (the client went away,
    /// or the server stopped) leaves the project `failed`.
    fn drop(&mut self) {
        self.finish_status(ProjectStatus::Failed);
    }
}

/// Replaces the last occurrence of `from` in `bytes` with `to`.
fn replace_last(bytes: &mut Vec<u8>, from: &[u8], to: &[u8]) {
    if let Some(at) = memchr::memmem::rfind(bytes, from) {
        bytes.splice(at..at + from.len(), to.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_last_swaps_only_the_last_occurrence() {
        let mut bytes = b"a-b-c".to_vec();
        replace_last(&mut bytes, b"-", &[0xFF]);
        assert_eq!(bytes, b"a-b\xFFc");
    }
}
