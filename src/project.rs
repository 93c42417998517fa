//! A project as the status endpoint describes it, and how to wait for one to settle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::ProjectId;

/// A project as the status endpoint describes it (`GET /agent/project/{id}`).
///
/// The documentation does not list the values of `project_status`, so it is kept as
/// the string the server sent.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Project {
    /// The project's id.
    pub project_id: ProjectId,
    /// Where the application is served, when given.
    pub app_url: Option<String>,
    /// The server's `project_status` string, when given.
    pub project_status: Option<String>,
    /// The project's name, when given.
    pub name: Option<String>,
    raw: String,
}

impl Project {
    /// The JSON answer exactly as received, with any fields the documentation does not
    /// list.
    pub fn raw_json(&self) -> &str {
        &self.raw
    }
}

/// What the status endpoint's JSON says, before it becomes a [`Project`] or an error.
#[derive(Debug)]
pub(crate) enum StatusAnswer {
    /// The project, as described.
    Project(Project),
    /// `{"status": false, "message": ..}` in a success answer.
    Refused {
        message: Option<String>,
        project_id: Option<ProjectId>,
    },
}

/// Decodes the status answer of project `requested` (whose id stands in when the
/// answer names none).
pub(crate) fn decode_status(
    bytes: &[u8],
    requested: &ProjectId,
) -> Result<StatusAnswer, serde_json::Error> {
    #[derive(Deserialize)]
    struct Wire {
        status: Option<serde_json::Value>,
        message: Option<String>,
        project_id: Option<ProjectId>,
        app_url: Option<String>,
        project_status: Option<String>,
        name: Option<String>,
    }
    let wire: Wire = serde_json::from_slice(bytes)?;
    if wire.status == Some(serde_json::Value::Bool(false)) {
        return Ok(StatusAnswer::Refused {
            message: wire.message,
            project_id: wire.project_id,
        });
    }
    Ok(StatusAnswer::Project(Project {
        project_id: wire.project_id.unwrap_or_else(|| requested.clone()),
        app_url: wire.app_url,
        project_status: wire.project_status,
        name: wire.name,
        raw: String::from_utf8_lossy(bytes).into_owned(),
    }))
}

/// How [`Client::wait_for_project`](crate::Client::wait_for_project) polls.
///
/// The documentation does not list the values of `project_status`, so "settled" is a
/// predicate. The default, [`WaitOptions::settled_by_default`], takes a status as
/// settled when it is one of the words a finished or failed job is usually called
/// (`ready`, `completed`, `failed`, ... see its docs); replace it with
/// [`settled_when`](WaitOptions::settled_when) once you know the server's values.
#[derive(Clone)]
pub struct WaitOptions {
    pub(crate) timeout: Duration,
    pub(crate) first_interval: Duration,
    pub(crate) max_interval: Duration,
    pub(crate) settled: Arc<dyn Fn(&Project) -> bool + Send + Sync>,
}

impl Default for WaitOptions {
    /// 15 minutes in all, polling after 2 s, then doubling up to every 30 s.
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(15 * 60),
            first_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
            settled: Arc::new(WaitOptions::settled_by_default),
        }
    }
}

impl fmt::Debug for WaitOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitOptions")
            .field("timeout", &self.timeout)
            .field("first_interval", &self.first_interval)
            .field("max_interval", &self.max_interval)
            .finish_non_exhaustive()
    }
}

/// Statuses taken as settled by [`WaitOptions::settled_by_default`].
const SETTLED: &[&str] = &[
    "ready",
    "completed",
    "complete",
    "done",
    "finished",
    "success",
    "succeeded",
    "deployed",
    "live",
    "active",
    "failed",
    "failure",
    "error",
    "errored",
    "cancelled",
    "canceled",
    "stopped",
    "incomplete",
    "interrupted",
    "credits_exhausted",
];

impl WaitOptions {
    /// The longest time to wait in all; then [`Error::Timeout`](crate::Error::Timeout) with
    /// [`TimeoutKind::Wait`](crate::TimeoutKind::Wait).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The first pause between two polls, doubled after each poll up to `max`.
    pub fn interval(mut self, first: Duration, max: Duration) -> Self {
        self.first_interval = first;
        self.max_interval = max.max(first);
        self
    }

    /// When a project counts as settled.
    pub fn settled_when(
        mut self,
        settled: impl Fn(&Project) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.settled = Arc::new(settled);
        self
    }

    /// The default predicate: `project_status`, trimmed and lowercased, is one of
    /// `ready`, `completed`, `complete`, `done`, `finished`, `success`, `succeeded`,
    /// `deployed`, `live`, `active` (finished) or `failed`, `failure`, `error`,
    /// `errored`, `cancelled`, `canceled`, `stopped`, `incomplete`, `interrupted`,
    /// `credits_exhausted` (ended without finishing). These are assumptions: the API documents no values.
    pub fn settled_by_default(project: &Project) -> bool {
        project
            .project_status
            .as_deref()
            .is_some_and(|status| SETTLED.contains(&status.trim().to_ascii_lowercase().as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_documented_answer() {
        let json = br#"{"status": true, "project_id": "abc123", "app_url": "https://abc123.laracopilot.com", "project_status": "<string>", "name": "<string>"}"#;
        let StatusAnswer::Project(project) = decode_status(json, &"abc123".into()).unwrap() else {
            panic!("a project");
        };
        assert_eq!(project.project_id, "abc123");
        assert_eq!(
            project.app_url.as_deref(),
            Some("https://abc123.laracopilot.com")
        );
        assert_eq!(project.project_status.as_deref(), Some("<string>"));
        assert_eq!(project.name.as_deref(), Some("<string>"));
    }

    #[test]
    fn status_false_is_a_refusal_garbage_an_error_and_a_missing_id_the_requested_one() {
        let id = ProjectId::from("abc123");
        let refused = decode_status(br#"{"status": false, "message": "Project not found"}"#, &id);
        assert!(matches!(
            refused,
            Ok(StatusAnswer::Refused { message: Some(m), .. }) if m == "Project not found"
        ));
        assert!(decode_status(b"<html>", &id).is_err());
        let Ok(StatusAnswer::Project(project)) = decode_status(b"{}", &id) else {
            panic!("a project");
        };
        assert_eq!(project.project_id, "abc123");
    }
}
