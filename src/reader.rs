//! Bytes in, typed items out: the SSE decoder plus the event rules of a generation.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use crate::error::ErrorContext;
use crate::event::{decode_event, Decoded};
use crate::sse::{Decoder, Frame};
use crate::{Error, Event, Result};

/// The SSE decoder plus the terminal rules of a generation: everything a
/// [`Generation`](crate::Generation) does but the I/O and the record (the errors it
/// makes get the stream's facts, such as the project id, from the generation).
///
/// The queue it fills holds at most the items of one chunk of input.
#[derive(Debug)]
pub struct EventReader {
    decoder: Decoder,
    /// Input received but not decoded yet: events are decoded one at a time, as
    /// [`EventReader::pop`] asks for them.
    input: Bytes,
    state: State,
}

/// Everything the decoder's callback updates (kept apart from the decoder so both
/// can be borrowed at once).
#[derive(Debug)]
struct State {
    queue: Queue,
    /// A terminal item is queued or was yielded: nothing more is read.
    finished: bool,
}

impl EventReader {
    /// A reader capping one event at `max_event_size` bytes.
    pub fn new(max_event_size: usize) -> Self {
        EventReader {
            decoder: Decoder::new(max_event_size),
            input: Bytes::new(),
            state: State {
                queue: Queue::default(),
                finished: false,
            },
        }
    }

    /// Takes one chunk of the body (copied); its items are then available from
    /// [`EventReader::pop`]. Does nothing once a terminal item was produced. For the
    /// crate's benchmarks, fuzz targets and tests.
    #[cfg(feature = "__internal")]
    pub fn feed(&mut self, data: &[u8]) {
        self.feed_bytes(Bytes::copy_from_slice(data));
    }

    /// Takes one chunk of the body without copying it; its items are then available
    /// from [`EventReader::pop`], decoded as they are popped.
    pub fn feed_bytes(&mut self, data: Bytes) {
        if self.state.finished {
            return;
        }
        self.drain();
        self.input = data;
    }

    /// Decodes up to one event from the input. The input is let go as soon as it is
    /// used up (it may pin the connection's read buffer), or once the stream is over.
    fn decode_next(&mut self) {
        let state = &mut self.state;
        match self
            .decoder
            .feed_until_event(&self.input, &mut |frame| state.on_frame(frame))
        {
            Ok(used) if used < self.input.len() => self.input.advance(used),
            Ok(_) => self.input = Bytes::new(),
            Err(too_large) => {
                self.input = Bytes::new();
                // Bytes after a terminal event do not count: the stream is over.
                if !self.state.finished {
                    self.push_failure(Error::EventTooLarge {
                        limit: too_large.limit,
                        context: ErrorContext::sent(),
                    });
                }
            }
        }
        if self.state.finished {
            self.input = Bytes::new();
        }
    }

    /// Decodes all the input left (before anything is queued after it).
    fn drain(&mut self) {
        while !self.input.is_empty() {
            self.decode_next();
        }
    }

    /// The body ended: produces the last events and, without a terminal event,
    /// [`Error::Incomplete`].
    pub fn end(&mut self) {
        self.drain();
        if self.state.finished {
            return;
        }
        let state = &mut self.state;
        if let Err(too_large) = self.decoder.finish(&mut |frame| state.on_frame(frame)) {
            return self.fail(Error::EventTooLarge {
                limit: too_large.limit,
                context: ErrorContext::sent(),
            });
        }
        if !self.state.finished {
            // The generation counts the events it handed out.
            self.fail(Error::Incomplete {
                events: 0,
                context: ErrorContext::sent(),
            });
        }
    }

    /// Ends the stream with `error` after the items already queued.
    pub fn fail(&mut self, error: Error) {
        self.drain();
        self.push_failure(error);
    }

    fn push_failure(&mut self, error: Error) {
        // Nothing follows a terminal item.
        if self.state.finished {
            return;
        }
        self.state.queue.push_back(Err(error));
        self.state.finished = true;
    }

    /// The next decoded item, if any is waiting.
    pub fn pop(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(item) = self.state.queue.pop_front() {
                return Some(item);
            }
            if self.input.is_empty() {
                return None;
            }
            self.decode_next();
        }
    }

    /// How many items are waiting.
    pub fn queued(&self) -> usize {
        self.state.queue.len()
    }

    /// Whether an item can be had without more input: one is queued, or received
    /// bytes are not decoded yet.
    pub fn has_buffered(&self) -> bool {
        self.state.queue.len() > 0 || !self.input.is_empty()
    }

    /// Whether a terminal item was produced (it may still be waiting in the queue).
    pub fn is_finished(&self) -> bool {
        self.state.finished
    }
}

impl State {
    fn on_frame(&mut self, frame: Frame<'_>) {
        if self.finished || frame.data.trim_ascii().is_empty() {
            return;
        }
        match decode_event(frame.data) {
            Decoded::Event(event) => {
                self.finished = matches!(event, Event::StreamEnd(_));
                self.queue.push_back(Ok(event));
            }
            Decoded::CreditsExhausted(raw) => {
                self.queue.push_back(Err(Error::CreditsExhausted {
                    raw,
                    locally: false,
                    until: None,
                    context: ErrorContext::sent(),
                }));
                self.finished = true;
            }
        }
    }
}

/// A FIFO queue whose first item is held inline: decoding one event at a time, it
/// never allocates; only the rare bursts (an error after the rest of a chunk) spill
/// into the `VecDeque`.
#[derive(Debug, Default)]
struct Queue {
    first: Option<Result<Event>>,
    rest: VecDeque<Result<Event>>,
}

impl Queue {
    fn push_back(&mut self, item: Result<Event>) {
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    fn pop_front(&mut self) -> Option<Result<Event>> {
        self.first.take().or_else(|| self.rest.pop_front())
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}
