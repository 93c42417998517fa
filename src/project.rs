//! A project as the status endpoint describes it, and how to wait for one to settle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::lenient::{self, Fields};
use crate::ProjectId;

/// A project as the status endpoint describes it (`GET /agent/project/{id}`).
///
/// The documentation does not list the values of `project_status`, so it is kept as
/// the string the server sent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    #[serde(skip)]
    raw: String,
}

impl Project {
    /// The JSON answer exactly as received, with any fields the documentation does not
    /// list.
    pub fn raw_json(&self) -> &str {
        &self.raw
    }
}

impl Project {
    /// Applies `redact` to every text of the project that came from the server (its
    /// id aside, which is the one asked for).
    pub(crate) fn redact_with(&mut self, redact: impl Fn(&mut String)) {
        redact(&mut self.raw);
        for field in [&mut self.app_url, &mut self.project_status, &mut self.name]
            .into_iter()
            .flatten()
        {
            redact(field);
        }
    }
}

/// What the status endpoint's JSON says, before it becomes a [`Project`] or an error.
#[derive(Debug)]
pub(crate) enum StatusAnswer {
    /// `"status": true` and the project asked for.
    Project(Project),
    /// `{"status": false, "message": ..}` in a success answer.
    Refused {
        message: Option<String>,
        project_id: Option<ProjectId>,
    },
    /// JSON, but not a description of the project asked for; says why.
    Unexpected(String),
}

/// Decodes the status answer of project `requested` (whose id stands in when the
/// answer names none), leniently (see [`crate::lenient`]): only `"status": true`
/// (a JSON boolean) about the project asked for is a project.
pub(crate) fn decode_status(
    text: &str,
    requested: &ProjectId,
) -> Result<StatusAnswer, serde_json::Error> {
    const KEYS: [&str; 6] = [
        "status",
        "message",
        "project_id",
        "app_url",
        "project_status",
        "name",
    ];
    let fields = Fields::read(text, &KEYS)?;
    let string = |index| fields.get(index).and_then(lenient::text);
    let project_id = fields.get(2).and_then(lenient::id);
    match fields.get(0).map(|status| status.get()) {
        Some("true") => {}
        Some("false") => {
            return Ok(StatusAnswer::Refused {
                message: string(1),
                project_id,
            })
        }
        _ => {
            return Ok(StatusAnswer::Unexpected(
                "the status answer does not say \"status\": true".into(),
            ))
        }
    }
    if let Some(named) = project_id.as_ref().filter(|named| *named != requested) {
        return Ok(StatusAnswer::Unexpected(format!(
            "the status answer describes project {named}, not {requested}"
        )));
    }
    Ok(StatusAnswer::Project(Project {
        project_id: project_id.unwrap_or_else(|| requested.clone()),
        app_url: string(3),
        project_status: string(4),
        name: string(5),
        raw: text.to_owned(),
    }))
}

/// How far a project is, as far as its `project_status` tells: what
/// [`Client::wait_for_project`](crate::Client::wait_for_project) and recovery wait for.
///
/// The API documents no values of `project_status`, so the default reading
/// ([`ProjectState::of`]) is an assumption about the words such services use; replace
/// it with [`WaitOptions::classify_with`] once you know the server's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProjectState {
    /// Still going, or not known to have ended (keep polling).
    Pending,
    /// Generated successfully.
    Succeeded,
    /// Ended without finishing: failed, cancelled, out of credits, ...
    Failed,
}

/// `project_status` values read as [`ProjectState::Succeeded`] by default.
const SUCCEEDED: &[&str] = &[
    "ready",
    "completed",
    "complete",
    "done",
    "finished",
    "success",
    "succeeded",
    "successful",
    "deployed",
    "live",
];

/// `project_status` values read as [`ProjectState::Failed`] by default.
const FAILED: &[&str] = &[
    "failed",
    "failure",
    "error",
    "errored",
    "cancelled",
    "canceled",
    "aborted",
    "stopped",
    "incomplete",
    "interrupted",
    "rejected",
    "timeout",
    "timed_out",
    "expired",
    "credits_exhausted",
];

impl ProjectState {
    /// The default reading of a project's `project_status`, trimmed, lowercased, with
    /// spaces and hyphens read as underscores: `ready`, `completed`, `complete`,
    /// `done`, `finished`, `success`, `succeeded`, `successful`, `deployed`, `live`
    /// succeeded; `failed`, `failure`, `error`, `errored`, `cancelled`, `canceled`,
    /// `aborted`, `stopped`, `incomplete`, `interrupted`, `rejected`, `timeout`,
    /// `timed_out`, `expired`, `credits_exhausted` failed; anything else, or no
    /// status, is pending. `active` is pending: for a job it usually means running.
    pub fn of(project: &Project) -> ProjectState {
        let Some(status) = project.project_status.as_deref() else {
            return ProjectState::Pending;
        };
        let status: String = status
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        if SUCCEEDED.contains(&status.as_str()) {
            ProjectState::Succeeded
        } else if FAILED.contains(&status.as_str()) {
            ProjectState::Failed
        } else {
            ProjectState::Pending
        }
    }
}

impl Project {
    /// How far the project is, by the default reading of its status
    /// ([`ProjectState::of`]).
    pub fn state(&self) -> ProjectState {
        ProjectState::of(self)
    }
}

/// The shortest pause between two polls: anything shorter would hammer the API.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How [`Client::wait_for_project`](crate::Client::wait_for_project) polls, and when a
/// project counts as done ([`ProjectState`]).
#[derive(Clone)]
pub struct WaitOptions {
    pub(crate) timeout: Duration,
    pub(crate) first_interval: Duration,
    pub(crate) max_interval: Duration,
    pub(crate) classify: Arc<dyn Fn(&Project) -> ProjectState + Send + Sync>,
}

impl Default for WaitOptions {
    /// 15 minutes in all, polling after 2 s, then doubling up to every 30 s; the
    /// default reading of the status ([`ProjectState::of`]).
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(15 * 60),
            first_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
            classify: Arc::new(ProjectState::of),
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

impl WaitOptions {
    /// The longest time to wait in all, polls included; then [`Error::Timeout`]
    /// with [`TimeoutKind::Wait`](crate::TimeoutKind::Wait). `Duration::MAX` waits
    /// without a limit.
    ///
    /// [`Error::Timeout`]: crate::Error::Timeout
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The first pause between two polls, doubled after each poll up to `max`. Pauses
    /// shorter than 100 ms are raised to 100 ms.
    pub fn interval(mut self, first: Duration, max: Duration) -> Self {
        self.first_interval = first.max(MIN_INTERVAL);
        self.max_interval = max.max(self.first_interval);
        self
    }

    /// How to read a project's status, instead of [`ProjectState::of`]: polling ends
    /// with the project when it says [`ProjectState::Succeeded`], with
    /// [`Error::GenerationFailed`](crate::Error::GenerationFailed) when it says
    /// [`ProjectState::Failed`], and goes on while it says [`ProjectState::Pending`].
    ///
    /// ```
    /// use laracopilot::{ProjectState, WaitOptions};
    /// let options = WaitOptions::default().classify_with(|project| {
    ///     match project.project_status.as_deref() {
    ///         Some("shipped") => ProjectState::Succeeded,
    ///         Some("broken") => ProjectState::Failed,
    ///         _ => ProjectState::Pending,
    ///     }
    /// });
    /// ```
    pub fn classify_with(
        mut self,
        classify: impl Fn(&Project) -> ProjectState + Send + Sync + 'static,
    ) -> Self {
        self.classify = Arc::new(classify);
        self
    }
}

/// A project for unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn test_project(id: &str, status: &str) -> Project {
    Project {
        project_id: ProjectId::from(id),
        app_url: None,
        project_status: Some(status.to_owned()),
        name: None,
        raw: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_documented_answer() {
        let json = r#"{"status": true, "project_id": "abc123", "app_url": "https://abc123.laracopilot.com", "project_status": "<string>", "name": "<string>"}"#;
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
        let refused = decode_status(r#"{"status": false, "message": "Project not found"}"#, &id);
        assert!(matches!(
            refused,
            Ok(StatusAnswer::Refused { message: Some(m), .. }) if m == "Project not found"
        ));
        assert!(decode_status("<html>", &id).is_err());
        let Ok(StatusAnswer::Project(project)) = decode_status(r#"{"status":true}"#, &id) else {
            panic!("a project");
        };
        assert_eq!(project.project_id, "abc123");
    }

    #[test]
    fn only_a_true_boolean_status_about_the_project_asked_for_is_a_project() {
        let id = ProjectId::from("42");
        for text in [
            "{}",
            r#"{"status":"true"}"#,
            r#"{"status":1}"#,
            r#"{"status":null}"#,
            r#"{"status":true,"project_id":"43"}"#,
            r#"{"status":true,"status":"yes"}"#,
        ] {
            assert!(
                matches!(decode_status(text, &id), Ok(StatusAnswer::Unexpected(_))),
                "{text}"
            );
        }
        let Ok(StatusAnswer::Project(project)) = decode_status(
            r#"{"status":false,"status":true,"project_id":42,"name":7,"app_url":"u"}"#,
            &id,
        ) else {
            panic!("a project");
        };
        assert_eq!(
            (
                project.project_id.as_str(),
                project.name,
                project.app_url.as_deref()
            ),
            ("42", None, Some("u"))
        );
    }

    #[test]
    fn the_default_reading_of_statuses() {
        let state = |status: &str| test_project("p", status).state();
        for s in ["ready", " Completed ", "DONE", "succeeded", "live"] {
            assert_eq!(state(s), ProjectState::Succeeded, "{s}");
        }
        for s in [
            "failed",
            "error",
            "Cancelled",
            "credits_exhausted",
            "credits-exhausted",
            "timed out",
        ] {
            assert_eq!(state(s), ProjectState::Failed, "{s}");
        }
        for s in ["generating", "active", "running", "queued", "", "<string>"] {
            assert_eq!(state(s), ProjectState::Pending, "{s}");
        }
        let mut none = test_project("p", "x");
        none.project_status = None;
        assert_eq!(none.state(), ProjectState::Pending);
    }

    #[test]
    fn intervals_are_never_shorter_than_the_floor() {
        let options = WaitOptions::default().interval(Duration::ZERO, Duration::ZERO);
        assert_eq!(
            (options.first_interval, options.max_interval),
            (MIN_INTERVAL, MIN_INTERVAL)
        );
        let options = WaitOptions::default().interval(Duration::MAX, Duration::from_secs(1));
        assert_eq!(options.max_interval, Duration::MAX);
    }
}
