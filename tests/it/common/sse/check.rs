//! The decoder invariants, checked on any input: shared by the property tests
//! (`tests/common/sse.rs`), the fuzz targets (`fuzz/src/lib.rs` includes this file
//! with `#[path]`) and the fuzz regressions, so a saved input is replayed against
//! exactly the checks that flagged it. Uses only `laracopilot` and `std`.

use laracopilot::__private::{Decoder, EventReader, Frame};
use laracopilot::{Error, Event};

/// One dispatched frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub event: String,
    pub data: String,
    pub id: String,
    pub retry: Option<u64>,
}

/// What the decoder did with one chunking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Every frame dispatched.
    pub frames: Vec<Owned>,
    /// The chunk at which it failed (`chunks.len()` for `finish`), if it did.
    pub failed_at: Option<usize>,
}

/// Whether `text`, decoded lossily, came from at most `cap` bytes: each U+FFFD
/// stands for at least one input byte, so the growth is undone before comparing
/// with the cap, which counts input bytes.
pub fn within(text: &str, cap: usize) -> bool {
    text.len() - 2 * text.matches('\u{FFFD}').count() <= cap
}

fn keep(frames: &mut Vec<Owned>, cap: usize, f: Frame<'_>) {
    assert!(within(f.data, cap), "a frame over the cap of {cap}");
    frames.push(Owned {
        event: f.event.to_owned(),
        data: f.data.to_owned(),
        id: f.id.to_owned(),
        retry: f.retry,
    });
}

/// Decodes `chunks`, checking that no frame is over the cap and that once failed,
/// the decoder stays failed and silent.
pub fn decode(chunks: &[&[u8]], cap: usize) -> Decoded {
    let mut decoder = Decoder::new(cap);
    let mut frames = Vec::new();
    let mut failed_at = None;
    for (i, chunk) in chunks.iter().enumerate() {
        let before = frames.len();
        let result = decoder.feed(chunk, &mut |f| keep(&mut frames, cap, f));
        if failed_at.is_some() {
            assert!(result.is_err(), "a failed decoder took more input");
            assert_eq!(frames.len(), before, "a failed decoder dispatched");
        } else if result.is_err() {
            failed_at = Some(i);
        }
    }
    let before = frames.len();
    let result = decoder.finish(&mut |f| keep(&mut frames, cap, f));
    if failed_at.is_some() {
        assert!(result.is_err(), "a failed decoder finished");
        assert_eq!(frames.len(), before, "a failed decoder dispatched");
    } else if result.is_err() {
        failed_at = Some(chunks.len());
    }
    Decoded { frames, failed_at }
}

/// Feeds `chunks` to a reader and ends the body; checks the items (see
/// [`check_items`]) and that nothing comes after the end.
pub fn read(chunks: &[&[u8]], cap: usize) -> Vec<laracopilot::Result<Event>> {
    let mut reader = EventReader::new(cap);
    let mut items = Vec::new();
    // Each item came from at least one input byte, or is the end.
    let bound = 2 * chunks.iter().map(|c| c.len()).sum::<usize>() + 2;
    let mut drain = |reader: &mut EventReader| {
        for _ in 0..=bound {
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
    items
}

/// One terminal item, last; events fit in the cap. The reader leaves the call's
/// facts to the stream that hands its items out (a `Generation` attaches the
/// project id it knows, and counts the events it handed out): its errors carry no
/// project id, and its `Incomplete` counts nothing.
pub fn check_items(items: &[laracopilot::Result<Event>], cap: usize) {
    let mut ended = false;
    for item in items {
        assert!(!ended, "an item after the terminal one: {items:?}");
        match item {
            Ok(event) => {
                assert!(within(event.raw_json(), cap), "an event over the cap");
                ended = matches!(event, Event::StreamEnd(_));
            }
            Err(error) => {
                assert_eq!(error.project_id(), None, "{error:?}");
                match error {
                    Error::CreditsExhausted { .. } | Error::EventTooLarge { .. } => {
                        ended = true;
                    }
                    Error::Incomplete { events: n, .. } => {
                        assert_eq!(*n, 0, "the stream counts the events, not the reader");
                        ended = true;
                    }
                    other => panic!("unexpected error {other:?}"),
                }
            }
        }
    }
    assert!(ended, "no terminal item: {items:?}");
}
