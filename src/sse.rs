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
//! Every byte is scanned once (the partial line carried between chunks is never
//! rescanned), so the cost is linear in the input whatever its chunking. The size of
//! one event (its data plus the line being read) is capped. Invalid UTF-8 is replaced
//! with U+FFFD instead of stopping the stream.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

const BOM: &[u8] = b"\xEF\xBB\xBF";

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
    event: String,
    id: String,
    retry: Option<u64>,
    max_event_size: usize,
    /// BOM bytes matched so far at the start of the stream; `None` once decided.
    bom_matched: Option<usize>,
    /// The previous chunk ended with CR: a LF opening the next one belongs to it.
    skip_lf: bool,
    /// The last data line ended with `}`.
    data_closes_object: bool,
    failed: bool,
}

impl Decoder {
    /// A decoder capping one event at `max_event_size` bytes.
    pub fn new(max_event_size: usize) -> Self {
        Decoder {
            line: Vec::new(),
            data: Vec::new(),
            event: String::new(),
            id: String::new(),
            retry: None,
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

    /// Decodes one chunk, calling `out` for every event it completes.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        out: &mut impl FnMut(Frame<'_>),
    ) -> Result<(), TooLarge> {
        if self.failed {
            return Err(self.too_large());
        }
        if let Some(matched) = self.bom_matched {
            chunk = self.skip_bom(matched, chunk);
            if self.bom_matched.is_some() {
                return Ok(());
            }
        }
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while let Some(end) = memchr2(b'\n', b'\r', chunk) {
            if self.line.is_empty() {
                self.process_line(&chunk[..end], out)?;
            } else {
                self.reserve(end)?;
                self.line.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.line);
                let result = self.process_line(&line, out);
                self.line = line;
                self.line.clear();
                result?;
            }
            let terminator = chunk[end];
            chunk = &chunk[end + 1..];
            if terminator == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        if !chunk.is_empty() {
            self.reserve(chunk.len())?;
            self.line.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Ends the input: dispatches what the JSON rule allows (see the module docs) and
    /// discards the rest, as the WHATWG rules do.
    pub fn finish(&mut self, out: &mut impl FnMut(Frame<'_>)) -> Result<(), TooLarge> {
        if self.failed {
            return Err(self.too_large());
        }
        if let Some(matched) = self.bom_matched.take() {
            // The input ended inside what could have been a BOM: those bytes are text.
            self.line.extend_from_slice(&BOM[..matched]);
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
        }
        if self.data_closes_object {
            self.dispatch(out);
        }
        self.data.clear();
        Ok(())
    }

    fn skip_bom<'c>(&mut self, mut matched: usize, chunk: &'c [u8]) -> &'c [u8] {
        let mut taken = 0;
        while matched < BOM.len() {
            match chunk.get(taken) {
                None => {
                    self.bom_matched = Some(matched);
                    return &[];
                }
                Some(&b) if b == BOM[matched] => {
                    matched += 1;
                    taken += 1;
                }
                Some(_) => {
                    // Not a BOM: the bytes matched in earlier chunks are text.
                    self.bom_matched = None;
                    if matched > taken {
                        self.line.extend_from_slice(&BOM[..matched - taken]);
                    }
                    return chunk;
                }
            }
        }
        self.bom_matched = None;
        &chunk[taken..]
    }

    fn reserve(&mut self, more: usize) -> Result<(), TooLarge> {
        if self.line.len() + self.data.len() + more > self.max_event_size {
            self.failed = true;
            self.line = Vec::new();
            self.data = Vec::new();
            return Err(self.too_large());
        }
        Ok(())
    }

    fn too_large(&self) -> TooLarge {
        TooLarge {
            limit: self.max_event_size,
        }
    }

    fn process_line(
        &mut self,
        line: &[u8],
        out: &mut impl FnMut(Frame<'_>),
    ) -> Result<(), TooLarge> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let (field, value) = match memchr(b':', line) {
            Some(0) => return Ok(()),
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.data_closes_object && value.trim_ascii_start().first() == Some(&b'{') {
                    self.dispatch(out);
                }
                if self.data.len() + value.len() + 1 > self.max_event_size {
                    self.failed = true;
                    self.data = Vec::new();
                    return Err(self.too_large());
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.data_closes_object = value.trim_ascii_end().last() == Some(&b'}');
            }
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"id" => {
                if memchr(0, value).is_none() {
                    self.id = String::from_utf8_lossy(value).into_owned();
                }
            }
            b"retry" => {
                if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
                    self.retry = Some(value.iter().fold(0u64, |n, d| {
                        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    }));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut impl FnMut(Frame<'_>)) {
        self.data_closes_object = false;
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        let data = &self.data[..self.data.len() - 1];
        let text: Cow<'_, str> = String::from_utf8_lossy(data);
        out(Frame {
            event: if self.event.is_empty() {
                "message"
            } else {
                &self.event
            },
            data: &text,
            id: &self.id,
            retry: self.retry,
        });
        self.data.clear();
        self.event.clear();
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
    fn a_failed_decoder_stays_failed() {
        let mut decoder = Decoder::new(4);
        let mut sink = |_: Frame<'_>| {};
        assert!(decoder.feed(b"data: long\n", &mut sink).is_err());
        assert!(decoder.feed(b"\n", &mut sink).is_err());
        assert!(decoder.finish(&mut sink).is_err());
        assert_eq!(decoder.buffered(), 0);
    }
}
