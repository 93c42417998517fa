//! The lines of a cassette file: written one at a time by the recorder, all at once
//! by [`Cassette::to_vec`], and read back by [`Cassette::parse`].

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{
    assemble, Answer, Cassette, CassetteError, Chunk, End, Ending, Exchange, Index, Request,
    FORMAT_VERSION,
};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The first line.
#[derive(Serialize)]
pub(super) struct HeaderLine<'a> {
    pub(super) cassette: u64,
    pub(super) recorder: &'a str,
}

/// A request line.
#[derive(Serialize)]
pub(super) struct RequestLine {
    pub(super) x: u64,
    pub(super) request: WireRequest,
}

#[derive(Serialize, Deserialize)]
pub(super) struct WireRequest {
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_b64: Option<String>,
}

/// An answer's head.
#[derive(Serialize)]
pub(super) struct HeadLine<'a> {
    pub(super) x: u64,
    pub(super) t: f64,
    pub(super) status: u16,
    pub(super) headers: &'a [(String, String)],
}

/// A piece of a body: as text when it is valid UTF-8, else in base64.
#[derive(Serialize)]
pub(super) struct ChunkLine<'a> {
    x: u64,
    t: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b64: Option<String>,
}

/// The end of an exchange.
#[derive(Serialize)]
pub(super) struct EndLine<'a> {
    pub(super) x: u64,
    pub(super) t: f64,
    pub(super) end: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<&'a str>,
    /// Why the body's bytes are not on the tape (a compressed body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) omitted: Option<&'a str>,
}

/// Any line, as read.
#[derive(Deserialize)]
struct Line {
    cassette: Option<u64>,
    recorder: Option<String>,
    x: Option<u64>,
    t: Option<f64>,
    request: Option<WireRequest>,
    status: Option<u16>,
    headers: Option<Vec<(String, String)>>,
    data: Option<String>,
    b64: Option<String>,
    end: Option<String>,
    error: Option<String>,
    omitted: Option<String>,
}

impl WireRequest {
    pub(super) fn new(method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Self {
        let (body, body_b64) = text_or_base64(body);
        WireRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: headers.iter().cloned().collect(),
            body: body.map(str::to_owned),
            body_b64,
        }
    }
}

impl<'a> ChunkLine<'a> {
    pub(super) fn new(x: u64, at: Duration, data: &'a [u8]) -> Self {
        let (data, b64) = text_or_base64(data);
        ChunkLine {
            x,
            t: millis(at),
            data,
            b64,
        }
    }
}

/// `Some(text)` for bytes that are valid UTF-8 (nothing for none), else base64.
fn text_or_base64(bytes: &[u8]) -> (Option<&str>, Option<String>) {
    if bytes.is_empty() {
        return (None, None);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text), None),
        Err(_) => (None, Some(BASE64.encode(bytes))),
    }
}

/// A duration as milliseconds, to the microsecond.
pub(super) fn millis(d: Duration) -> f64 {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    // Exact below 2^53 µs (285 years).
    micros as f64 / 1000.0
}

/// One serialized line, with its newline.
pub(super) fn line(value: &impl Serialize) -> Option<Vec<u8>> {
    let mut bytes = serde_json::to_vec(value).ok()?;
    bytes.push(b'\n');
    Some(bytes)
}

pub(super) fn header(recorder: &str) -> Vec<u8> {
    line(&HeaderLine {
        cassette: FORMAT_VERSION,
        recorder,
    })
    .unwrap_or_default()
}

/// The whole file: the header, then each exchange's lines together.
pub(super) fn write(cassette: &Cassette) -> Vec<u8> {
    let recorder = cassette
        .recorder
        .as_deref()
        .unwrap_or(super::record::RECORDER);
    let mut out = header(recorder);
    for exchange in &cassette.exchanges {
        let x = exchange.id;
        let request = &exchange.request;
        let request = WireRequest::new(
            &request.method,
            &request.path,
            &request.headers,
            &request.body,
        );
        out.extend(line(&RequestLine { x, request }).unwrap_or_default());
        if let Some(answer) = &exchange.answer {
            out.extend(
                line(&HeadLine {
                    x,
                    t: millis(answer.at),
                    status: answer.status,
                    headers: &answer.headers,
                })
                .unwrap_or_default(),
            );
        }
        for chunk in &exchange.chunks {
            out.extend(line(&ChunkLine::new(x, chunk.at, &chunk.data)).unwrap_or_default());
        }
        if let Some(end) = &exchange.end {
            out.extend(
                line(&EndLine {
                    x,
                    t: millis(end.at),
                    end: end.how.as_str(),
                    error: end.error.as_deref(),
                    omitted: end.omitted.as_deref(),
                })
                .unwrap_or_default(),
            );
        }
    }
    out
}

/// Reads a whole file. A last line without its newline that does not parse is torn
/// (reported, not an error).
pub(super) fn parse(bytes: &[u8]) -> Result<Cassette, CassetteError> {
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut index = Index::new();
    let mut recorder = None;
    let mut header_seen = false;
    let mut torn = None;
    for (n, raw) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let number = n + 1;
        let text = raw.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let fail = |message: String| CassetteError::Line {
            line: number,
            message,
        };
        let line: Line = match serde_json::from_slice(text) {
            Ok(line) => line,
            Err(_) if !raw.ends_with(b"\n") => {
                torn = Some(number);
                break;
            }
            Err(e) => return Err(fail(format!("not a JSON object of the format ({e})"))),
        };
        if !header_seen {
            let Some(version) = line.cassette else {
                return Err(fail(
                    "not a cassette: the first line must be {\"cassette\": 1, ..}".into(),
                ));
            };
            if version != FORMAT_VERSION {
                return Err(CassetteError::Version { found: version });
            }
            header_seen = true;
            recorder = line.recorder;
            continue;
        }
        read_line(line, &mut exchanges, &mut index).map_err(fail)?;
    }
    Ok(assemble(exchanges, recorder, torn))
}

/// Adds one exchange line to `exchanges`.
fn read_line(line: Line, exchanges: &mut Vec<Exchange>, index: &mut Index) -> Result<(), String> {
    let x = line.x.ok_or("the line names no exchange (\"x\")")?;
    if let Some(request) = line.request {
        if index.contains_key(&x) {
            return Err(format!("exchange {x} has a second request"));
        }
        let body = match (request.body, request.body_b64) {
            (Some(text), None) => Bytes::from(text),
            (None, Some(b64)) => Bytes::from(decode(&b64)?),
            (None, None) => Bytes::new(),
            (Some(_), Some(_)) => return Err("a request has both body and body_b64".into()),
        };
        index.insert(x, exchanges.len());
        exchanges.push(Exchange {
            id: x,
            request: Request {
                method: request.method,
                path: request.path,
                headers: request.headers.into_iter().collect(),
                body,
            },
            answer: None,
            chunks: Vec::new(),
            end: None,
        });
        return Ok(());
    }
    let exchange = index
        .get(&x)
        .and_then(|&i| exchanges.get_mut(i))
        .ok_or_else(|| format!("exchange {x} has no request line before this one"))?;
    let at = duration(line.t)?;
    if exchange.end.is_some() {
        return Err(format!("exchange {x} goes on after its end"));
    }
    if let Some(status) = line.status {
        if exchange.answer.is_some() {
            return Err(format!("exchange {x} has a second answer head"));
        }
        exchange.answer = Some(Answer {
            at,
            status,
            headers: line.headers.unwrap_or_default(),
        });
    } else if line.data.is_some() || line.b64.is_some() {
        if exchange.answer.is_none() {
            return Err(format!(
                "exchange {x} has a body chunk before its answer head"
            ));
        }
        let data = match (line.data, line.b64) {
            (Some(text), None) => Bytes::from(text),
            (None, Some(b64)) => Bytes::from(decode(&b64)?),
            _ => return Err("a chunk has both data and b64".into()),
        };
        exchange.chunks.push(Chunk { at, data });
    } else if let Some(end) = line.end {
        let how = Ending::parse(&end).ok_or_else(|| {
            format!("unknown end {end:?} (complete, reset, dropped, stalled or unsent)")
        })?;
        exchange.end = Some(End {
            at,
            how,
            error: line.error,
            omitted: line.omitted,
        });
    } else {
        return Err("the line is none of request, status, data, b64 or end".into());
    }
    Ok(())
}

fn decode(b64: &str) -> Result<Vec<u8>, String> {
    BASE64
        .decode(b64.trim())
        .map_err(|e| format!("invalid base64 ({e})"))
}

fn duration(t: Option<f64>) -> Result<Duration, String> {
    let t = t.ok_or("the line has no time (\"t\")")?;
    Duration::try_from_secs_f64(t / 1000.0)
        .map_err(|_| format!("the time {t} is not a number of milliseconds from 0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Cassette {
        assemble(
            vec![Exchange {
                id: 7,
                request: Request {
                    method: "POST".into(),
                    path: "/agent/generate".into(),
                    headers: vec![("accept".into(), "text/event-stream".into())],
                    body: Bytes::from_static(b"{\"prompt\":\"Build a blog\"}"),
                },
                answer: Some(Answer {
                    at: Duration::from_micros(12_345),
                    status: 200,
                    headers: vec![("content-type".into(), "text/event-stream".into())],
                }),
                chunks: vec![
                    Chunk {
                        at: Duration::from_millis(13),
                        data: Bytes::from_static(b"data: {\"type\":\"x\",\"m\":\"\xC3"),
                    },
                    Chunk {
                        at: Duration::from_millis(50),
                        data: Bytes::from_static(b"\xA9\"}\n\n"),
                    },
                ],
                end: Some(End {
                    at: Duration::from_millis(51),
                    how: Ending::Complete,
                    error: None,
                    omitted: None,
                }),
            }],
            Some("test".into()),
            None,
        )
    }

    #[test]
    fn a_cassette_survives_writing_and_reading_byte_for_byte() {
        let cassette = sample();
        let bytes = cassette.to_vec();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("{\"cassette\":1,\"recorder\":\"test\"}\n"),
            "{text}"
        );
        assert!(text.contains("\"t\":12.345,\"status\":200"), "{text}");
        assert!(text.contains("\"b64\":"), "{text}");
        assert_eq!(Cassette::parse(&bytes).unwrap(), cassette);
    }

    #[test]
    fn a_torn_last_line_is_reported_and_a_torn_middle_line_is_an_error() {
        let bytes = sample().to_vec();
        for cut in 1..bytes.len() {
            let Some(torn) = bytes.get(..cut) else {
                continue;
            };
            let read = Cassette::parse(torn).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let complete_lines = torn.iter().filter(|&&b| b == b'\n').count();
            if !torn.ends_with(b"\n") && read.torn_line().is_none() {
                // Only a cut right after a closing brace reads as a whole line.
                assert!(torn.ends_with(b"}"), "cut at {cut}");
            }
            if let Some(line) = read.torn_line() {
                assert_eq!(line, complete_lines + 1);
            }
        }
        let mut broken = b"{\"cassette\":1}\n{\"x\":1,\"req\n".to_vec();
        assert!(matches!(
            Cassette::parse(&broken),
            Err(CassetteError::Line { line: 2, .. })
        ));
        broken = b"{\"cassette\":2}\n".to_vec();
        assert!(matches!(
            Cassette::parse(&broken),
            Err(CassetteError::Version { found: 2 })
        ));
        assert!(matches!(
            Cassette::parse(b"{\"x\":1}\n"),
            Err(CassetteError::Line { line: 1, .. })
        ));
    }

    #[test]
    fn lines_out_of_place_are_named() {
        for (text, wanted) in [
            ("{\"x\":1,\"t\":1,\"status\":200}", "no request line"),
            (
                "{\"x\":1,\"request\":{\"method\":\"GET\",\"path\":\"/\"}}\n{\"x\":1,\"t\":1,\"data\":\"a\"}",
                "before its answer head",
            ),
            (
                "{\"x\":1,\"request\":{\"method\":\"GET\",\"path\":\"/\"}}\n{\"x\":1,\"t\":-1,\"status\":200}",
                "not a number of milliseconds",
            ),
            (
                "{\"x\":1,\"request\":{\"method\":\"GET\",\"path\":\"/\"}}\n{\"x\":1,\"t\":1,\"end\":\"later\"}",
                "unknown end",
            ),
        ] {
            let file = format!("{{\"cassette\":1}}\n{text}\n");
            let error = Cassette::parse(file.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(wanted), "{error}");
        }
    }
}
