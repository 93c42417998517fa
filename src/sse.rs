//! A small, bounded, linear-time decoder for `text/event-stream`.
//!
//! It follows the WHATWG event-stream rules: lines end in LF, CR or CRLF (also when
//! the CR and the LF arrive in different chunks); a leading BOM is skipped; lines
//! starting with `:` are comments; `data` lines of one event are joined with `\n`;
//! `event`, `id` and `retry` fields are honoured; a blank line dispatches the event.
//!
//! Two additions serve the LaraCopilot API, whose documentation prints its events as
//! consecutive `data:` lines without blank lines between them:
//!
//! - a `data` line starting with `{` that follows a `data` line ending with `}` starts
//!   a new event. Joined, such lines could never form one JSON value, so this split
//!   never changes an event whose data is valid JSON;
//! - at the end of the input, pending data that ends with `}` is dispatched instead of
//!   discarded.
//!
//! The partial line carried between chunks is never rescanned (a line that starts a
//! new event by the JSON rule is scanned at most twice), so the cost is linear in the
//! input whatever its chunking. The cap applies to every line and to the data of
//! every event, whatever the chunking (so the decoder holds at most twice the cap).
//! Invalid UTF-8 is replaced with U+FFFD instead of stopping the stream.
//!
//! The common case costs no copy: an event made of one `data` line that ends inside
//! the chunk being fed is handed out as a slice of that chunk. Data is copied into
//! the decoder only when an event has several `data` lines or spans chunks.
//! [`Decoder::feed`] decodes a whole chunk; [`Decoder::feed_until_event`] stops after
//! the first event, so that a reader can decode events one at a time, as its
//! consumer asks for them.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Buffers above this capacity are released once empty, so an idle stream does not
/// keep the memory of its largest event.
const KEEP_CAPACITY: usize = 4 * 1024;

/// One dispatched event. It borrows from the decoder and lives for one callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The event type (`"message"` when the stream named none).
    pub event: &'a str,
    /// The data lines of the event, joined with `\n`.
    pub data: &'a str,
    /// The last event id seen on the stream.
    pub id: &'a str,
    /// The last `retry` value seen on the stream, in milliseconds.
    pub retry: Option<u64>,
}

/// The event being read grew past the configured cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The configured cap in bytes.
    pub limit: usize,
}

/// Incremental event-stream decoder. Feed it chunks as they arrive.
#[derive(Debug)]
pub struct Decoder {
    /// The unterminated tail of the input (a partial line).
    line: Vec<u8>,
    /// The data of the event being built, each line followed by `\n`.
    data: Vec<u8>,
    /// Boxed: most streams (LaraCopilot's among them) never send these fields.
    fields: Option<Box<Fields>>,
    max_event_size: usize,
    /// BOM bytes matched so far at the start of the stream; `None` once decided.
    bom_matched: Option<u8>,
    /// The previous chunk ended with CR: a LF opening the next one belongs to it.
    skip_lf: bool,
    /// The last data line ended with `}`.
    data_closes_object: bool,
    failed: bool,
}

/// The `event`, `id` and `retry` fields of the stream.
#[derive(Debug, Default)]
struct Fields {
    /// The type of the event being built; empty for the default, `message`.
    event: String,
    id: String,
    retry: Option<u64>,
}

/// The data of the event being built while it is still a single line borrowed from
/// the input (the decoder's `data` buffer is then empty).
type Pending<'p> = Option<&'p [u8]>;

/// What processing one line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// No event was dispatched.
    Next,
    /// The line completed an event, which was dispatched.
    Dispatched,
    /// The line starts a new event: the previous one was dispatched and the line was
    /// left unprocessed, to be read again by the next call.
    DispatchedBefore,
}

impl Decoder {
    /// A decoder capping one event at `max_event_size` bytes.
    pub fn new(max_event_size: usize) -> Self {
        Decoder {
            line: Vec::new(),
            data: Vec::new(),
            fields: None,
            max_event_size,
            bom_matched: Some(0),
            skip_lf: false,
            data_closes_object: false,
            failed: false,
        }
    }

    /// Bytes held for the event being read (partial line and data).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.line.len() + self.data.len()
    }

    /// Capacity held by the decoder's buffers.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.line.capacity() + self.data.capacity()
    }

    /// Decodes one chunk, calling `out` for every event it completes. For the crate's
    /// tests, benchmarks and fuzz targets.
    #[cfg(any(test, feature = "__internal"))]
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        out: &mut impl FnMut(Frame<'_>),
    ) -> Result<(), TooLarge> {
        loop {
            let used = self.feed_until_event(chunk, out)?;
            if used == chunk.len() {
                return Ok(());
            }
            chunk = chunk.get(used..).unwrap_or_default();
        }
    }

    /// Decodes `chunk` up to the end of the first event it completes, calls `out` for
    /// that event, and returns how many bytes of `chunk` it used: all of them when no
    /// event was completed. Feed the rest (`&chunk[used..]`) next, so that events can
    /// be decoded one at a time, as the consumer asks for them.
    pub fn feed_until_event(
        &mut self,
        whole: &[u8],
        out: &mut impl FnMut(Frame<'_>),
    ) -> Result<usize, TooLarge> {
        if self.failed {
            return Err(self.too_large());
        }
        let mut chunk = whole;
        if let Some(matched) = self.bom_matched {
            chunk = self.skip_bom(usize::from(matched), chunk);
            if self.bom_matched.is_some() {
                return Ok(whole.len());
            }
        }
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        let mut pending: Pending<'_> = None;
        let mut step = Step::Next;
        // The partial line of earlier chunks, completed by this one: owned here so
        // that its data can be borrowed like the chunk's.
        let mut carried = None;
        if !self.line.is_empty() {
            let Some(end) = memchr2(b'\n', b'\r', chunk) else {
                self.reserve(chunk.len())?;
                self.line.extend_from_slice(chunk);
                return Ok(whole.len());
            };
            self.reserve(end)?;
            // `end` is an index of `chunk` (memchr's), as everywhere below.
            self.line
                .extend_from_slice(chunk.get(..end).unwrap_or(chunk));
            let line: &Vec<u8> = carried.insert(std::mem::take(&mut self.line));
            // This line cannot be left for the next call: it is no longer in `chunk`.
            step = self.process_line(line, &mut pending, false, out)?;
            chunk = self.after_line_end(chunk, end);
        }
        while step == Step::Next {
            let Some(end) = memchr2(b'\n', b'\r', chunk) else {
                break;
            };
            // The same cap as a line carried over from earlier chunks meets, so that
            // the outcome never depends on the chunking.
            if end > self.max_event_size {
                return Err(self.fail());
            }
            let line = chunk.get(..end).unwrap_or(chunk);
            step = self.process_line(line, &mut pending, true, out)?;
            if step != Step::DispatchedBefore {
                chunk = self.after_line_end(chunk, end);
            }
        }
        if let Some(value) = pending {
            self.push_data(value);
        }
        if let Some(mut line) = carried.filter(|l| l.capacity() <= KEEP_CAPACITY) {
            line.clear();
            self.line = line;
        }
        if step == Step::Next && !chunk.is_empty() {
            self.reserve(chunk.len())?;
            self.line.extend_from_slice(chunk);
            chunk = &[];
        }
        if self.data.is_empty() && self.data.capacity() > KEEP_CAPACITY {
            self.data = Vec::new();
        }
        Ok(whole.len() - chunk.len())
    }

    /// Ends the input: dispatches what the JSON rule allows (see the module docs) and
    /// discards the rest, as the WHATWG rules do.
    pub fn finish(&mut self, out: &mut impl FnMut(Frame<'_>)) -> Result<(), TooLarge> {
        if self.failed {
            return Err(self.too_large());
        }
        if let Some(matched) = self.bom_matched.take() {
            // The input ended inside what could have been a BOM: those bytes are text.
            self.line
                .extend_from_slice(BOM.get(..usize::from(matched)).unwrap_or_default());
        }
        let line = std::mem::take(&mut self.line);
        let mut pending = None;
        if !line.is_empty() {
            self.process_line(&line, &mut pending, false, out)?;
        }
        if self.data_closes_object {
            self.dispatch(pending, out);
        }
        self.data = Vec::new();
        Ok(())
    }

    /// The rest of `chunk` after the line ending at `end`; a CR at the very end of the
    /// chunk may be followed by a LF in the next one.
    fn after_line_end<'c>(&mut self, chunk: &'c [u8], end: usize) -> &'c [u8] {
        let rest = chunk.get(end + 1..).unwrap_or_default();
        if chunk.get(end) == Some(&b'\r') {
            if let Some(after_lf) = rest.strip_prefix(b"\n") {
                return after_lf;
            }
            if rest.is_empty() {
                self.skip_lf = true;
            }
        }
        rest
    }

    fn skip_bom<'c>(&mut self, mut matched: usize, chunk: &'c [u8]) -> &'c [u8] {
        let mut taken = 0;
        while matched < BOM.len() {
            match chunk.get(taken) {
                None => {
                    // `matched` < 3.
                    self.bom_matched = Some(matched as u8);
                    return &[];
                }
                Some(&b) if BOM.get(matched) == Some(&b) => {
                    matched += 1;
                    taken += 1;
                }
                Some(_) => {
                    // Not a BOM: the bytes matched in earlier chunks are text.
                    self.bom_matched = None;
                    if matched > taken {
                        let earlier = BOM.get(..matched - taken).unwrap_or_default();
                        self.line.extend_from_slice(earlier);
                    }
                    return chunk;
                }
            }
        }
        self.bom_matched = None;
        chunk.get(taken..).unwrap_or_default()
    }

    /// Checks that the line being read stays within the cap once `more` bytes join it.
    fn reserve(&mut self, more: usize) -> Result<(), TooLarge> {
        if self.line.len() + more > self.max_event_size {
            return Err(self.fail());
        }
        Ok(())
    }

    fn fail(&mut self) -> TooLarge {
        self.failed = true;
        self.line = Vec::new();
        self.data = Vec::new();
        self.too_large()
    }

    fn too_large(&self) -> TooLarge {
        TooLarge {
            limit: self.max_event_size,
        }
    }

    fn push_data(&mut self, value: &[u8]) {
        self.data.reserve(value.len() + 1);
        self.data.extend_from_slice(value);
        self.data.push(b'\n');
    }

    /// Processes one line (without its line end). With `may_leave`, a data line that
    /// starts a new event (the JSON rule) is left for the next call once the previous
    /// event is dispatched; without, it is processed after the dispatch.
    fn process_line<'p>(
        &mut self,
        line: &'p [u8],
        pending: &mut Pending<'p>,
        may_leave: bool,
        out: &mut impl FnMut(Frame<'_>),
    ) -> Result<Step, TooLarge> {
        if line.is_empty() {
            return Ok(if self.dispatch(pending.take(), out) {
                Step::Dispatched
            } else {
                Step::Next
            });
        }
        let mut step = Step::Next;
        let (field, value) = match memchr(b':', line) {
            Some(0) => return Ok(step),
            Some(colon) => {
                let (field, rest) = line.split_at(colon);
                let value = rest.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.data_closes_object
                    && value.trim_ascii_start().first() == Some(&b'{')
                    && self.dispatch(pending.take(), out)
                {
                    if may_leave {
                        return Ok(Step::DispatchedBefore);
                    }
                    step = Step::Dispatched;
                }
                let held = self.data.len() + pending.map_or(0, |p| p.len() + 1);
                if held + value.len() + 1 > self.max_event_size {
                    return Err(self.fail());
                }
                if held == 0 {
                    *pending = Some(value);
                } else {
                    if let Some(first) = pending.take() {
                        self.push_data(first);
                    }
                    self.push_data(value);
                }
                self.data_closes_object = value.trim_ascii_end().last() == Some(&b'}');
            }
            b"event" => {
                let fields = self.fields.get_or_insert_with(Box::default);
                fields.event.clear();
                fields.event.push_str(&String::from_utf8_lossy(value));
            }
            // An id holding NUL is ignored.
            b"id" if memchr(0, value).is_none() => {
                let fields = self.fields.get_or_insert_with(Box::default);
                fields.id.clear();
                fields.id.push_str(&String::from_utf8_lossy(value));
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.fields.get_or_insert_with(Box::default).retry =
                    Some(value.iter().fold(0u64, |n, d| {
                        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    }));
            }
            _ => {}
        }
        Ok(step)
    }

    /// Hands out the event being built (`pending`, or the `data` buffer) if it has
    /// data, and starts the next one. Returns whether `out` was called.
    fn dispatch(&mut self, pending: Pending<'_>, out: &mut impl FnMut(Frame<'_>)) -> bool {
        self.data_closes_object = false;
        let data = match pending {
            Some(value) => value,
            // Without the `\n` that follows every line.
            None if !self.data.is_empty() => {
                self.data.split_last().map_or(&[][..], |(_, init)| init)
            }
            None => {
                if let Some(fields) = &mut self.fields {
                    fields.event.clear();
                }
                return false;
            }
        };
        // Validating is much faster than the lossy conversion's scan; the conversion
        // only runs for invalid input.
        let text = match std::str::from_utf8(data) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(data),
        };
        let (event, id, retry) = match &self.fields {
            Some(f) if !f.event.is_empty() => (f.event.as_str(), f.id.as_str(), f.retry),
            Some(f) => ("message", f.id.as_str(), f.retry),
            None => ("message", "", None),
        };
        out(Frame {
            event,
            data: &text,
            id,
            retry,
        });
        self.data.clear();
        if let Some(fields) = &mut self.fields {
            fields.event.clear();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Owned {
        event: String,
        data: String,
        id: String,
        retry: Option<u64>,
    }

    fn decode_chunks(chunks: &[&[u8]], max: usize) -> Result<Vec<Owned>, TooLarge> {
        let mut decoder = Decoder::new(max);
        let mut events = Vec::new();
        let mut push = |f: Frame<'_>| {
            events.push(Owned {
                event: f.event.into(),
                data: f.data.into(),
                id: f.id.into(),
                retry: f.retry,
            })
        };
        for chunk in chunks {
            decoder.feed(chunk, &mut push)?;
        }
        decoder.finish(&mut push)?;
        Ok(events)
    }

    fn decode(input: &[u8]) -> Vec<Owned> {
        decode_chunks(&[input], usize::MAX).unwrap()
    }

    fn datas(input: &[u8]) -> Vec<String> {
        decode(input).into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn blank_lines_dispatch_and_multi_line_data_is_joined() {
        assert_eq!(datas(b"data: a\ndata: b\n\ndata:c\n\n"), ["a\nb", "c"]);
    }

    #[test]
    fn every_line_ending_is_accepted() {
        let want = ["x", "y", "z"];
        assert_eq!(datas(b"data: x\n\ndata: y\n\ndata: z\n\n"), want);
        assert_eq!(
            datas(b"data: x\r\n\r\ndata: y\r\n\r\ndata: z\r\n\r\n"),
            want
        );
        assert_eq!(datas(b"data: x\r\rdata: y\r\rdata: z\r\r"), want);
        assert_eq!(datas(b"data: x\r\n\ndata: y\n\r\ndata: z\r\r\n"), want);
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let events =
            decode_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"], usize::MAX).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "a\nb");
    }

    #[test]
    fn bom_is_skipped_once_even_when_split() {
        let events = decode_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"], usize::MAX).unwrap();
        assert_eq!(events[0].data, "a");
        // A second BOM is not skipped: it is part of the field name, which is unknown.
        assert!(decode(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n").is_empty());
        // A partial BOM is text.
        assert!(decode(b"\xEF\xBBdata: a\n\n").is_empty());
        assert_eq!(datas(b"\xEF\xBB\xBF\n\ndata:a\n\n"), ["a"]);
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        assert_eq!(datas(b": keep-alive\nfoo: bar\ndata: a\n:x\n\n"), ["a"]);
    }

    #[test]
    fn event_id_and_retry_fields_are_honoured() {
        let events = decode(
            b"event: add\nid: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid\nretry: x\ndata: c\n\n",
        );
        assert_eq!(events[0].event, "add");
        assert_eq!((events[0].id.as_str(), events[0].retry), ("7", Some(1500)));
        assert_eq!(events[1].event, "message");
        assert_eq!(events[1].id, "7");
        assert_eq!((events[2].id.as_str(), events[2].retry), ("", Some(1500)));
    }

    #[test]
    fn id_with_nul_is_ignored() {
        let events = decode(b"id: 1\n\ndata: a\nid: 2\0x\n\n");
        assert_eq!(events[0].id, "1");
    }

    #[test]
    fn field_without_colon_and_space_rules() {
        assert_eq!(datas(b"data\n\n"), [""]);
        assert_eq!(datas(b"data:  two spaces\n\n"), [" two spaces"]);
        assert!(datas(b"event: only\n\n").is_empty());
    }

    #[test]
    fn documented_layout_without_blank_lines_gives_one_event_per_json_line() {
        let input = b"data: {\"type\":\"a\"}\ndata: {\"type\":\"b\"}\ndata: {\"type\":\"c\"}\n";
        assert_eq!(
            datas(input),
            [r#"{"type":"a"}"#, r#"{"type":"b"}"#, r#"{"type":"c"}"#]
        );
    }

    #[test]
    fn json_split_never_breaks_multi_line_json() {
        let input = b"data: {\"a\":\ndata: {\"b\": 1}\ndata: }\n\n";
        assert_eq!(datas(input), ["{\"a\":\n{\"b\": 1}\n}"]);
    }

    #[test]
    fn incomplete_event_at_end_is_discarded_unless_it_closes_an_object() {
        assert!(datas(b"data: partial").is_empty());
        assert!(datas(b"data: {\"type\":\"x\"").is_empty());
        assert_eq!(datas(b"data: {\"type\":\"x\"}"), [r#"{"type":"x"}"#]);
        assert!(datas(b"data: text\n").is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced_and_later_events_still_arrive() {
        assert_eq!(
            datas(b"data: a\xFFb\n\ndata: next\n\n"),
            ["a\u{FFFD}b", "next"]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let input: &[u8] = b"\xEF\xBB\xBF: hi\r\nevent: e\r\ndata: {\"type\":\"x\"}\r\n\r\ndata: a\rdata: b\r\rid: 3\ndata: {\"k\":1}\ndata: {\"k\":2}\n\n";
        let want = decode(input);
        assert_eq!(want.len(), 4);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got =
                    decode_chunks(&[&input[..i], &input[i..j], &input[j..]], usize::MAX).unwrap();
                assert_eq!(got, want, "split at {i} and {j}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes, usize::MAX).unwrap(), want);
    }

    /// Decodes with `feed_until_event`, checking that each call completes at most one
    /// event and uses the whole chunk when it completes none.
    fn decode_one_at_a_time(chunks: &[&[u8]]) -> Vec<Owned> {
        let mut decoder = Decoder::new(usize::MAX);
        let mut events = Vec::new();
        for chunk in chunks {
            let mut rest = *chunk;
            loop {
                let mut got = Vec::new();
                let used = decoder
                    .feed_until_event(rest, &mut |f: Frame<'_>| {
                        got.push(Owned {
                            event: f.event.into(),
                            data: f.data.into(),
                            id: f.id.into(),
                            retry: f.retry,
                        })
                    })
                    .unwrap();
                assert!(got.len() <= 1, "{got:?}");
                assert!(!got.is_empty() || used == rest.len());
                let done = got.is_empty();
                events.extend(got);
                rest = &rest[used..];
                if done {
                    break;
                }
            }
        }
        let mut push = |f: Frame<'_>| {
            events.push(Owned {
                event: f.event.into(),
                data: f.data.into(),
                id: f.id.into(),
                retry: f.retry,
            })
        };
        decoder.finish(&mut push).unwrap();
        events
    }

    #[test]
    fn one_event_at_a_time_gives_the_same_events_at_every_split_point() {
        let input: &[u8] = b"\xEF\xBB\xBFdata: {\"k\":0}\r\ndata: {\"k\":1}\n: c\r\rdata: a\r\ndata: b\n\nevent: e\ndata: {\"k\":2}\ndata: {\"k\":3}\n\ndata: {\"k\":4}";
        let want = decode(input);
        assert_eq!(want.len(), 6);
        assert_eq!(decode_one_at_a_time(&[input]), want);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = decode_one_at_a_time(&[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, want, "split at {i} and {j}");
            }
        }
    }

    #[test]
    fn an_event_over_the_cap_is_an_error_whatever_the_chunking() {
        let big = format!("data: {}\n\n", "x".repeat(100));
        assert_eq!(
            decode_chunks(&[big.as_bytes()], 50),
            Err(TooLarge { limit: 50 })
        );
        let pieces: Vec<&[u8]> = big.as_bytes().chunks(7).collect();
        assert_eq!(decode_chunks(&pieces, 50), Err(TooLarge { limit: 50 }));
        let lines = "data: xxxxxxxxxx\n".repeat(10) + "\n";
        assert_eq!(
            decode_chunks(&[lines.as_bytes()], 50),
            Err(TooLarge { limit: 50 })
        );
        // Events under the cap pass, however many there are.
        let many = "data: xxxxxxxxxx\n\n".repeat(100);
        assert_eq!(decode_chunks(&[many.as_bytes()], 50).unwrap().len(), 100);
    }

    #[test]
    fn a_single_line_event_inside_one_chunk_is_not_copied() {
        let mut decoder = Decoder::new(usize::MAX);
        let mut datas = Vec::new();
        let mut push = |f: Frame<'_>| datas.push(f.data.to_owned());
        decoder
            .feed(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n", &mut push)
            .unwrap();
        assert_eq!(datas, [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert_eq!(decoder.capacity(), 0);
    }

    #[test]
    fn an_idle_decoder_releases_the_memory_of_a_large_event() {
        let mut decoder = Decoder::new(usize::MAX);
        let mut sizes = Vec::new();
        let mut push = |f: Frame<'_>| sizes.push(f.data.len());
        let big = format!("data: {}\ndata: x\n\n", "y".repeat(100_000));
        for piece in big.as_bytes().chunks(1000) {
            decoder.feed(piece, &mut push).unwrap();
        }
        decoder
            .feed(b"data: small\n\ndata: par", &mut push)
            .unwrap();
        assert_eq!(sizes, [100_002, 5]);
        assert!(
            decoder.capacity() <= KEEP_CAPACITY,
            "{}",
            decoder.capacity()
        );
    }

    #[test]
    fn a_failed_decoder_stays_failed() {
        let mut decoder = Decoder::new(4);
        let mut sink = |_: Frame<'_>| {};
        assert!(decoder.feed(b"data: long\n", &mut sink).is_err());
        assert!(decoder.feed(b"\n", &mut sink).is_err());
        assert!(decoder.finish(&mut sink).is_err());
        assert_eq!(decoder.buffered(), 0);
    }
}
