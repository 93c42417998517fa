//! The events of one stream, produced one at a time: the default script, built from
//! a plain list of file paths, and custom scripts queued with `script_next`.

use serde::Serialize;
use serde_json::Value;

use super::state::ProjectStatus;

/// `container_progress` steps of a new project: percentage and message.
const CONTAINER_STEPS: [(u8, &str); 6] = [
    (10, "Provisioning container..."),
    (25, "Pulling base image..."),
    (40, "Installing Laravel..."),
    (60, "Installing dependencies..."),
    (80, "Configuring database..."),
    (100, "Starting services..."),
];

/// `project_created`, the container steps and `container_ready`.
const PRELUDE: usize = 1 + CONTAINER_STEPS.len() + 1;

/// The fewest events a new project's default script can have: its prelude and
/// `stream_end`.
pub(crate) const MIN_EVENTS: usize = PRELUDE + 1;

/// The events the mock writes itself, fields in the documented order (`type` first,
/// then `project_id` and `app_url`).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Wire<'a> {
    ProjectCreated {
        project_id: &'a str,
        app_url: &'a str,
    },
    ContainerProgress {
        message: &'a str,
        percentage: u8,
    },
    ContainerReady {
        message: &'a str,
    },
    ToolProgress {
        message: String,
        tool: &'a str,
    },
    FileCreated {
        path: &'a str,
        action: &'a str,
    },
    StreamEnd {
        project_id: &'a str,
        app_url: &'a str,
    },
    CreditsExhausted {
        project_id: &'a str,
        message: &'a str,
    },
}

/// What the stream must know about an event besides its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `project_created`, with its `project_id` (string or number) and `app_url`.
    ProjectCreated(Option<String>, Option<String>),
    /// `file_created` (it costs a credit), with its `path`.
    File(Option<String>),
    /// `stream_end` or `credits_exhausted`: the project's status once it is written.
    Terminal(ProjectStatus),
    Other,
}

/// One event: its JSON text (one line, no line break) and its kind.
#[derive(Clone)]
pub(crate) struct ScriptEvent {
    pub(crate) json: Vec<u8>,
    pub(crate) kind: Kind,
}

impl ScriptEvent {
    /// An event, classified by its `type`.
    pub(crate) fn new(json: Vec<u8>) -> Self {
        let value: Value = serde_json::from_slice(&json).unwrap_or_default();
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let kind = match value.get("type").and_then(Value::as_str) {
            Some("project_created") => {
                let id = match value.get("project_id") {
                    Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                Kind::ProjectCreated(id, text("app_url"))
            }
            Some("file_created") => Kind::File(text("path")),
            Some("stream_end") => Kind::Terminal(ProjectStatus::Ready),
            Some("credits_exhausted") => Kind::Terminal(ProjectStatus::CreditsExhausted),
            _ => Kind::Other,
        };
        ScriptEvent { json, kind }
    }

    /// An event the mock writes itself.
    pub(crate) fn wire(event: &Wire<'_>) -> Self {
        // Strings and integers only: serializing into a `Vec` cannot fail.
        ScriptEvent::new(serde_json::to_vec(event).unwrap_or_default())
    }
}

/// The events of one stream.
pub(crate) enum Script {
    /// Queued with `script_next`, sent as given.
    Custom(std::vec::IntoIter<ScriptEvent>),
    Default(DefaultScript),
}

impl Script {
    pub(crate) fn next_event(&mut self) -> Option<ScriptEvent> {
        match self {
            Script::Custom(events) => events.next(),
            Script::Default(script) => script.next_event(),
        }
    }
}

/// The default script of a new project or a follow-up: (`project_created`,
/// `container_progress`..., `container_ready`,) pairs of `tool_progress` and
/// `file_created` cycling over the files (`"action": "created"` the first time,
/// `"updated"` after), a final `tool_progress` when the count is odd, `stream_end`.
pub(crate) struct DefaultScript {
    project_id: String,
    app_url: String,
    prelude: usize,
    files: Vec<String>,
    total: usize,
    index: usize,
}

impl DefaultScript {
    /// A script of `events` events (at least the prelude and `stream_end`), or of its
    /// natural length: two events per file and a final command.
    pub(crate) fn new(
        project_id: String,
        app_url: String,
        new_project: bool,
        files: Vec<String>,
        events: Option<usize>,
    ) -> Self {
        let prelude = if new_project { PRELUDE } else { 0 };
        let natural = prelude + 2 * files.len() + 2;
        DefaultScript {
            total: events.unwrap_or(natural).max(prelude + 1),
            project_id,
            app_url,
            prelude,
            files,
            index: 0,
        }
    }

    fn next_event(&mut self) -> Option<ScriptEvent> {
        let i = self.index;
        if i >= self.total {
            return None;
        }
        self.index += 1;
        let (project_id, app_url) = (self.project_id.as_str(), self.app_url.as_str());
        let event = if i + 1 == self.total {
            Wire::StreamEnd {
                project_id,
                app_url,
            }
        } else if i >= self.prelude {
            return Some(self.generation_event(i - self.prelude));
        } else if i == 0 {
            Wire::ProjectCreated {
                project_id,
                app_url,
            }
        } else if let Some((percentage, message)) = CONTAINER_STEPS.get(i - 1) {
            Wire::ContainerProgress {
                message,
                percentage: *percentage,
            }
        } else {
            Wire::ContainerReady {
                message: "Container ready. Starting AI generation...",
            }
        };
        Some(ScriptEvent::wire(&event))
    }

    /// Generation event `j`: a `tool_progress`/`file_created` pair per file, or the
    /// final command.
    fn generation_event(&self, j: usize) -> ScriptEvent {
        let count = self.total - self.prelude - 1;
        if count % 2 == 1 && j + 1 == count {
            let command = if self.prelude > 0 {
                "php artisan migrate"
            } else {
                "npm run build"
            };
            return ScriptEvent::wire(&Wire::ToolProgress {
                message: format!("Running {command}"),
                tool: "run_command",
            });
        }
        let pair = j / 2;
        let path = match self.files.get(pair % self.files.len().max(1)) {
            Some(path) => path.as_str(),
            None => "routes/web.php",
        };
        if j.is_multiple_of(2) {
            return ScriptEvent::wire(&Wire::ToolProgress {
                message: format!("Writing {path}"),
                tool: "write_file",
            });
        }
        let action = if pair < self.files.len() {
            "created"
        } else {
            "updated"
        };
        ScriptEvent::wire(&Wire::FileCreated { path, action })
    }
}
