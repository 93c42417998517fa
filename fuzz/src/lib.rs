//! The fuzz targets' checks on one input: the input layout below, and the decoder
//! invariants of `tests/it/common/sse/check.rs`, included with `#[path]` (the property
//! tests use the same file). The regression tests (`tests/it/sse/fuzz_regressions.rs`)
//! include this file, so a saved input is replayed against exactly the checks that
//! flagged it.
//!
//! Input layout: byte 0 picks the cap (`0`: none, `n`: `4 * n` bytes); byte 1 says
//! how many chunk lengths follow (modulo 16); the lengths cut the rest of the input,
//! used in turn (a `0` gives an empty chunk, then a one-byte one); the rest is the
//! event stream. Every input is checked in one chunk, cut by its lengths, and byte
//! by byte.

#[path = "../../tests/it/common/sse/check.rs"]
mod check;

pub use check::{decode, read};

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

/// The decoder target: every chunking gives the same frames and outcome.
pub fn check_decoder(data: &[u8]) {
    let case = Case::parse(data);
    let [whole, cut, bytes] = case.chunkings();
    let reference = decode(&whole, case.cap);
    for chunks in [cut, bytes] {
        let run = decode(&chunks, case.cap);
        assert_eq!(
            run.frames, reference.frames,
            "the chunking changed the frames"
        );
        assert_eq!(
            run.failed_at.is_some(),
            reference.failed_at.is_some(),
            "the chunking changed the outcome"
        );
    }
}

/// The items of `chunks` (checked by [`read`]) as text, for comparison.
pub fn read_text(chunks: &[&[u8]], cap: usize) -> Vec<String> {
    read(chunks, cap)
        .iter()
        .map(|item| format!("{item:?}"))
        .collect()
}

/// The event reader target: checked items, the same whatever the chunking.
pub fn check_event_reader(data: &[u8]) {
    let case = Case::parse(data);
    let [whole, cut, bytes] = case.chunkings();
    let reference = read_text(&whole, case.cap);
    for chunks in [cut, bytes] {
        assert_eq!(
            read_text(&chunks, case.cap),
            reference,
            "the chunking changed the items"
        );
    }
}
