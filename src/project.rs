//! The project status answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::{Error, ProjectId, Result};

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

    /// Decodes the status answer of project `requested` (whose id stands in when the
    /// answer names none); `{"status": false, ...}` in a 200 answer is an
    /// [`Error::Api`].
    pub(crate) fn from_json(bytes: &[u8], requested: &ProjectId) -> Result<Project> {
        #[derive(Deserialize)]
        struct Wire {
            status: Option<serde_json::Value>,
            message: Option<String>,
            project_id: Option<ProjectId>,
            app_url: Option<String>,
            project_status: Option<String>,
            name: Option<String>,
        }
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| Error::decode("project status", e))?;
        if wire.status == Some(serde_json::Value::Bool(false)) {
            return Err(Error::Api {
                status: 200,
                message: wire.message,
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
                project_id: wire.project_id,
                attempts: 1,
            });
        }
        Ok(Project {
            project_id: wire.project_id.unwrap_or_else(|| requested.clone()),
            app_url: wire.app_url,
            project_status: wire.project_status,
            name: wire.name,
            raw: String::from_utf8_lossy(bytes).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_documented_answer() {
        let json = br#"{"status": true, "project_id": "abc123", "app_url": "https://abc123.laracopilot.com", "project_status": "<string>", "name": "<string>"}"#;
        let project = Project::from_json(json, &"abc123".into()).unwrap();
        assert_eq!(project.project_id, "abc123");
        assert_eq!(
            project.app_url.as_deref(),
            Some("https://abc123.laracopilot.com")
        );
        assert_eq!(project.project_status.as_deref(), Some("<string>"));
        assert_eq!(project.name.as_deref(), Some("<string>"));
    }

    #[test]
    fn status_false_is_an_api_error_and_garbage_a_decode_error() {
        let id = ProjectId::from("abc123");
        let err = Project::from_json(br#"{"status": false, "message": "Project not found"}"#, &id)
            .unwrap_err();
        assert!(matches!(err, Error::Api { status: 200, .. }));
        assert!(matches!(
            Project::from_json(b"<html>", &id),
            Err(Error::Decode { .. })
        ));
        assert_eq!(Project::from_json(b"{}", &id).unwrap().project_id, "abc123");
    }
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
    /// The longest time to wait in all; then [`Error::Timeout`] with
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

impl crate::Client {
    /// Polls the project's status until it settles (see [`WaitOptions`]) or the
    /// options' timeout passes. Each poll is a status call (retried as the client's
    /// retry policy allows); pauses grow from the first interval to the maximum.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::Client::from_env()?;
    /// let project = client.wait_for_project("abc123", laracopilot::WaitOptions::default()).await?;
    /// println!("{:?}", project.project_status);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (kind `Wait`) when the project did not settle in time; a
    /// non-retryable error of the status call (such as [`Error::NotFound`] or
    /// [`Error::Unauthorized`]) at once.
    pub async fn wait_for_project(
        &self,
        project_id: impl Into<ProjectId>,
        options: WaitOptions,
    ) -> Result<Project> {
        let project_id = project_id.into();
        let deadline = tokio::time::Instant::now() + options.timeout;
        let mut interval = options.first_interval;
        loop {
            match self.project(&project_id).await {
                Ok(project) if (options.settled)(&project) => return Ok(project),
                Ok(_) => {}
                Err(error) if error.is_retryable() => {}
                Err(error) => return Err(error),
            }
            let now = tokio::time::Instant::now();
            if now + interval > deadline {
                return Err(Error::Timeout {
                    kind: crate::TimeoutKind::Wait,
                    project_id: Some(project_id),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(options.max_interval);
        }
    }
}
