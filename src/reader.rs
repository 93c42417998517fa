//! Bytes in, typed items out: the SSE decoder plus the event rules of a generation.

use std::collections::VecDeque;

use crate::event::{decode_event, Decoded};
use crate::sse::{Decoder, Frame};
use crate::{Error, Event, ProjectId, Result};

/// The SSE decoder plus the event rules of a generation (terminal events, project id
/// tracking): everything a [`Generation`](crate::Generation) does but the I/O.
///
/// The queue it fills holds at most the items of one chunk of input.
#[derive(Debug)]
pub struct EventReader {
    decoder: Decoder,
    state: State,
}

/// Everything the decoder's callback updates (kept apart from the decoder so both
/// can be borrowed at once).
#[derive(Debug)]
struct State {
    queue: VecDeque<Result<Event>>,
    project_id: Option<ProjectId>,
    events: u64,
    bytes: u64,
    /// A terminal item is queued or was yielded: nothing more is read.
    finished: bool,
}

impl EventReader {
    /// A reader capping one event at `max_event_size` bytes; `project_id` is the id
    /// known before the stream starts (a follow-up's).
    pub fn new(max_event_size: usize, project_id: Option<ProjectId>) -> Self {
        EventReader {
            decoder: Decoder::new(max_event_size),
            state: State {
                queue: VecDeque::new(),
                project_id,
                events: 0,
                bytes: 0,
                finished: false,
            },
        }
    }

    /// Decodes one chunk of the body; its items are then available from
    /// [`EventReader::pop`]. Does nothing once a terminal item was produced.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state.finished {
            return;
        }
        self.state.bytes += data.len() as u64;
        let state = &mut self.state;
        let decoded = self.decoder.feed(data, &mut |frame| state.on_frame(frame));
        // Bytes after a terminal event in the same chunk do not count: the stream is
        // over, whatever they hold.
        if let (Err(too_large), false) = (decoded, self.state.finished) {
            self.fail(Error::EventTooLarge {
                limit: too_large.limit,
                project_id: None,
            });
        }
    }

    /// The body ended: produces the last events and, without a terminal event,
    /// [`Error::Incomplete`].
    pub fn end(&mut self) {
        if self.state.finished {
            return;
        }
        let state = &mut self.state;
        if let Err(too_large) = self.decoder.finish(&mut |frame| state.on_frame(frame)) {
            return self.fail(Error::EventTooLarge {
                limit: too_large.limit,
                project_id: None,
            });
        }
        if !self.state.finished {
            let events = self.state.events;
            self.fail(Error::Incomplete {
                project_id: None,
                events,
            });
        }
    }

    /// Ends the stream with `error` after the items already queued.
    pub fn fail(&mut self, error: Error) {
        let error = error.with_project_id(self.state.project_id.as_ref());
        self.state.queue.push_back(Err(error));
        self.state.finished = true;
    }

    /// The next decoded item, if any is waiting.
    pub fn pop(&mut self) -> Option<Result<Event>> {
        self.state.queue.pop_front()
    }

    /// How many items are waiting.
    pub fn queued(&self) -> usize {
        self.state.queue.len()
    }

    /// Whether a terminal item was produced (it may still be waiting in the queue).
    pub fn is_finished(&self) -> bool {
        self.state.finished
    }

    /// The project id, once known.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.state.project_id.as_ref()
    }

    /// Events decoded so far.
    pub fn events(&self) -> u64 {
        self.state.events
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.state.bytes
    }
}

impl State {
    fn on_frame(&mut self, frame: Frame<'_>) {
        if self.finished || frame.data.trim_ascii().is_empty() {
            return;
        }
        match decode_event(frame.data) {
            Ok(Decoded::Event(event)) => {
                self.events += 1;
                match &event {
                    Event::ProjectCreated(created) => {
                        self.project_id = Some(created.project_id.clone())
                    }
                    Event::StreamEnd(end) => {
                        if let Some(id) = &end.project_id {
                            self.project_id = Some(id.clone());
                        }
                        self.finished = true;
                    }
                    _ => {}
                }
                self.queue.push_back(Ok(event));
            }
            Ok(Decoded::CreditsExhausted(raw)) => {
                self.queue.push_back(Err(Error::CreditsExhausted {
                    project_id: self.project_id.clone(),
                    raw,
                }));
                self.finished = true;
            }
            Err(e) => self.queue.push_back(Err(
                Error::decode("event", e).with_project_id(self.project_id.as_ref())
            )),
        }
    }
}
