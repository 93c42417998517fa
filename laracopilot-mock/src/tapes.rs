//! The faulty variants of a recorded cassette: the same real traffic, broken in one
//! documented way each, so that a test suite can check every failure on it.

use std::time::Duration;

use bytes::Bytes;
use laracopilot::cassette::{Answer, Cassette, Chunk, End, Ending, Exchange};

/// A refusal comes back at once: at most this long after the request (a quick 429
/// or 503 is one that certainly started no work).
const QUICK: Duration = Duration::from_millis(50);

/// The fault variants of a recorded [`Cassette`]: the same real traffic, broken in
/// one documented way each. Replay a variant with [`MockServer::replay`](crate::MockServer::replay).
///
/// ```
/// use laracopilot::cassette::Cassette;
/// use laracopilot_mock::CassetteExt;
///
/// # fn check(tape: &Cassette) {
/// let broken = tape.cut_after(5);
/// assert!(broken.events() <= tape.events());
/// # }
/// ```
pub trait CassetteExt: sealed::Sealed {
    /// The variant whose streams send their first `events` events (counted over
    /// every event stream on the tape, in order: see [`Cassette::events`]), then end
    /// cleanly: the SDK reports [`Error::Incomplete`](laracopilot::Error::Incomplete), with
    /// the project id when it was seen. The stream that holds event `events` ends
    /// just before it; later exchanges stay as recorded. No effect when the tape
    /// has no more events than that.
    #[must_use]
    fn cut_after(&self, events: usize) -> Cassette;

    /// As [`cut_after`](CassetteExt::cut_after), but the connection is reset instead of
    /// ending the body: the SDK reports [`Error::Transport`](laracopilot::Error::Transport).
    #[must_use]
    fn reset_after(&self, events: usize) -> Cassette;

    /// As [`cut_after`](CassetteExt::cut_after), but nothing more is sent and the
    /// connection stays open: the SDK's idle timeout ends the stream with
    /// [`Error::Timeout`](laracopilot::Error::Timeout).
    #[must_use]
    fn stall_before(&self, event: usize) -> Cassette;

    /// The variant whose event streams end their lines with CRLF instead of LF
    /// (line ends already CRLF stay as they are; chunk boundaries and pacing are
    /// kept).
    #[must_use]
    fn crlf(&self) -> Cassette;

    /// The variant whose bodies come in chunks of at most `bytes` bytes (0 counts as
    /// 1): `chunk_size(1)` sends every byte on its own. The pieces of a recorded
    /// chunk keep its time.
    #[must_use]
    fn chunk_size(&self, bytes: usize) -> Cassette;

    /// The variant where the first event stream's request is first answered with
    /// Laravel's throttle answer: 429 `{"message": "Too Many Attempts."}`, with
    /// `Retry-After: <seconds>` when given. The SDK retries it (a 429 started no
    /// work) and then gets the recorded stream, or reports
    /// [`Error::RateLimited`](laracopilot::Error::RateLimited) when its retry policy says
    /// no.
    #[must_use]
    fn rate_limited(&self, retry_after: Option<u64>) -> Cassette;

    /// The variant where the first event stream's request is first answered with a
    /// quick 503 `{"message": "Service Unavailable"}` (Laravel's maintenance mode),
    /// which the SDK may retry; then the recorded stream.
    #[must_use]
    fn unavailable(&self) -> Cassette;

    /// The variant where the token was revoked before the session: every request is
    /// answered 401 `{"status": false, "message": "Unauthorized."}`, as the API does
    /// at once after a revocation. The SDK reports
    /// [`Error::Unauthorized`](laracopilot::Error::Unauthorized).
    #[must_use]
    fn revoked(&self) -> Cassette;

    /// The variant where the token expired before the session: every request is
    /// answered 401 `{"status": false, "message": "API token has expired."}`. The SDK
    /// reports [`Error::TokenExpired`](laracopilot::Error::TokenExpired).
    #[must_use]
    fn expired(&self) -> Cassette;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for laracopilot::cassette::Cassette {}
}

impl CassetteExt for Cassette {
    fn cut_after(&self, events: usize) -> Cassette {
        truncated(self, events, Ending::Complete)
    }

    fn reset_after(&self, events: usize) -> Cassette {
        truncated(self, events, Ending::Reset)
    }

    fn stall_before(&self, event: usize) -> Cassette {
        truncated(self, event, Ending::Stalled)
    }

    fn crlf(&self) -> Cassette {
        let mut variant = self.clone();
        for exchange in variant
            .exchanges_mut()
            .iter_mut()
            .filter(|e| e.is_event_stream())
        {
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

    fn chunk_size(&self, bytes: usize) -> Cassette {
        let size = bytes.max(1);
        let mut variant = self.clone();
        for exchange in variant.exchanges_mut() {
            exchange.chunks = exchange
                .chunks
                .iter()
                .flat_map(|chunk| {
                    (0..chunk.data.len()).step_by(size).map(move |from| {
                        Chunk::new(
                            chunk.at,
                            chunk.data.slice(from..(from + size).min(chunk.data.len())),
                        )
                    })
                })
                .collect();
        }
        variant
    }

    fn rate_limited(&self, retry_after: Option<u64>) -> Cassette {
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-ratelimit-limit".to_owned(), "60".to_owned()),
            ("x-ratelimit-remaining".to_owned(), "0".to_owned()),
        ];
        if let Some(seconds) = retry_after {
            headers.push(("retry-after".to_owned(), seconds.to_string()));
        }
        refused_first(self, 429, headers, br#"{"message":"Too Many Attempts."}"#)
    }

    fn unavailable(&self) -> Cassette {
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        refused_first(self, 503, headers, br#"{"message":"Service Unavailable"}"#)
    }

    fn revoked(&self) -> Cassette {
        refused_all(self, br#"{"status":false,"message":"Unauthorized."}"#)
    }

    fn expired(&self) -> Cassette {
        refused_all(
            self,
            br#"{"status":false,"message":"API token has expired."}"#,
        )
    }
}

/// The exchange and byte offset where event `event` (counted over the tape's
/// streams) begins.
fn locate(tape: &Cassette, event: usize) -> Option<(usize, usize)> {
    let mut before = 0;
    for (index, exchange) in tape.exchanges().iter().enumerate() {
        if !exchange.is_event_stream() {
            continue;
        }
        let ends = exchange.event_ends();
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

fn truncated(tape: &Cassette, event: usize, how: Ending) -> Cassette {
    let mut variant = tape.clone();
    let Some((index, offset)) = locate(tape, event) else {
        return variant;
    };
    if let Some(exchange) = variant.exchanges_mut().get_mut(index) {
        truncate(exchange, offset, how);
    }
    variant
}

/// Puts an exchange answered `status` before the first event stream's (the first
/// exchange's, on a tape without a stream), with the same request.
fn refused_first(
    tape: &Cassette,
    status: u16,
    headers: Vec<(String, String)>,
    body: &[u8],
) -> Cassette {
    let mut variant = tape.clone();
    let index = tape
        .exchanges()
        .iter()
        .position(Exchange::is_event_stream)
        .unwrap_or(0);
    let Some(original) = tape.exchanges().get(index) else {
        return variant;
    };
    let at = original.answer.as_ref().map_or(QUICK, |a| a.at.min(QUICK));
    let mut refusal = original.clone();
    refusal.id = tape.next_exchange_id();
    answer_with(&mut refusal, at, status, headers, body);
    variant.insert_exchange(index, refusal);
    variant
}

/// Every exchange answered 401 with `body`.
fn refused_all(tape: &Cassette, body: &[u8]) -> Cassette {
    let mut variant = tape.clone();
    for exchange in variant.exchanges_mut() {
        let at = exchange.answer.as_ref().map_or(QUICK, |a| a.at.min(QUICK));
        let json = vec![("content-type".to_owned(), "application/json".to_owned())];
        answer_with(exchange, at, 401, json, body);
    }
    variant
}

/// Makes `exchange` answer `status` with `headers` and the whole `body`, at `at`.
fn answer_with(
    exchange: &mut Exchange,
    at: Duration,
    status: u16,
    headers: Vec<(String, String)>,
    body: &[u8],
) {
    exchange.answer = Some(Answer::new(at, status, headers));
    exchange.chunks = vec![Chunk::new(at, Bytes::copy_from_slice(body))];
    exchange.end = Some(End::new(at, Ending::Complete, None));
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
                kept.push(Chunk::new(chunk.at, chunk.data.slice(..offset - start)));
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
    let error = (how == Ending::Reset).then(|| "fault: the connection was reset".to_owned());
    exchange.end = Some(End::new(cut_at.unwrap_or(fallback), how, error));
}
