//! Wire decoding: one `data` payload of the stream to a typed [`Event`], in one pass
//! and without a second parse of the JSON.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{
    ContainerProgress, ContainerReady, Event, FileCreated, ProjectCreated, StreamEnd, ToolProgress,
    UnknownEvent,
};
use crate::ProjectId;

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
