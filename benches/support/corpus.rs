//! A deterministic event stream shaped like real generation traffic, and the types the
//! peer stack and the serde_json floor decode it into.
//!
//! Mix: about 70% short progress events (~90 bytes), 25% `file_created` events of
//! 300-2,000 bytes whose `content` is PHP source full of JSON escapes, 5% other types
//! (`project_created`, `container_ready`, an unknown type), then `stream_end`.
#![allow(dead_code, reason = "each benchmark uses a different part")]

use serde::Deserialize;

/// How events are laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `data: {..}\n\n`, one line per event.
    Lf,
    /// CRLF line ends, and every event's JSON split over several `data:` lines (one
    /// per top-level field), which the reader joins with `\n`.
    CrlfMultiLine,
}

impl Style {
    pub fn name(self) -> &'static str {
        match self {
            Style::Lf => "lf",
            Style::CrlfMultiLine => "crlf_multiline",
        }
    }
}

/// The stream bytes and the JSON payload of every event (as joined by a reader).
pub struct Corpus {
    pub bytes: Vec<u8>,
    pub payloads: Vec<String>,
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const STEPS: &[&str] = &[
    "Installing Laravel...",
    "Installing npm dependencies...",
    "Running migrations...",
    "Configuring the database...",
    "Building front-end assets...",
];
const TOOLS: &[&str] = &["write_file", "read_file", "run_command", "search_code"];
const DIRS: &[&str] = &[
    "app/Models",
    "app/Http/Controllers",
    "database/migrations",
    "resources/views/tasks",
    "routes",
];
/// PHP source lines: quotes, backslashes, tabs and a non-ASCII character, so the
/// JSON strings carry every common escape.
const PHP: &[&str] = &[
    "<?php",
    "",
    "namespace App\\Http\\Controllers;",
    "use Illuminate\\Http\\Request;",
    "class TaskController extends Controller",
    "{",
    "\tpublic function index(Request $request)",
    "\t{",
    "\t\t$tasks = Task::where(\"user_id\", $request->user()->id)->latest()->get();",
    "\t\treturn view(\"tasks.index\", ['tasks' => $tasks, 'title' => \"Tâches\"]);",
    "\t}",
    "}",
];

/// A JSON object as its top-level fields (`"key":value`), joined on output.
type Fields = Vec<String>;

fn string(value: &str) -> String {
    serde_json::to_string(value).expect("a string always serializes")
}

fn field(key: &str, value: String) -> String {
    format!("{}:{value}", string(key))
}

fn progress(rng: &mut Rng, i: usize) -> Fields {
    if rng.below(2) == 0 {
        let step = STEPS[rng.below(STEPS.len() as u64) as usize];
        vec![
            field("type", string("container_progress")),
            field("message", string(&format!("{step} ({i})"))),
            field("percentage", rng.below(101).to_string()),
        ]
    } else {
        let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
        vec![
            field("type", string("tool_progress")),
            field("tool", string(tool)),
            field("message", string(&format!("step {i} of the plan"))),
        ]
    }
}

fn file_created(rng: &mut Rng, i: usize) -> Fields {
    let dir = DIRS[rng.below(DIRS.len() as u64) as usize];
    let target = 300 + rng.below(1_700) as usize;
    let mut content = String::new();
    let mut line = rng.below(PHP.len() as u64) as usize;
    // The escaped JSON is a little longer than the text: stop short of the target.
    while content.len() + 120 < target {
        content.push_str(PHP[line % PHP.len()]);
        content.push('\n');
        line += 1;
    }
    vec![
        field("type", string("file_created")),
        field("path", string(&format!("{dir}/File{i}.php"))),
        field("content", string(&content)),
        field("bytes", content.len().to_string()),
    ]
}

fn other(rng: &mut Rng, i: usize) -> Fields {
    match rng.below(3) {
        0 => vec![
            field("type", string("project_created")),
            field("project_id", string(&format!("p{i:06}"))),
            field(
                "app_url",
                string(&format!("https://p{i:06}.laracopilot.com")),
            ),
        ],
        1 => vec![
            field("type", string("container_ready")),
            field(
                "message",
                string("Container ready. Starting AI generation..."),
            ),
        ],
        _ => vec![
            field("type", string("deploy_started")),
            field("at", (1_700_000_000 + i).to_string()),
            field("region", string("eu-west")),
        ],
    }
}

fn stream_end() -> Fields {
    vec![
        field("type", string("stream_end")),
        field("project_id", string("p000000")),
        field("app_url", string("https://p000000.laracopilot.com")),
    ]
}

/// Writes one event; returns its payload as a reader joins it.
fn write(out: &mut Vec<u8>, style: Style, fields: &Fields) -> String {
    match style {
        Style::Lf => {
            let json = format!("{{{}}}", fields.join(","));
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(json.as_bytes());
            out.extend_from_slice(b"\n\n");
            json
        }
        Style::CrlfMultiLine => {
            let last = fields.len() - 1;
            let lines: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(n, f)| {
                    let open = if n == 0 { "{" } else { "" };
                    let close = if n == last { "}" } else { "," };
                    format!("{open}{f}{close}")
                })
                .collect();
            for line in &lines {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            lines.join("\n")
        }
    }
}

/// About `target` bytes of stream, ending with `stream_end`.
pub fn corpus(style: Style, target: usize) -> Corpus {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut bytes = Vec::with_capacity(target + 4096);
    let mut payloads = Vec::new();
    let mut i = 0;
    while bytes.len() < target {
        let roll = rng.below(100);
        let fields = if roll < 70 {
            progress(&mut rng, i)
        } else if roll < 95 {
            file_created(&mut rng, i)
        } else {
            other(&mut rng, i)
        };
        payloads.push(write(&mut bytes, style, &fields));
        i += 1;
    }
    payloads.push(write(&mut bytes, style, &stream_end()));
    Corpus { bytes, payloads }
}

/// The peer stack's event type: what async-openai-style SDKs declare, an internally
/// tagged enum with the same fields as ours.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code, reason = "fields are decoded to be measured, not read")]
pub enum PeerEvent {
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
    #[serde(other)]
    Unknown,
}

/// The floor: one flat struct with every field our events use, owned, decoded by
/// serde_json's derived fast path (no SSE, no tag buffering, no raw copy).
#[derive(Debug, Deserialize)]
#[allow(dead_code, reason = "fields are decoded to be measured, not read")]
pub struct FloorWire {
    #[serde(rename = "type")]
    pub kind: String,
    pub project_id: Option<String>,
    pub app_url: Option<String>,
    pub message: Option<String>,
    pub percentage: Option<f64>,
    pub path: Option<String>,
    pub file_path: Option<String>,
    pub file: Option<String>,
    pub filename: Option<String>,
    pub tool: Option<String>,
}
