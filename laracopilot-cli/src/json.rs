//! The `--json` lines: an event, an outcome, an error. The README of this crate
//! describes the schema; [`SCHEMA_VERSION`] names it.

use laracopilot::{Error, Event, Outcome};
use serde_json::{json, Map, Value};

use crate::failure::Failure;

/// The version of the `--json` schema, in the `"schema_version"` key of every
/// result line: the outcome or error line that ends a run, each of `resume`'s
/// lines, `doctor`'s report. Event lines do not repeat it (they stream before the
/// result line, and only wrap the server's own event), nor does `status`'s answer,
/// which is the API's own object. Fields may be added within a version; removing or
/// renaming one, or changing its meaning, makes a new version.
pub const SCHEMA_VERSION: u64 = 1;

/// `{"event": "<type>", "data": <the event's JSON object as received>}`; a malformed
/// event adds `"malformed": "<why>"`, and `"raw": "<text>"` when its text is not JSON.
pub fn event(event: &Event) -> Value {
    let parsed: Option<Value> = serde_json::from_str(event.raw_json()).ok();
    let mut line = Map::new();
    line.insert("event".into(), Value::from(event.type_name()));
    line.insert("data".into(), parsed.clone().unwrap_or(Value::Null));
    if let Event::Malformed(malformed) = event {
        line.insert("malformed".into(), Value::from(malformed.reason.as_str()));
        if parsed.is_none() {
            line.insert("raw".into(), Value::from(event.raw_json()));
        }
    }
    Value::Object(line)
}

/// The outcome object: `project_id`, `app_url`, `files`, `events`, `elapsed_ms`,
/// then the `extra` fields (a subcommand's own).
pub fn outcome_object(outcome: &Outcome, extra: Vec<(&str, Value)>) -> Map<String, Value> {
    let elapsed = u64::try_from(outcome.progress.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut object = Map::new();
    object.insert(
        "project_id".into(),
        Value::from(outcome.project_id().map(|p| p.as_str())),
    );
    object.insert("app_url".into(), Value::from(outcome.app_url.clone()));
    object.insert("files".into(), Value::from(outcome.files.clone()));
    object.insert("events".into(), Value::from(outcome.stats().events));
    object.insert("elapsed_ms".into(), Value::from(elapsed));
    for (key, value) in extra {
        object.insert(key.to_owned(), value);
    }
    object
}

/// `{"schema_version": 1, "outcome": {...}}`.
pub fn outcome(object: Map<String, Value>) -> Value {
    json!({ "schema_version": SCHEMA_VERSION, "outcome": object })
}

/// `{"schema_version": 1, "error": {"kind", "message", "status", "project_id",
/// "retry_after_secs"}}`.
pub fn failure(failure: &Failure) -> Value {
    let error = failure.sdk();
    json!({ "schema_version": SCHEMA_VERSION, "error": {
        "kind": failure.kind(),
        "message": failure.to_string(),
        "status": error.and_then(Error::status),
        "project_id": error.and_then(Error::project_id).map(|p| p.as_str()),
        "retry_after_secs": error.and_then(Error::retry_after).map(|d| d.as_secs()),
    }})
}
