//! Events of a generation stream and their payloads.

use crate::{Error, ProjectId, Result};

mod wire;

pub(crate) use wire::{decode_event, Decoded};

/// One event of a generation stream.
///
/// Every event keeps the raw JSON text it was decoded from ([`Event::raw_json`]), so
/// fields the documentation does not list stay reachable. Event types this version
/// does not know arrive as [`Event::Unknown`], and a payload it cannot make sense of
/// (`data: ping`, a `project_created` without an id, ...) as [`Event::Malformed`]:
/// never as an error, so that an `Err` item always ends the stream.
/// `credits_exhausted` is not an event: it ends the stream as
/// [`Error::CreditsExhausted`](crate::Error::CreditsExhausted).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `project_created`: the first event of a new project.
    ProjectCreated(ProjectCreated),
    /// `container_progress`: set-up of the project's container.
    ContainerProgress(ContainerProgress),
    /// `container_ready`: the container is ready and AI generation starts.
    ContainerReady(ContainerReady),
    /// `file_created`: a file was generated or modified.
    FileCreated(FileCreated),
    /// `tool_progress`: progress of the agent's tool runs.
    ToolProgress(ToolProgress),
    /// `stream_end`: the generation finished successfully; the last event.
    StreamEnd(StreamEnd),
    /// An event type this version of the SDK does not know.
    Unknown(UnknownEvent),
    /// A payload this version of the SDK cannot make sense of: not a JSON object, no
    /// `type`, or a documented event without the field it cannot do without. It keeps
    /// the text and says why; the stream goes on.
    Malformed(MalformedEvent),
}

impl Event {
    /// Decodes one event from the JSON text of a `data:` line, exactly as a stream
    /// does: to unit-test an event handler without a server.
    ///
    /// ```
    /// use laracopilot::Event;
    ///
    /// let event = Event::from_json(r#"{"type":"file_created","path":"app/Models/Task.php"}"#)?;
    /// assert!(matches!(&event, Event::FileCreated(f) if f.path.as_deref() == Some("app/Models/Task.php")));
    /// // Text the SDK cannot make sense of is an event too, never an error.
    /// assert!(matches!(Event::from_json("ping")?, Event::Malformed(_)));
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::CreditsExhausted`] for a `credits_exhausted` payload, the one that
    /// ends a stream as an error; every other text is an `Ok` event.
    pub fn from_json(json: &str) -> Result<Event> {
        match decode_event(json) {
            Decoded::Event(event) => Ok(event),
            Decoded::CreditsExhausted(raw) => Err(Error::CreditsExhausted {
                raw,
                locally: false,
                until: None,
                context: crate::error::ErrorContext::default(),
            }),
        }
    }

    /// The event's `type` as on the wire, e.g. `"container_progress"`; empty for a
    /// malformed event that names none.
    pub fn type_name(&self) -> &str {
        match self {
            Event::ProjectCreated(_) => "project_created",
            Event::ContainerProgress(_) => "container_progress",
            Event::ContainerReady(_) => "container_ready",
            Event::FileCreated(_) => "file_created",
            Event::ToolProgress(_) => "tool_progress",
            Event::StreamEnd(_) => "stream_end",
            Event::Unknown(e) => &e.type_name,
            Event::Malformed(e) => e.type_name.as_deref().unwrap_or_default(),
        }
    }

    /// The JSON object of the event exactly as received (for a malformed event, its
    /// text, which may not be JSON at all).
    pub fn raw_json(&self) -> &str {
        match self {
            Event::ProjectCreated(e) => &e.raw,
            Event::ContainerProgress(e) => &e.raw,
            Event::ContainerReady(e) => &e.raw,
            Event::FileCreated(e) => &e.raw,
            Event::ToolProgress(e) => &e.raw,
            Event::StreamEnd(e) => &e.raw,
            Event::Unknown(e) => &e.raw,
            Event::Malformed(e) => &e.raw,
        }
    }
}

macro_rules! raw_accessor {
    ($($name:ident),*) => {$(
        impl $name {
            /// The JSON object of the event exactly as received, with any fields the
            /// documentation does not list.
            pub fn raw_json(&self) -> &str {
                &self.raw
            }
        }
    )*};
}

/// Payload of `project_created`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProjectCreated {
    /// The new project's id: keep it for follow-ups and polling.
    pub project_id: ProjectId,
    /// Where the application will be served, e.g. `https://abc123.laracopilot.com`.
    pub app_url: Option<String>,
    raw: Box<str>,
}

/// Payload of `container_progress`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ContainerProgress {
    /// A human-readable step, e.g. `"Installing Laravel..."`.
    pub message: String,
    /// Progress in percent (e.g. `40.0`), when given.
    pub percentage: Option<f64>,
    raw: Box<str>,
}

/// Payload of `container_ready`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ContainerReady {
    /// A human-readable message, e.g. `"Container ready. Starting AI generation..."`.
    pub message: String,
    raw: Box<str>,
}

/// Payload of `file_created`. The documentation lists no fields for this event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FileCreated {
    /// The file's path, taken from the first string field among `path`, `file_path`,
    /// `file` and `filename`; `None` when the event carries none of them. The full
    /// event is in [`FileCreated::raw_json`].
    pub path: Option<String>,
    /// The `action` field, when the event carries one as a string (the offline
    /// LaraCopilot sends `"created"` or `"modified"`).
    pub action: Option<String>,
    raw: Box<str>,
}

/// Payload of `tool_progress`. The documentation lists no fields for this event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolProgress {
    /// The `message` field, when the event carries one as a string.
    pub message: Option<String>,
    /// The `tool` field, when the event carries one as a string.
    pub tool: Option<String>,
    raw: Box<str>,
}

/// Payload of `stream_end`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamEnd {
    /// The project's id, when the event carries it.
    pub project_id: Option<ProjectId>,
    /// Where the finished application is served, when the event carries it.
    pub app_url: Option<String>,
    raw: Box<str>,
}

/// An event whose `type` this version of the SDK does not know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UnknownEvent {
    /// The event's `type` as on the wire.
    pub type_name: String,
    raw: Box<str>,
}

/// A payload of the stream this version of the SDK cannot make sense of.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MalformedEvent {
    /// The `type` it named, when it named one as a string.
    pub type_name: Option<String>,
    /// Why it was not understood, e.g. `"not JSON"`.
    pub reason: String,
    raw: Box<str>,
}

raw_accessor!(
    ProjectCreated,
    ContainerProgress,
    ContainerReady,
    FileCreated,
    ToolProgress,
    StreamEnd,
    UnknownEvent,
    MalformedEvent
);
