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

    /// Decodes up to one event from the input into `slot` (which is empty; an item
    /// that cannot go there, and a failure, are queued after it). The input is let
    /// go as soon as it is used up (it may pin the connection's read buffer), or
    /// once the stream is over.
    fn decode_next(&mut self, slot: &mut Option<Result<Event>>) {
        let state = &mut self.state;
        match self
            .decoder
            .feed_until_event(&self.input, &mut |frame| state.on_frame(frame, slot))
        {
            Ok(used) if used < self.input.len() => self.input.advance(used),
            Ok(_) => self.input = Bytes::new(),
            Err(too_large) => {
                self.input = Bytes::new();
                // Bytes after a terminal event do not count: the stream is over.
                if !self.state.finished {
                    if let Some(item) = slot.take() {
                        self.state.queue.push_back(item);
                    }
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
            let mut slot = None;
            self.decode_next(&mut slot);
            if let Some(item) = slot {
                self.state.queue.push_back(item);
            }
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
        let mut slot = None;
        let finished = self
            .decoder
            .finish(&mut |frame| state.on_frame(frame, &mut slot));
        if let Some(item) = slot {
            self.state.queue.push_back(item);
        }
        if let Err(too_large) = finished {
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
            // Decoded into this frame's slot, not into the reader: an open stream
            // keeps no room for an item between two calls.
            let mut slot = None;
            self.decode_next(&mut slot);
            if slot.is_some() {
                return slot;
            }
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
    /// Takes one frame: its item goes into `slot` when it is empty, else after the
    /// queued ones.
    fn on_frame(&mut self, frame: Frame<'_>, slot: &mut Option<Result<Event>>) {
        if self.finished || frame.data.trim_ascii().is_empty() {
            return;
        }
        let item = match decode_event(frame.data) {
            Decoded::Event(event) => {
                self.finished = matches!(event, Event::StreamEnd(_));
                Ok(event)
            }
            Decoded::CreditsExhausted(raw) => {
                self.finished = true;
                Err(Error::CreditsExhausted {
                    raw,
                    locally: false,
                    until: None,
                    context: ErrorContext::sent(),
                })
            }
        };
        match slot {
            None => *slot = Some(item),
            Some(_) => self.queue.push_back(item),
        }
    }
}

/// The items decoded but not handed out yet: rare (a failure after the rest of a
/// chunk, the last events of a body that ended), since [`EventReader::pop`]
/// decodes one event at a time straight into its caller's hands. Boxed, and
/// allocated only when used: an open stream keeps a pointer.
#[derive(Debug, Default)]
#[allow(
    clippy::box_collection,
    reason = "the extra allocation is the point: 8 bytes in every open stream instead of 32, for a queue that is almost always empty"
)]
struct Queue(Option<Box<VecDeque<Result<Event>>>>);

impl Queue {
    fn push_back(&mut self, item: Result<Event>) {
        self.0.get_or_insert_with(Box::default).push_back(item);
    }

    fn pop_front(&mut self) -> Option<Result<Event>> {
        self.0.as_mut()?.pop_front()
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |queue| queue.len())
    }
}
