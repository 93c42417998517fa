//! The invariants the fuzz targets check on one input, shared with the regression
//! tests (`tests/fuzz_regressions.rs` includes this file with `#[path]`), so a saved
//! input is replayed against exactly the checks that flagged it.
//!
//! Input layout: byte 0 picks the cap (`0`: none, `n`: `4 * n` bytes); byte 1 says
//! how many chunk lengths follow (modulo 16); the lengths cut the rest of the input,
//! used in turn (a `0` gives an empty chunk, then a one-byte one); the rest is the
//! event stream. Every input is checked in one chunk, cut by its lengths, and byte
//! by byte.

use laracopilot::__private::{Decoder, EventReader, Frame};
use laracopilot::{Error, Event, ProjectId};

/// One fuzz input, decoded.
pub struct Case<'a> {
    /// The cap on one event, in bytes.
    pub cap: usize,
    lengths: &'a [u8],
    /// The event-stream bytes.
    pub stream: &'a [u8],
}

impl<'a> Case<'a> {
    /// Splits a fuzz input into its cap, its chunk lengths and its stream.
    pub fn parse(data: &'a [u8]) -> Case<'a> {
        let cap = match data.first() {
            None | Some(0) => usize::MAX,
            Some(&n) => 4 * usize::from(n),
        };
        let rest = data.get(1..).unwrap_or_default();
        let count = rest.first().map_or(0, |&n| usize::from(n % 16));
        let rest = rest.get(1..).unwrap_or_default();
        let (lengths, stream) = rest.split_at(count.min(rest.len()));
        Case {
            cap,
            lengths,
            stream,
        }
    }

    /// The stream cut by the input's lengths (one chunk without lengths).
    pub fn cut(&self) -> Vec<&'a [u8]> {
        if self.lengths.is_empty() {
            return vec![self.stream];
        }
        let mut chunks = Vec::new();
        let mut rest = self.stream;
        // Every round takes at least one byte: at most `stream.len()` rounds.
        for &length in self.lengths.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let length = match length {
                0 => {
                    chunks.push(&rest[..0]);
                    1
                }
                n => usize::from(n).min(rest.len()),
            };
            let (chunk, tail) = rest.split_at(length);
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }

    /// The three chunkings every input is checked under: whole, cut, byte by byte.
    pub fn chunkings(&self) -> [Vec<&'a [u8]>; 3] {
        [
            vec![self.stream],
            self.cut(),
            self.stream.chunks(1).collect(),
        ]
    }
}

/// Whether `text`, decoded lossily, came from at most `cap` bytes: each U+FFFD
/// stands for at least one input byte.
pub fn within(text: &str, cap: usize) -> bool {
    text.len() - 2 * text.matches('\u{FFFD}').count() <= cap
}

/// What the decoder did with one chunking.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// `(event, data, id, retry)` of every frame.
    pub frames: Vec<(String, String, String, Option<u64>)>,
    /// It returned `TooLarge`.
    pub failed: bool,
}

/// Decodes `chunks`, checking that no frame is over the cap and that once failed,
/// the decoder stays failed and silent.
pub fn decode(chunks: &[&[u8]], cap: usize) -> Decoded {
    let mut decoder = Decoder::new(cap);
    let mut frames = Vec::new();
    let mut failed = false;
    for chunk in chunks {
        let before = frames.len();
        let result = decoder.feed(chunk, &mut |f| keep(&mut frames, cap, f));
        if failed {
            assert!(result.is_err(), "a failed decoder took more input");
            assert_eq!(frames.len(), before, "a failed decoder dispatched");
        }
        failed |= result.is_err();
    }
    let before = frames.len();
    let result = decoder.finish(&mut |f| keep(&mut frames, cap, f));
    if failed {
        assert!(result.is_err(), "a failed decoder finished");
        assert_eq!(frames.len(), before, "a failed decoder dispatched");
    }
    failed |= result.is_err();
    Decoded { frames, failed }
}

fn keep(frames: &mut Vec<(String, String, String, Option<u64>)>, cap: usize, f: Frame<'_>) {
    assert!(within(f.data, cap), "a frame over the cap of {cap}");
    frames.push((f.event.into(), f.data.into(), f.id.into(), f.retry));
}

/// The decoder target: every chunking gives the same frames and outcome.
pub fn check_decoder(data: &[u8]) {
    let case = Case::parse(data);
    let [whole, cut, bytes] = case.chunkings();
    let reference = decode(&whole, case.cap);
    for chunks in [cut, bytes] {
        let run = decode(&chunks, case.cap);
        assert_eq!(run, reference, "the chunking changed the frames");
    }
}

/// Feeds `chunks` to a reader and ends the body; checks the items and that nothing
/// comes after the end. Returns the items as text, for comparison.
pub fn read(chunks: &[&[u8]], cap: usize) -> Vec<String> {
    let mut reader = EventReader::new(cap, None);
    let mut items = Vec::new();
    let mut drain = |reader: &mut EventReader| {
        // Bounded: each item came from at least one input byte, or is the end.
        for _ in 0..=2 * chunks.iter().map(|c| c.len()).sum::<usize>() + 2 {
            match reader.pop() {
                Some(item) => items.push(item),
                None => return,
            }
        }
        panic!("more items than input bytes");
    };
    for chunk in chunks {
        reader.feed(chunk);
        drain(&mut reader);
    }
    reader.end();
    drain(&mut reader);
    assert!(reader.is_finished(), "not finished after the end");
    reader.feed(b"data: {\"type\":\"container_ready\"}\n\n");
    reader.end();
    assert!(reader.pop().is_none(), "an item after the end");
    check_items(&items, cap);
    items.iter().map(|item| format!("{item:?}")).collect()
}

/// One terminal item, last, and it is the only error; errors carry the project id
/// known at that point;
/// `Incomplete` counts the events delivered; events fit in the cap.
fn check_items(items: &[laracopilot::Result<Event>], cap: usize) {
    let mut project_id: Option<ProjectId> = None;
    let mut events = 0;
    let mut ended = false;
    for item in items {
        assert!(!ended, "an item after the terminal one: {items:?}");
        match item {
            Ok(event) => {
                events += 1;
                assert!(within(event.raw_json(), cap), "an event over the cap");
                match event {
                    Event::ProjectCreated(created) => {
                        project_id = Some(created.project_id.clone());
                    }
                    Event::StreamEnd(end) => {
                        project_id = end.project_id.clone().or(project_id);
                        ended = true;
                    }
                    _ => {}
                }
            }
            Err(error) => {
                assert_eq!(error.project_id(), project_id.as_ref(), "{error:?}");
                match error {
                    Error::CreditsExhausted { .. } | Error::EventTooLarge { .. } => {
                        ended = true;
                    }
                    Error::Incomplete { events: n, .. } => {
                        assert_eq!(*n, events, "Incomplete miscounts the events");
                        ended = true;
                    }
                    other => panic!("unexpected error {other:?}"),
                }
            }
        }
    }
    assert!(ended, "no terminal item: {items:?}");
}

/// The event reader target: checked items, the same whatever the chunking.
pub fn check_event_reader(data: &[u8]) {
    let case = Case::parse(data);
    let [whole, cut, bytes] = case.chunkings();
    let reference = read(&whole, case.cap);
    for chunks in [cut, bytes] {
        let run = read(&chunks, case.cap);
        assert_eq!(run, reference, "the chunking changed the items");
    }
}
