//! Wire decoding: one `data` payload of the stream to a typed [`Event`], in one pass
//! over the JSON and never failing: a payload this version cannot make sense of is an
//! [`Event::Malformed`] that keeps its text and says why.
//!
//! Decoding is lenient the way the API's documentation asks ("lenient on input"; see
//! [`crate::lenient`]): a field of an unexpected type is `None` (the raw JSON keeps
//! it), a key given twice takes its last value, a percentage that is not a finite
//! number is `None`, an integer project id keeps its digits as text.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{
    ContainerProgress, ContainerReady, Event, FileCreated, MalformedEvent, ProjectCreated,
    StreamEnd, ToolProgress, UnknownEvent,
};
use crate::lenient::{self, Lenient};

/// What one `data` payload of the stream decodes to.
#[derive(Debug)]
pub(crate) enum Decoded {
    Event(Event),
    /// `credits_exhausted`, with the raw JSON.
    CreditsExhausted(String),
}

/// Every field any known event uses, read in one pass; other fields are skipped
/// without being built. A later value of a key replaces an earlier one.
#[derive(Default)]
struct Wire<'a> {
    kind: Option<Lenient>,
    project_id: Option<&'a RawValue>,
    app_url: Option<Lenient>,
    message: Option<Lenient>,
    percentage: Option<&'a RawValue>,
    path: Option<Lenient>,
    file_path: Option<Lenient>,
    file: Option<Lenient>,
    filename: Option<Lenient>,
    tool: Option<Lenient>,
    action: Option<Lenient>,
}

/// Decodes one event from its JSON text. The text is kept as the event's raw JSON.
pub(crate) fn decode_event(data: &str) -> Decoded {
    let wire: Wire<'_> = match serde_json::from_str(data) {
        Ok(wire) => wire,
        Err(error) => return malformed(data, None, reason_of(&error)),
    };
    let Some(kind) = wire.kind.and_then(Lenient::text) else {
        return malformed(data, None, "the event has no \"type\" string".into());
    };
    let raw = || Box::<str>::from(data);
    let text = |v: Option<Lenient>| v.and_then(Lenient::text);
    let project_id = wire.project_id.and_then(lenient::id);
    let event = match kind.as_str() {
        "project_created" => match project_id {
            Some(project_id) => Event::ProjectCreated(ProjectCreated {
                project_id,
                app_url: text(wire.app_url),
                raw: raw(),
            }),
            // Documented as required: without it the event cannot be acted on.
            None => {
                let why = "project_created without a project_id string or integer";
                return malformed(data, Some(kind), why.into());
            }
        },
        "container_progress" => Event::ContainerProgress(ContainerProgress {
            message: text(wire.message).unwrap_or_default(),
            percentage: wire.percentage.and_then(lenient::number),
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
            action: text(wire.action),
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
        "credits_exhausted" => return Decoded::CreditsExhausted(data.to_owned()),
        _ => Event::Unknown(UnknownEvent {
            type_name: kind,
            raw: raw(),
        }),
    };
    Decoded::Event(event)
}

fn malformed(data: &str, type_name: Option<String>, reason: String) -> Decoded {
    Decoded::Event(Event::Malformed(MalformedEvent {
        type_name,
        reason,
        raw: data.into(),
    }))
}

/// Why a payload is not a JSON object, in a few words.
fn reason_of(error: &serde_json::Error) -> String {
    match error.classify() {
        serde_json::error::Category::Data => "not a JSON object".to_owned(),
        serde_json::error::Category::Eof => "truncated JSON".to_owned(),
        _ => format!("not JSON ({error})"),
    }
}

impl<'de> Deserialize<'de> for Wire<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Wire<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            // Inlined into `decode_event`, its one caller: the hot path of every
            // event (measured in BENCHMARKS.md, "Decode").
            #[inline]
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
                let mut wire = Wire::default();
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::Type => wire.kind = Some(map.next_value()?),
                        Field::ProjectId => wire.project_id = Some(map.next_value()?),
                        Field::AppUrl => wire.app_url = Some(map.next_value()?),
                        Field::Message => wire.message = Some(map.next_value()?),
                        Field::Percentage => wire.percentage = Some(map.next_value()?),
                        Field::Path => wire.path = Some(map.next_value()?),
                        Field::FilePath => wire.file_path = Some(map.next_value()?),
                        Field::File => wire.file = Some(map.next_value()?),
                        Field::Filename => wire.filename = Some(map.next_value()?),
                        Field::Tool => wire.tool = Some(map.next_value()?),
                        Field::Action => wire.action = Some(map.next_value()?),
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(wire)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The keys [`Wire`] reads.
enum Field {
    Type,
    ProjectId,
    AppUrl,
    Message,
    Percentage,
    Path,
    FilePath,
    File,
    Filename,
    Tool,
    Action,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            #[inline]
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "type" => Field::Type,
                    "project_id" => Field::ProjectId,
                    "app_url" => Field::AppUrl,
                    "message" => Field::Message,
                    "percentage" => Field::Percentage,
                    "path" => Field::Path,
                    "file_path" => Field::FilePath,
                    "file" => Field::File,
                    "filename" => Field::Filename,
                    "tool" => Field::Tool,
                    "action" => Field::Action,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> Event {
        match decode_event(data) {
            Decoded::Event(e) => e,
            Decoded::CreditsExhausted(_) => panic!("unexpected credits_exhausted"),
        }
    }

    fn malformed_reason(data: &str) -> String {
        match event(data) {
            Event::Malformed(m) => {
                assert_eq!(m.raw_json(), data);
                m.reason
            }
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn undocumented_fields_of_any_shape_do_not_fail_decoding() {
        let e = event(
            r#"{"type":"file_created","path":{"nested":[1,2]},"file":"app/Models/Task.php","extra":[null,{"a":1e999}]}"#,
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
    fn fields_of_unexpected_types_are_none_and_the_event_is_kept() {
        let e = event(r#"{"type":"container_progress","message":42,"percentage":[40]}"#);
        let Event::ContainerProgress(p) = &e else {
            panic!("{e:?}")
        };
        assert_eq!((p.message.as_str(), p.percentage), ("", None));
        let e = event(r#"{"type":"stream_end","project_id":{"id":1},"app_url":true}"#);
        let Event::StreamEnd(end) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (end.project_id.as_ref(), end.app_url.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn a_key_given_twice_takes_its_last_value() {
        let e =
            event(r#"{"type":"ping","type":"project_created","project_id":"a","project_id":"b"}"#);
        let Event::ProjectCreated(created) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(created.project_id, "b");
    }

    #[test]
    fn non_finite_or_out_of_range_percentages_are_none() {
        for value in ["1e999", "-1e999", "\"NaN\"", "\"inf\"", "\"1e999%\""] {
            let data =
                format!(r#"{{"type":"container_progress","message":"m","percentage":{value}}}"#);
            let Event::ContainerProgress(p) = event(&data) else {
                panic!("{data}")
            };
            assert_eq!(p.percentage, None, "{data}");
        }
        let Event::ContainerProgress(p) =
            event(r#"{"type":"container_progress","message":"m","percentage":40.5}"#)
        else {
            panic!()
        };
        assert_eq!(p.percentage, Some(40.5));
    }

    #[test]
    fn integer_ids_keep_their_digits_whatever_their_size() {
        let big = "123456789012345678901234567890";
        let e = event(&format!(
            r#"{{"type":"project_created","project_id":{big}}}"#
        ));
        let Event::ProjectCreated(created) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(created.project_id, big);
        let e = event(r#"{"type":"project_created","project_id":"ab\u0063"}"#);
        let Event::ProjectCreated(created) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(created.project_id, "abc");
        assert!(matches!(
            event(r#"{"type":"project_created","project_id":1.5}"#),
            Event::Malformed(_)
        ));
    }

    #[test]
    fn unknown_types_are_kept_with_their_json() {
        let e = event(r#"{"type":"deploy_started","at":1}"#);
        assert_eq!(e.type_name(), "deploy_started");
        assert_eq!(e.raw_json(), r#"{"type":"deploy_started","at":1}"#);
    }

    #[test]
    fn what_cannot_be_understood_is_malformed_data_with_a_reason() {
        assert!(malformed_reason("ping").starts_with("not JSON"));
        assert_eq!(malformed_reason("[DONE]"), "not a JSON object");
        assert_eq!(malformed_reason("[1]"), "not a JSON object");
        assert_eq!(
            malformed_reason(r#"{"type":"stream_end""#),
            "truncated JSON"
        );
        assert_eq!(
            malformed_reason(r#"{"no_type":1}"#),
            "the event has no \"type\" string"
        );
        assert_eq!(
            malformed_reason(r#"{"type":7}"#),
            "the event has no \"type\" string"
        );
        assert!(malformed_reason(r#"{"type":"project_created"}"#).contains("project_id"));
        let Event::Malformed(m) = event(r#"{"type":"project_created"}"#) else {
            panic!()
        };
        assert_eq!(m.type_name.as_deref(), Some("project_created"));
    }
}
