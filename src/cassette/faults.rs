//! The faulty variants of a recorded cassette: the same real traffic, broken in one
//! documented way each, so that a test suite can check every failure on it.

use std::time::Duration;

use bytes::Bytes;

use super::{Answer, Cassette, Chunk, End, Ending, Exchange};

/// A refusal comes back at once: at most this long after the request (a quick 429
/// or 503 is one that certainly started no work).
const QUICK: Duration = Duration::from_millis(50);

/// Where each server-sent event of `body` ends: the offset just after the blank line
/// that dispatches it. Lines end in LF, CRLF or CR; a block without a `data` line
/// that holds something (a comment, a keep-alive) is not an event.
pub(super) fn event_ends(body: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut has_data = false;
    let mut line_start = 0;
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        if byte != b'\n' && byte != b'\r' {
            at += 1;
            continue;
        }
        let line = body.get(line_start..at).unwrap_or_default();
        let next = if byte == b'\r' && body.get(at + 1) == Some(&b'\n') {
            at + 2
        } else {
            at + 1
        };
        if line.is_empty() {
            if has_data {
                ends.push(next);
            }
            has_data = false;
        } else if let Some(rest) = line.strip_prefix(b"data") {
            // The field is `data` only when the name ends there.
            if let Some(value) = rest.strip_prefix(b":") {
                has_data |= !value.trim_ascii().is_empty();
            }
        }
        line_start = next;
        at = next;
    }
    ends
}

impl Cassette {
    /// The variant whose streams send their first `events` events (counted over
    /// every event stream on the tape, in order: see [`Cassette::events`]), then end
    /// cleanly: the SDK reports [`Error::Incomplete`](crate::Error::Incomplete), with
    /// the project id when it was seen. The stream that holds event `events` ends
    /// just before it; later exchanges stay as recorded. No effect when the tape
    /// has no more events than that.
    #[must_use]
    pub fn cut_after(&self, events: usize) -> Cassette {
        self.truncated(events, Ending::Complete)
    }

    /// As [`cut_after`](Cassette::cut_after), but the connection is reset instead of
    /// ending the body: the SDK reports [`Error::Transport`](crate::Error::Transport).
    #[must_use]
    pub fn reset_after(&self, events: usize) -> Cassette {
        self.truncated(events, Ending::Reset)
    }

    /// As [`cut_after`](Cassette::cut_after), but nothing more is sent and the
    /// connection stays open: the SDK's idle timeout ends the stream with
    /// [`Error::Timeout`](crate::Error::Timeout).
    #[must_use]
    pub fn stall_before(&self, event: usize) -> Cassette {
        self.truncated(event, Ending::Stalled)
    }

    /// The variant whose event streams end their lines with CRLF instead of LF
    /// (line ends already CRLF stay as they are; chunk boundaries and pacing are
    /// kept).
    #[must_use]
    pub fn crlf(&self) -> Cassette {
        let mut variant = self.clone();
        for exchange in variant.exchanges.iter_mut().filter(|e| e.is_event_stream()) {
            let mut after_cr = false;
            for chunk in &mut exchange.chunks {
                let mut data = Vec::with_capacity(chunk.data.len() + chunk.data.len() / 8);
                for &byte in chunk.data.iter() {
                    if byte == b'\n' && !after_cr {
                        data.push(b'\r');
                    }
                    data.push(byte);
                    after_cr = byte == b'\r';
                }
                chunk.data = Bytes::from(data);
            }
        }
        variant
    }

    /// The variant whose bodies come in chunks of at most `bytes` bytes (0 counts as
    /// 1): `chunk_size(1)` sends every byte on its own. The pieces of a recorded
    /// chunk keep its time.
    #[must_use]
    pub fn chunk_size(&self, bytes: usize) -> Cassette {
        let size = bytes.max(1);
        let mut variant = self.clone();
        for exchange in &mut variant.exchanges {
            exchange.chunks = exchange
                .chunks
                .iter()
                .flat_map(|chunk| {
                    (0..chunk.data.len()).step_by(size).map(move |from| Chunk {
                        at: chunk.at,
                        data: chunk.data.slice(from..(from + size).min(chunk.data.len())),
                    })
                })
                .collect();
        }
        variant
    }

    /// The variant where the first event stream's request is first answered with
    /// Laravel's throttle answer: 429 `{"message": "Too Many Attempts."}`, with
    /// `Retry-After: <seconds>` when given. The SDK retries it (a 429 started no
    /// work) and then gets the recorded stream, or reports
    /// [`Error::RateLimited`](crate::Error::RateLimited) when its retry policy says
    /// no.
    #[must_use]
    pub fn rate_limited(&self, retry_after: Option<u64>) -> Cassette {
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-ratelimit-limit".to_owned(), "60".to_owned()),
            ("x-ratelimit-remaining".to_owned(), "0".to_owned()),
        ];
        if let Some(seconds) = retry_after {
            headers.push(("retry-after".to_owned(), seconds.to_string()));
        }
        self.refused_first(429, headers, br#"{"message":"Too Many Attempts."}"#)
    }

    /// The variant where the first event stream's request is first answered with a
    /// quick 503 `{"message": "Service Unavailable"}` (Laravel's maintenance mode),
    /// which the SDK may retry; then the recorded stream.
    #[must_use]
    pub fn unavailable(&self) -> Cassette {
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        self.refused_first(503, headers, br#"{"message":"Service Unavailable"}"#)
    }

    /// The variant where the token was revoked before the session: every request is
    /// answered 401 `{"status": false, "message": "Unauthorized."}`, as the API does
    /// at once after a revocation. The SDK reports
    /// [`Error::Unauthorized`](crate::Error::Unauthorized).
    #[must_use]
    pub fn revoked(&self) -> Cassette {
        self.refused_all(br#"{"status":false,"message":"Unauthorized."}"#)
    }

    /// The variant where the token expired before the session: every request is
    /// answered 401 `{"status": false, "message": "API token has expired."}`. The SDK
    /// reports [`Error::TokenExpired`](crate::Error::TokenExpired).
    #[must_use]
    pub fn expired(&self) -> Cassette {
        self.refused_all(br#"{"status":false,"message":"API token has expired."}"#)
    }

    /// The exchange and byte offset where event `event` (counted over the tape's
    /// streams) begins.
    fn locate(&self, event: usize) -> Option<(usize, usize)> {
        let mut before = 0;
        for (index, exchange) in self.exchanges.iter().enumerate() {
            if !exchange.is_event_stream() {
                continue;
            }
            let ends = event_ends(&exchange.body());
            if event < before + ends.len() {
                let local = event - before;
                let offset = match local.checked_sub(1) {
                    Some(previous) => ends.get(previous).copied().unwrap_or(0),
                    None => 0,
                };
                return Some((index, offset));
            }
            before += ends.len();
        }
        None
    }

    fn truncated(&self, event: usize, how: Ending) -> Cassette {
        let mut variant = self.clone();
        let Some((index, offset)) = self.locate(event) else {
            return variant;
        };
        if let Some(exchange) = variant.exchanges.get_mut(index) {
            truncate(exchange, offset, how);
        }
        variant
    }

    /// Puts an exchange answered `status` before the first event stream's (the first
    /// exchange's, on a tape without a stream), with the same request.
    fn refused_first(&self, status: u16, headers: Vec<(String, String)>, body: &[u8]) -> Cassette {
        let mut variant = self.clone();
        let index = self
            .exchanges
            .iter()
            .position(Exchange::is_event_stream)
            .unwrap_or(0);
        let Some(original) = self.exchanges.get(index) else {
            return variant;
        };
        let at = original.answer.as_ref().map_or(QUICK, |a| a.at.min(QUICK));
        let refusal = Exchange {
            id: self.next_id(),
            request: original.request.clone(),
            answer: Some(Answer {
                at,
                status,
                headers,
            }),
            chunks: vec![Chunk {
                at,
                data: Bytes::copy_from_slice(body),
            }],
            end: Some(End {
                at,
                how: Ending::Complete,
                error: None,
            }),
        };
        variant.exchanges.insert(index, refusal);
        variant
    }

    /// Every exchange answered 401 with `body`.
    fn refused_all(&self, body: &[u8]) -> Cassette {
        let mut variant = self.clone();
        for exchange in &mut variant.exchanges {
            let at = exchange.answer.as_ref().map_or(QUICK, |a| a.at.min(QUICK));
            exchange.answer = Some(Answer {
                at,
                status: 401,
                headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            });
            exchange.chunks = vec![Chunk {
                at,
                data: Bytes::copy_from_slice(body),
            }];
            exchange.end = Some(End {
                at,
                how: Ending::Complete,
                error: None,
            });
        }
        variant
    }
}

/// Keeps the first `offset` bytes of the body, then ends the exchange `how`, when
/// the next byte would have come (or when it ended).
fn truncate(exchange: &mut Exchange, offset: usize, how: Ending) {
    let mut kept = Vec::new();
    let mut start = 0;
    let mut cut_at = exchange.end.as_ref().map(|e| e.at);
    for chunk in &exchange.chunks {
        let end = start + chunk.data.len();
        if end <= offset {
            kept.push(chunk.clone());
        } else {
            if start < offset {
                kept.push(Chunk {
                    at: chunk.at,
                    data: chunk.data.slice(..offset - start),
                });
            }
            cut_at = Some(chunk.at);
            break;
        }
        start = end;
    }
    let fallback = kept
        .last()
        .map(|c| c.at)
        .or(exchange.answer.as_ref().map(|a| a.at))
        .unwrap_or_default();
    exchange.chunks = kept;
    exchange.end = Some(End {
        at: cut_at.unwrap_or(fallback),
        how,
        error: (how == Ending::Reset).then(|| "fault: the connection was reset".to_owned()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_blank_lines_in_every_line_ending() {
        assert_eq!(event_ends(b"data: a\n\ndata: b\n\n"), [9, 18]);
        assert_eq!(event_ends(b"data: a\r\n\r\ndata: b\r\r"), [11, 20]);
        assert_eq!(event_ends(b": keep-alive\n\ndata: a\n\n"), [23]);
        assert_eq!(event_ends(b"data: a\ndata: b\n\ndata: c"), [17]);
        assert_eq!(event_ends(b"data:\n\ndatax: y\n\n"), Vec::<usize>::new());
    }
}
