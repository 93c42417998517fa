//! The event-stream generators and the typed model the decoder tests share: what
//! the reader yields in a comparable form ([`Item`]), generated event sequences with
//! the items they must decode to ([`Generated`], [`expected`]), their framing as an
//! event stream ([`Framing`]), noisy bytes, chunkings ([`split`]), and the decoder
//! invariants ([`check`], shared with the fuzz targets).

pub mod check;

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

use laracopilot::{Error, Event};

pub const KNOWN_TYPES: &[&str] = &[
    "project_created",
    "container_progress",
    "container_ready",
    "file_created",
    "tool_progress",
    "stream_end",
    "credits_exhausted",
];

/// 256 cases per property; a failure prints its minimal input rather than writing a
/// regressions file into the shared tree.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------
// What the reader yields, in a comparable form.

#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    ProjectCreated {
        project_id: String,
        app_url: Option<String>,
    },
    ContainerProgress {
        message: String,
        percentage: Option<f64>,
    },
    ContainerReady {
        message: String,
    },
    FileCreated {
        path: Option<String>,
    },
    ToolProgress {
        message: Option<String>,
        tool: Option<String>,
    },
    StreamEnd {
        project_id: Option<String>,
        app_url: Option<String>,
    },
    Unknown {
        type_name: String,
    },
    Malformed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Event {
        typed: Typed,
        raw: String,
    },
    CreditsExhausted {
        project_id: Option<String>,
        raw: String,
    },
    Incomplete {
        project_id: Option<String>,
        events: u64,
    },
    TooLarge {
        limit: usize,
        project_id: Option<String>,
    },
    Other(String),
}

impl Item {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Item::Event {
                typed: Typed::StreamEnd { .. },
                ..
            } | Item::CreditsExhausted { .. }
                | Item::Incomplete { .. }
                | Item::TooLarge { .. }
        )
    }
}

fn id(p: Option<&laracopilot::ProjectId>) -> Option<String> {
    p.map(|p| p.as_str().to_owned())
}

pub fn item(result: laracopilot::Result<Event>) -> Item {
    let error = match result {
        Ok(event) => return typed(event),
        Err(error) => error,
    };
    let project_id = id(error.project_id());
    match error {
        Error::CreditsExhausted { raw, .. } => Item::CreditsExhausted { project_id, raw },
        Error::Incomplete { events, .. } => Item::Incomplete { project_id, events },
        Error::EventTooLarge { limit, .. } => Item::TooLarge { limit, project_id },
        other => Item::Other(format!("{other:?}")),
    }
}

/// How a test names an event it got.
fn typed(event: Event) -> Item {
    let raw = event.raw_json().to_owned();
    let typed = match event {
        Event::ProjectCreated(e) => Typed::ProjectCreated {
            project_id: e.project_id.as_str().to_owned(),
            app_url: e.app_url,
        },
        Event::ContainerProgress(e) => Typed::ContainerProgress {
            message: e.message,
            percentage: e.percentage,
        },
        Event::ContainerReady(e) => Typed::ContainerReady { message: e.message },
        Event::FileCreated(e) => Typed::FileCreated { path: e.path },
        Event::ToolProgress(e) => Typed::ToolProgress {
            message: e.message,
            tool: e.tool,
        },
        Event::StreamEnd(e) => Typed::StreamEnd {
            project_id: id(e.project_id.as_ref()),
            app_url: e.app_url,
        },
        Event::Unknown(e) => Typed::Unknown {
            type_name: e.type_name,
        },
        Event::Malformed(_) => Typed::Malformed,
        other => return Item::Other(format!("{other:?}")),
    };
    Item::Event { typed, raw }
}

/// The items the reader yields for `chunks` under `cap`, checked by [`check::read`],
/// with the facts the stream adds to them as a `Generation` hands them out (the
/// reader leaves those to it): its errors name the project known so far, and
/// `Incomplete` counts the events handed out before it.
pub fn read(chunks: &[&[u8]], cap: usize) -> Vec<Item> {
    let mut known: Option<String> = None;
    let mut delivered = 0;
    check::read(chunks, cap)
        .into_iter()
        .map(|result| {
            let mut item = item(result);
            match &mut item {
                Item::Event { typed, .. } => {
                    delivered += 1;
                    match typed {
                        Typed::ProjectCreated { project_id, .. } => {
                            known = Some(project_id.clone());
                        }
                        Typed::StreamEnd {
                            project_id: Some(project_id),
                            ..
                        } => known = Some(project_id.clone()),
                        _ => {}
                    }
                }
                Item::Incomplete { project_id, events } => {
                    *project_id = known.clone();
                    *events = delivered;
                }
                Item::CreditsExhausted { project_id, .. } | Item::TooLarge { project_id, .. } => {
                    *project_id = known.clone();
                }
                Item::Other(_) => {}
            }
            item
        })
        .collect()
}

/// `bytes` cut at `cuts` (each taken modulo the length plus one), in order.
pub fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}

pub fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..12)
}

// ---------------------------------------------------------------------------------
// Generated events: their JSON text and what they must decode to.

#[derive(Debug, Clone)]
pub enum Kind {
    ProjectCreated(Value, Option<String>),
    ContainerProgress(String, Value),
    ContainerReady(String),
    FileCreated(Option<&'static str>, String),
    ToolProgress(Option<String>, Option<String>),
    StreamEnd(Option<Value>, Option<String>),
    CreditsExhausted,
    Unknown(String),
    Undecodable(&'static str),
}

#[derive(Debug, Clone)]
pub struct Generated {
    pub kind: Kind,
    /// An undocumented field (never one the SDK reads).
    pub extra: Option<(&'static str, Value)>,
    pub pretty: bool,
}

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z{}]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(Map::from_iter(m))),
        ]
    })
}

/// A project id as the API may send it: a string or a number.
fn project_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        string().prop_map(Value::from),
        any::<u64>().prop_map(Value::from)
    ]
}

/// A `percentage` of every shape: numbers, numeric strings, and junk (`None`).
fn percentage() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u32..400).prop_map(|q| json!(f64::from(q) / 4.0)),
        (0u32..=100).prop_map(|n| json!(n)),
        (0u32..=100).prop_map(|n| json!(format!(" {n}% "))),
        Just(Value::Null),
        Just(json!("soon")),
        Just(json!([40])),
        Just(json!({"value": 40})),
        Just(json!(true)),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    let url = || prop::option::of(string());
    prop_oneof![
        1 => (project_id(), url()).prop_map(|(p, u)| Kind::ProjectCreated(p, u)),
        3 => (string(), percentage()).prop_map(|(m, p)| Kind::ContainerProgress(m, p)),
        1 => string().prop_map(Kind::ContainerReady),
        3 => (
            prop::option::of(select(&["path", "file_path", "file", "filename"][..])),
            string(),
        )
            .prop_map(|(k, p)| Kind::FileCreated(k, p)),
        3 => (prop::option::of(string()), prop::option::of(string()))
            .prop_map(|(m, t)| Kind::ToolProgress(m, t)),
        1 => (prop::option::of(project_id()), url()).prop_map(|(p, u)| Kind::StreamEnd(p, u)),
        1 => Just(Kind::CreditsExhausted),
        2 => string()
            .prop_filter("an unknown type", |t| !KNOWN_TYPES.contains(&t.as_str()))
            .prop_map(Kind::Unknown),
        1 => select(
            &[
                r#"{"no_type":1}"#,
                r#"{"type":"project_created"}"#,
                r#"{"type":5}"#,
                r#"{"type":"file_created",}"#,
                "{}",
            ][..]
        )
        .prop_map(Kind::Undecodable),
    ]
}

pub fn generated() -> impl Strategy<Value = Generated> {
    (
        kind(),
        prop::option::of((
            select(&["extra", "meta", "x_trace", "step"][..]),
            json_value(),
        )),
        any::<bool>(),
    )
        .prop_map(|(kind, extra, pretty)| Generated {
            kind,
            extra,
            pretty,
        })
}

impl Generated {
    pub fn json(&self) -> String {
        let mut object = Map::new();
        let mut put = |k: &str, v: Value| {
            object.insert(k.to_owned(), v);
        };
        let type_name = match &self.kind {
            Kind::ProjectCreated(p, u) => {
                put("project_id", p.clone());
                if let Some(u) = u {
                    put("app_url", json!(u));
                }
                "project_created"
            }
            Kind::ContainerProgress(m, p) => {
                put("message", json!(m));
                put("percentage", p.clone());
                "container_progress"
            }
            Kind::ContainerReady(m) => {
                put("message", json!(m));
                "container_ready"
            }
            Kind::FileCreated(k, p) => {
                if let Some(k) = k {
                    put(k, json!(p));
                }
                "file_created"
            }
            Kind::ToolProgress(m, t) => {
                if let Some(m) = m {
                    put("message", json!(m));
                }
                if let Some(t) = t {
                    put("tool", json!(t));
                }
                "tool_progress"
            }
            Kind::StreamEnd(p, u) => {
                if let Some(p) = p {
                    put("project_id", p.clone());
                }
                if let Some(u) = u {
                    put("app_url", json!(u));
                }
                "stream_end"
            }
            Kind::CreditsExhausted => "credits_exhausted",
            Kind::Unknown(t) => t,
            Kind::Undecodable(text) => return (*text).to_owned(),
        };
        put("type", json!(type_name));
        if let Some((k, v)) = &self.extra {
            put(k, v.clone());
        }
        let value = Value::Object(object);
        if self.pretty {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        }
        .expect("a JSON value serializes")
    }
}

fn id_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn percentage_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').parse().ok(),
        _ => None,
    }
}

/// The items the reader must yield for `events`: up to the first terminal one, or
/// ending with `Incomplete`.
pub fn expected(events: &[Generated]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut project_id: Option<String> = None;
    let mut delivered = 0;
    for event in events {
        let raw = event.json();
        let typed = match &event.kind {
            Kind::ProjectCreated(p, u) => {
                project_id = Some(id_text(p));
                Typed::ProjectCreated {
                    project_id: id_text(p),
                    app_url: u.clone(),
                }
            }
            Kind::ContainerProgress(m, p) => Typed::ContainerProgress {
                message: m.clone(),
                percentage: percentage_of(p),
            },
            Kind::ContainerReady(m) => Typed::ContainerReady { message: m.clone() },
            Kind::FileCreated(k, p) => Typed::FileCreated {
                path: k.map(|_| p.clone()),
            },
            Kind::ToolProgress(m, t) => Typed::ToolProgress {
                message: m.clone(),
                tool: t.clone(),
            },
            Kind::StreamEnd(p, u) => {
                project_id = p.as_ref().map(id_text).or(project_id);
                Typed::StreamEnd {
                    project_id: p.as_ref().map(id_text),
                    app_url: u.clone(),
                }
            }
            Kind::Unknown(t) => Typed::Unknown {
                type_name: t.clone(),
            },
            Kind::CreditsExhausted => {
                items.push(Item::CreditsExhausted { project_id, raw });
                return items;
            }
            Kind::Undecodable(_) => Typed::Malformed,
        };
        delivered += 1;
        let end = matches!(typed, Typed::StreamEnd { .. });
        items.push(Item::Event { typed, raw });
        if end {
            return items;
        }
    }
    items.push(Item::Incomplete {
        project_id,
        events: delivered,
    });
    items
}

// ---------------------------------------------------------------------------------
// Framing the events as an event stream.

#[derive(Debug, Clone)]
pub struct Framing {
    /// Blank lines between events (WHATWG), or the documented layout without them.
    pub blank_lines: bool,
    pub bom: bool,
    /// Line ends, used in turn.
    pub eols: Vec<&'static str>,
    /// A space after `data:`, used in turn.
    pub spaces: Vec<bool>,
    /// Noise around each event, used in turn (see `Framing::noise`).
    pub noise: Vec<u8>,
    /// 0: complete; 1: no blank line after the last event; 2: not even a line end.
    pub ending: u8,
}

pub fn framing() -> impl Strategy<Value = Framing> {
    (
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::collection::vec(select(&["\n", "\r", "\r\n"][..]), 1..6),
        prop::collection::vec(any::<bool>(), 1..4),
        prop::collection::vec(0u8..8, 1..6),
        0u8..3,
    )
        .prop_map(|(blank_lines, bom, eols, spaces, noise, ending)| Framing {
            blank_lines,
            bom,
            eols,
            spaces,
            noise,
            ending,
        })
}

struct Writer<'f> {
    framing: &'f Framing,
    out: String,
    lines: usize,
}

impl Writer<'_> {
    fn line(&mut self, text: &str) {
        self.out.push_str(text);
        let eol = self.framing.eols[self.lines % self.framing.eols.len()];
        self.lines += 1;
        // A LF right after a CR would merge with it into one line end.
        if eol == "\n" && self.out.ends_with('\r') {
            self.out.push_str("\r\n");
        } else {
            self.out.push_str(eol);
        }
    }

    fn data(&mut self, value: &str) {
        let space = self.framing.spaces[self.lines % self.framing.spaces.len()];
        // Without a space the decoder would strip the value's own leading space.
        let sep = if space || value.starts_with(' ') {
            "data: "
        } else {
            "data:"
        };
        self.line(&format!("{sep}{value}"));
    }
}

impl Framing {
    pub fn bytes(&self, events: &[Generated]) -> Vec<u8> {
        let mut w = Writer {
            framing: self,
            out: String::new(),
            lines: 0,
        };
        if self.bom {
            w.out.push('\u{feff}');
        }
        for (i, event) in events.iter().enumerate() {
            let noise = self.noise[i % self.noise.len()];
            match noise {
                1 => w.line(": keep-alive"),
                2 => w.line(":"),
                // Fields the reader ignores, and an empty keep-alive event; they need
                // blank lines around them.
                3 if self.blank_lines => w.line("event: progress"),
                4 if self.blank_lines => w.line(&format!("id: {i}")),
                5 if self.blank_lines => {
                    w.data("");
                    w.line("");
                }
                6 if self.blank_lines => w.line(""),
                _ => {}
            }
            let json = event.json();
            for (j, line) in json.split('\n').enumerate() {
                if j == 1 && noise == 7 {
                    w.line(": inside an event");
                }
                w.data(line);
            }
            let last = i + 1 == events.len();
            if self.blank_lines && !(last && self.ending > 0) {
                w.line("");
            }
        }
        let mut out = w.out.into_bytes();
        if self.ending == 2 && !events.is_empty() {
            while matches!(out.last(), Some(b'\r' | b'\n')) {
                out.pop();
            }
        }
        out
    }
}

/// Pieces of event-stream syntax, mixed with random bytes by `noisy_bytes`.
const TOKENS: &[&[u8]] = &[
    b"data:",
    b"data: ",
    b"event:",
    b"id: ",
    b"retry: 10",
    b": c",
    b"\n",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"{",
    b"}",
    b" ",
    b"\xEF\xBB\xBF",
    b"\xFF",
    b"\xE6\x97",
    b"{\"type\":\"stream_end\"}",
    b"{\"type\":\"credits_exhausted\"}",
    b"{\"type\":\"project_created\",\"project_id\":\"p1\"}",
    b"\"type\"",
];

/// Bytes biased toward the event-stream syntax, with random bytes in between.
pub fn noisy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        3 => any::<u8>().prop_map(|b| vec![b]),
        4 => select(TOKENS).prop_map(<[u8]>::to_vec),
        1 => (1usize..300).prop_map(|n| vec![b'x'; n]),
    ];
    prop::collection::vec(token, 0..120).prop_map(|t| t.concat())
}
