//! The project status answer.

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
