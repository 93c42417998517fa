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
use http_body_util::Either;
use tokio::time::Sleep;

use super::fault::FaultPlan;
use super::script::{Kind, Script, ScriptEvent, Wire};
use super::state::{OnClientDrop, ProjectStatus, Shared};
use super::traffic::StreamTicket;

/// The largest piece handed to hyper at once.
const MAX_PIECE: usize = 64 * 1024;
/// Padding of oversized events comes from this block, never from a buffer of the
/// full size.
static PAD: [u8; MAX_PIECE] = [b'x'; MAX_PIECE];

/// A response body: a fixed one (JSON or HTML), or an event stream.
pub(crate) type MockBody = Either<Fixed, EventStream>;

/// A fixed body: sent whole with its `Content-Length`, or, for
/// [`Reply::stalled_body`](super::Reply::stalled_body), its first part and then
/// nothing ever again (no length announced: chunked over HTTP/1.1).
pub(crate) struct Fixed {
    data: Option<Bytes>,
    stalls: bool,
}

impl Fixed {
    /// The whole body.
    pub(crate) fn whole(data: Bytes) -> Fixed {
        Fixed {
            data: Some(data),
            stalls: false,
        }
    }

    /// `partial`, then a body that never ends.
    pub(crate) fn stalled(partial: Bytes) -> Fixed {
        Fixed {
            data: Some(partial).filter(|data| !data.is_empty()),
            stalls: true,
        }
    }
}

impl Body for Fixed {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match this.data.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            // Never woken: the connection task is dropped when the client goes or the
            // server stops.
            None if this.stalls => Poll::Pending,
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.stalls && self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.stalls {
            return SizeHint::default();
        }
        // What is left to send: all of it, then nothing.
        let left = self.data.as_ref().map_or(0, Bytes::len);
        SizeHint::with_exact(u64::try_from(left).unwrap_or(u64::MAX))
    }
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.get_mut().poll_piece(cx)
    }
}

/// One part of a rendered event.
enum Part {
    Bytes(Bytes),
    /// This many padding bytes, taken from [`PAD`].
    Pad(usize),
}

impl Part {
    fn len(&self) -> usize {
        match self {
            Part::Bytes(bytes) => bytes.len(),
            Part::Pad(n) => *n,
        }
    }
}

/// The event stream of one generation or follow-up.
pub(crate) struct EventStream {
    shared: Arc<Shared>,
    project_id: String,
    script: Script,
    plan: FaultPlan,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The stream is over: nothing more to write.
    ended: bool,
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
    /// The stream ends after the current event (`credits_exhausted`).
    stop_after: bool,
    /// The project's final status was recorded.
    status_recorded: bool,
    /// `HoldBefore`: completes once the stream may go on.
    hold: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The stream's place in the server's traffic log: taken (recording the close)
    /// when the body ends, or dropped with the stream.
    ticket: Option<StreamTicket>,
}

impl EventStream {
    pub(crate) fn new(
        shared: Arc<Shared>,
        project_id: String,
        script: Script,
        plan: FaultPlan,
        ticket: StreamTicket,
    ) -> Self {
        EventStream {
            shared,
            project_id,
            script,
            plan,
            sleep: None,
            ended: false,
            sent: 0,
            out: VecDeque::new(),
            cut: None,
            flush_first: false,
            on_written: None,
            stop_after: false,
            status_recorded: false,
            hold: None,
            ticket: Some(ticket),
        }
    }

    /// Records in the traffic log that the stream closed (once): `complete` when its
    /// terminal event, or the end a fault chose, was written.
    fn close(&mut self, complete: bool) {
        if let Some(mut ticket) = self.ticket.take() {
            if complete {
                ticket.complete();
            }
        }
    }

    /// Whether the response should close the connection after the body.
    pub(crate) fn closes_connection(&self) -> bool {
        self.plan.drop_after.is_some()
    }

    /// How long to wait before sending the response headers.
    pub(crate) fn delay_headers(&self) -> Duration {
        self.plan.delay_headers
    }

    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        loop {
            if self.flush_first {
                self.flush_first = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.cut == Some(0) {
                self.out.clear();
                self.finish(ProjectStatus::Failed);
                self.close(false);
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "mock fault: connection dropped in the middle of an event",
                ))));
            }
            if let Some(piece) = self.take_piece() {
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            if self.ended {
                self.close(true);
                return Poll::Ready(None);
            }
            let index = self.sent;
            if self.stop_after || self.plan.drop_after == Some(index) {
                self.finish(ProjectStatus::Failed);
                self.close(true);
                return Poll::Ready(None);
            }
            if self.plan.stall_before == Some(index) {
                // Never woken again: the connection stays open and silent until the
                // client or the server closes it.
                return Poll::Pending;
            }
            if self.plan.hold_before == Some(index) {
                let (shared, id) = (&self.shared, &self.project_id);
                let hold = self.hold.get_or_insert_with(|| Box::pin(shared.held(id)));
                if hold.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.hold = None;
                self.plan.hold_before = None;
            }
            let mut wait = match index {
                0 => Duration::ZERO,
                _ => self.shared.config.pacing,
            };
            if let Some((_, delay)) = self.plan.delay_before.filter(|(n, _)| *n == index) {
                wait = wait.saturating_add(delay);
            }
            if !wait.is_zero() {
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            let Some(event) = self.script.next_event() else {
                self.finish(ProjectStatus::Failed);
                self.close(true);
                return Poll::Ready(None);
            };
            self.start_event(event);
        }
    }

    /// The next piece of the current event, if any is left.
    fn take_piece(&mut self) -> Option<Bytes> {
        while self.out.front().is_some_and(|part| part.len() == 0) {
            self.out.pop_front();
        }
        let limit = self
            .plan
            .chunk_size
            .unwrap_or(MAX_PIECE)
            .min(MAX_PIECE)
            .min(self.cut.unwrap_or(usize::MAX));
        let piece = match self.out.front_mut()? {
            Part::Bytes(bytes) => bytes.split_to(limit.min(bytes.len())),
            Part::Pad(left) => {
                let n = (*left).min(limit);
                *left -= n;
                Bytes::from_static(PAD.get(..n).unwrap_or_default())
            }
        };
        while self.out.front().is_some_and(|part| part.len() == 0) {
            self.out.pop_front();
        }
        if let Some(cut) = &mut self.cut {
            *cut -= piece.len();
            self.flush_first |= *cut == 0;
        } else if self.out.is_empty() {
            if let Some(status) = self.on_written.take() {
                self.finish_status(status);
                // The generation is over once its terminal event is out, whether
                // or not its client reads on to the body's end.
                self.close(true);
            }
        }
        self.flush_first |= self.plan.chunk_size.is_some();
        Some(piece)
    }

    /// Renders the next event of the script, after spending a credit for it.
    fn start_event(&mut self, mut event: ScriptEvent) {
        let index = self.sent;
        self.sent += 1;
        let end: &[u8] = if self.plan.crlf { b"\r\n\r\n" } else { b"\n\n" };
        for (_, line) in self.plan.raw_lines.iter().filter(|(n, _)| *n == index) {
            let mut bytes = line.clone().into_bytes();
            bytes.extend_from_slice(end);
            self.out.push_back(Part::Bytes(bytes.into()));
        }
        if let Kind::File(path) = &event.kind {
            if !self.shared.spend_credit() {
                event = ScriptEvent::wire(&Wire::CreditsExhausted {
                    project_id: &self.project_id,
                    message: "Your team has run out of credits.",
                });
                self.stop_after = true;
            } else if let Some(path) = path {
                self.shared.add_file(&self.project_id, path);
            }
        }
        if let Kind::Terminal(status) = event.kind {
            // Only the first terminal event written sets the status.
            self.on_written = Some(status);
        }
        self.render(event);
        if self.plan.drop_mid_event == Some(index) {
            self.cut = Some(self.out.iter().map(Part::len).sum::<usize>() / 2);
            self.on_written = None;
        }
    }

    /// `data: <json>` and a blank line, with the faults that change bytes.
    fn render(&mut self, event: ScriptEvent) {
        let mut line = b"data: ".to_vec();
        line.extend_from_slice(&event.json);
        if self.plan.invalid_utf8 {
            if let Some(at) = message_end(&line) {
                line.insert(at, 0xFF);
                self.plan.invalid_utf8 = false;
            }
        }
        let end: &[u8] = if self.plan.crlf { b"\r\n\r\n" } else { b"\n\n" };
        let is_object = event.json.first() == Some(&b'{') && line.last() == Some(&b'}');
        let padded = !matches!(event.kind, Kind::ProjectCreated(..)) && is_object;
        match self.plan.oversized_event.filter(|_| padded) {
            Some(size) => {
                self.plan.oversized_event = None;
                line.pop();
                let field: &[u8] = if event.json.len() > 2 {
                    b",\"padding\":\""
                } else {
                    b"\"padding\":\""
                };
                line.extend_from_slice(field);
                // `data: `, the JSON so far, then the padding and `"}`.
                let json_len = line.len() - b"data: ".len() + 2;
                let mut tail = b"\"}".to_vec();
                tail.extend_from_slice(end);
                self.out.push_back(Part::Bytes(line.into()));
                self.out.push_back(Part::Pad(size.saturating_sub(json_len)));
                self.out.push_back(Part::Bytes(tail.into()));
            }
            None => {
                line.extend_from_slice(end);
                self.out.push_back(Part::Bytes(line.into()));
            }
        }
    }

    /// The stream is over: records `status` unless a terminal event already did.
    fn finish(&mut self, status: ProjectStatus) {
        self.ended = true;
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
    /// or the server stopped) finishes as [`OnClientDrop`] says.
    fn drop(&mut self) {
        if self.status_recorded {
            return;
        }
        match self.shared.config.on_client_drop {
            OnClientDrop::Fail => self.finish_status(ProjectStatus::Failed),
            OnClientDrop::Finish => self.finish_unread(),
        }
    }
}

impl EventStream {
    /// Runs the rest of the script as if the client were still reading, without
    /// writing anything: files are recorded and credits spent as they would have
    /// been, and the project takes the status its stream would have left, a fault
    /// ahead included.
    fn finish_unread(&mut self) {
        if self.cut.is_some() {
            // Tearing the connection down in the middle of an event.
            return self.finish_status(ProjectStatus::Failed);
        }
        if let Some(status) = self.on_written.take() {
            // The terminal event was being written.
            return self.finish_status(status);
        }
        // Each turn takes one event of a finite script: the loop ends.
        loop {
            let index = self.sent;
            let faulted = self.stop_after
                || self.plan.drop_after == Some(index)
                || self.plan.stall_before == Some(index);
            let Some(event) = self.script.next_event().filter(|_| !faulted) else {
                return self.finish_status(ProjectStatus::Failed);
            };
            self.sent += 1;
            let mut status = match event.kind {
                Kind::Terminal(status) => Some(status),
                _ => None,
            };
            if let Kind::File(path) = &event.kind {
                if !self.shared.spend_credit() {
                    status = Some(ProjectStatus::CreditsExhausted);
                } else if let Some(path) = path {
                    self.shared.add_file(&self.project_id, path);
                }
            }
            if self.plan.drop_mid_event == Some(index) {
                return self.finish_status(ProjectStatus::Failed);
            }
            if let Some(status) = status {
                return self.finish_status(status);
            }
        }
    }
}

/// Where the value of the first `"message"` string in `json` ends (its closing
/// quote). In JSON text a quote inside a string is always escaped, so `"message":"`
/// matches only a key.
fn message_end(json: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"message\":\"";
    let start = memchr::memmem::find(json, KEY)? + KEY.len();
    let mut escaped = false;
    for (i, &byte) in json.iter().enumerate().skip(start) {
        match byte {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}
