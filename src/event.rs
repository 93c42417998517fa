//! Events of a generation stream, their payloads, and the project id.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The id of a LaraCopilot project (`"abc123"`).
///
/// Opaque: the API gives it as a string, and a JSON number is accepted too (kept as
/// its decimal text). Cloning is cheap.
///
/// ```
/// let id = laracopilot::ProjectId::from("abc123");
/// assert_eq!(id.as_str(), "abc123");
/// assert_eq!(id.to_string(), "abc123");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(Arc<str>);

impl ProjectId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ProjectId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ProjectId {
    fn from(value: &str) -> Self {
        ProjectId(value.into())
    }
}

impl From<String> for ProjectId {
    fn from(value: String) -> Self {
        ProjectId(value.into())
    }
}

impl From<&ProjectId> for ProjectId {
    fn from(value: &ProjectId) -> Self {
        value.clone()
    }
}

impl From<&String> for ProjectId {
    fn from(value: &String) -> Self {
        ProjectId(value.as_str().into())
    }
}

impl PartialEq<str> for ProjectId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ProjectId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl Serialize for ProjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = ProjectId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a project id (string or integer)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProjectId, E> {
                Ok(ProjectId::from(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ProjectId, E> {
                Ok(ProjectId::from(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ProjectId, E> {
                Ok(ProjectId::from(v.to_string()))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// One event of a generation stream.
///
/// Every event keeps the raw JSON text it was decoded from ([`Event::raw_json`]), so
/// fields the documentation does not list stay reachable. Event types this version
/// does not know arrive as [`Event::Unknown`] rather than as an error.
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
}

impl Event {
    /// The event's `type` as on the wire, e.g. `"container_progress"`.
    pub fn type_name(&self) -> &str {
        match self {
            Event::ProjectCreated(_) => "project_created",
            Event::ContainerProgress(_) => "container_progress",
            Event::ContainerReady(_) => "container_ready",
            Event::FileCreated(_) => "file_created",
            Event::ToolProgress(_) => "tool_progress",
            Event::StreamEnd(_) => "stream_end",
            Event::Unknown(e) => &e.type_name,
        }
    }

    /// The JSON object of the event exactly as received.
    pub fn raw_json(&self) -> &str {
        match self {
            Event::ProjectCreated(e) => &e.raw,
            Event::ContainerProgress(e) => &e.raw,
            Event::ContainerReady(e) => &e.raw,
            Event::FileCreated(e) => &e.raw,
            Event::ToolProgress(e) => &e.raw,
            Event::StreamEnd(e) => &e.raw,
            Event::Unknown(e) => &e.raw,
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

raw_accessor!(
    ProjectCreated,
    ContainerProgress,
    ContainerReady,
    FileCreated,
    ToolProgress,
    StreamEnd,
    UnknownEvent
);

/// What one `data` payload of the stream decodes to.
#[derive(Debug)]
pub(crate) enum Decoded {
    Event(Event),
    /// `credits_exhausted`, with the raw JSON.
    CreditsExhausted(String),
}

/// Every field any known event uses, decoded in one pass; fields not named here are
/// skipped without being built.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    project_id: Option<Lenient>,
    app_url: Option<Lenient>,
    message: Option<Lenient>,
    percentage: Option<Percentage>,
    path: Option<Lenient>,
    file_path: Option<Lenient>,
    file: Option<Lenient>,
    filename: Option<Lenient>,
    tool: Option<Lenient>,
}

/// Decodes one event from its JSON text. The text is kept as the event's raw JSON.
pub(crate) fn decode_event(data: &str) -> Result<Decoded, serde_json::Error> {
    let wire: Wire<'_> = serde_json::from_str(data)?;
    let raw = || Box::<str>::from(data);
    let text = |v: Option<Lenient>| v.and_then(Lenient::text);
    // Required where documented (`project_created`); elsewhere an id of another shape
    // is left out rather than failing the event.
    let project_id = wire.project_id.and_then(Lenient::id);
    let event = match &*wire.kind {
        "project_created" => match project_id {
            Some(project_id) => Event::ProjectCreated(ProjectCreated {
                project_id,
                app_url: text(wire.app_url),
                raw: raw(),
            }),
            None => return Err(de::Error::missing_field("project_id")),
        },
        "container_progress" => Event::ContainerProgress(ContainerProgress {
            message: text(wire.message).unwrap_or_default(),
            percentage: wire.percentage.and_then(|p| p.0),
            raw: raw(),
        }),
        "container_ready" => Event::ContainerReady(ContainerReady {
            message: text(wire.message).unwrap_or_default(),
            raw: raw(),
        }),
        "file_created" => Event::FileCreated(FileCreated {
            path: [wire.path, wire.file_path, wire.file, wire.filename]
                .into_iter()
                .find_map(text),
            raw: raw(),
        }),
        "tool_progress" => Event::ToolProgress(ToolProgress {
            message: text(wire.message),
            tool: text(wire.tool),
            raw: raw(),
        }),
        "stream_end" => Event::StreamEnd(StreamEnd {
            project_id,
            app_url: text(wire.app_url),
            raw: raw(),
        }),
        "credits_exhausted" => return Ok(Decoded::CreditsExhausted(data.to_owned())),
        other => Event::Unknown(UnknownEvent {
            type_name: other.to_owned(),
            raw: raw(),
        }),
    };
    Ok(Decoded::Event(event))
}

/// A field of any JSON type: a string or an integer is kept, anything else is
/// noted and skipped, so an unexpected shape never fails the event.
enum Lenient {
    Text(String),
    /// An integer, as its decimal text.
    Integer(String),
    Other,
}

impl Lenient {
    /// The value when it is a string.
    fn text(self) -> Option<String> {
        match self {
            Lenient::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The value as a project id: a string or an integer, as on the wire.
    fn id(self) -> Option<ProjectId> {
        match self {
            Lenient::Text(text) | Lenient::Integer(text) => Some(ProjectId::from(text)),
            Lenient::Other => None,
        }
    }
}

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                Ok(Lenient::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Lenient, E> {
                Ok(Lenient::Text(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lenient, E> {
                Ok(Lenient::Integer(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lenient, E> {
                Ok(Lenient::Integer(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `percentage`: a number, or a string holding one; `None` for anything else.
struct Percentage(Option<f64>);

impl<'de> Deserialize<'de> for Percentage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Percentage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Percentage, E> {
                Ok(Percentage(Some(v as f64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Percentage, E> {
                Ok(Percentage(Some(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Percentage, E> {
                Ok(Percentage(Some(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Percentage, E> {
                Ok(Percentage(v.trim().trim_end_matches('%').parse().ok()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Percentage, E> {
                Ok(Percentage(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Percentage, E> {
                Ok(Percentage(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Percentage, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Percentage(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Percentage, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Percentage(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> Event {
        match decode_event(data).unwrap() {
            Decoded::Event(e) => e,
            Decoded::CreditsExhausted(_) => panic!("unexpected credits_exhausted"),
        }
    }

    #[test]
    fn project_id_accepts_a_string_or_a_number() {
        let from_str: ProjectId = serde_json::from_str("\"abc123\"").unwrap();
        let from_num: ProjectId = serde_json::from_str("42").unwrap();
        assert_eq!(from_str, "abc123");
        assert_eq!(from_num, "42");
        assert!(serde_json::from_str::<ProjectId>("{}").is_err());
    }

    #[test]
    fn undocumented_fields_of_any_shape_do_not_fail_decoding() {
        let e = event(
            r#"{"type":"file_created","path":{"nested":[1,2]},"file":"app/Models/Task.php","extra":[null,{"a":1}]}"#,
        );
        let Event::FileCreated(f) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(f.path.as_deref(), Some("app/Models/Task.php"));
        assert!(f.raw_json().contains("\"extra\""));
    }

    #[test]
    fn missing_undocumented_fields_are_none() {
        let e = event(r#"{"type":"tool_progress"}"#);
        assert!(matches!(
            e,
            Event::ToolProgress(ToolProgress {
                message: None,
                tool: None,
                ..
            })
        ));
        let e = event(r#"{"type":"container_progress","message":"x","percentage":"55%"}"#);
        let Event::ContainerProgress(p) = e else {
            panic!()
        };
        assert_eq!(p.percentage, Some(55.0));
    }

    #[test]
    fn unknown_types_are_kept_with_their_json() {
        let e = event(r#"{"type":"deploy_started","at":1}"#);
        assert_eq!(e.type_name(), "deploy_started");
        assert_eq!(e.raw_json(), r#"{"type":"deploy_started","at":1}"#);
    }

    #[test]
    fn project_created_without_id_is_an_error() {
        assert!(decode_event(r#"{"type":"project_created"}"#).is_err());
        assert!(decode_event(r#"{"no_type":1}"#).is_err());
        assert!(decode_event("[1]").is_err());
    }
}
