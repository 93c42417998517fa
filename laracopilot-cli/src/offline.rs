//! The embedded offline LaraCopilot (the `laracopilot-mock` crate), used when no
//! token is set, and the file where it remembers the projects generated offline, so
//! that `laracopilot status p1` finds offline what an offline `generate` created.
//!
//! Each command starts its own offline LaraCopilot and stops it when it ends: the
//! projects live on in the store, a small JSON file
//! (`$LARACOPILOT_OFFLINE_STORE`, else `$XDG_STATE_HOME/laracopilot/offline-projects.json`,
//! else `~/.local/state/laracopilot/offline-projects.json`; an empty
//! `LARACOPILOT_OFFLINE_STORE` keeps nothing). A new offline server starts knowing
//! them, and new projects get ids not yet taken. It keeps the latest
//! [`MAX_REMEMBERED`] projects. Two offline commands running at once may each give
//! out the same new id; the last one to finish is remembered.

use std::path::{Path, PathBuf};
use std::time::Duration;

use laracopilot::{ClientBuilder, ProjectId};
use laracopilot_mock::{MockProject, MockServer, MockServerBuilder, ProjectStatus};
use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::out;

/// The variable naming the store of offline projects.
pub const STORE_ENV: &str = "LARACOPILOT_OFFLINE_STORE";

/// The store keeps the latest this many projects.
pub const MAX_REMEMBERED: usize = 100;

/// The pause between two events of an offline stream: a generation takes about two
/// seconds, enough to watch it.
const PACING: Duration = Duration::from_millis(60);

/// A store file larger than this is not read (it is not one of ours).
const MAX_STORE_BYTES: u64 = 4 * 1024 * 1024;

/// The embedded offline LaraCopilot of one command, and where it remembers projects.
pub struct Offline {
    server: MockServer,
    store: Option<PathBuf>,
}

impl Offline {
    /// Starts the offline LaraCopilot knowing the remembered projects, and says so
    /// on stderr.
    ///
    /// # Errors
    ///
    /// [`Failure::Local`] when it cannot start.
    pub fn start() -> Result<Offline, Failure> {
        let store = store_path();
        let remembered = store.as_deref().map(load).unwrap_or_default();
        let builder = remembered
            .iter()
            .fold(MockServer::builder().pacing(PACING), |builder, project| {
                builder.project(project.to_mock())
            });
        let server = start(builder)?;
        let why = format!("no {} set, no credits spent", laracopilot::TOKEN_ENV);
        out::note(
            "Using",
            &format!("the embedded offline LaraCopilot ({why})"),
        );
        match &store {
            Some(path) => out::note(
                "Remembering",
                &format!("offline projects in {}", path.display()),
            ),
            None => out::note("Remembering", "no offline project (no store file)"),
        }
        Ok(Offline { server, store })
    }

    /// A client builder pointed at this offline LaraCopilot, with its token.
    pub fn client_builder(&self) -> ClientBuilder {
        self.server.client_builder()
    }

    /// Whether the offline LaraCopilot knows `id` (a project generated offline
    /// before, or in this run).
    pub fn knows(&self, id: &str) -> bool {
        self.server.project(id).is_some()
    }

    /// Writes what the offline LaraCopilot knows of `id` into the store, so that a
    /// later command finds it. A store that cannot be written is said on stderr:
    /// the command itself did its job.
    pub fn remember(&self, id: &ProjectId) {
        let (Some(path), Some(project)) = (&self.store, self.server.project(id)) else {
            return;
        };
        let mut projects = load(path);
        projects.retain(|p| p.project_id != id.as_str());
        projects.push(Remembered::from_mock(&project));
        let skip = projects.len().saturating_sub(MAX_REMEMBERED);
        projects.drain(..skip);
        if let Err(e) = save(path, &projects) {
            out::warn(
                "Warning",
                &format!(
                    "cannot remember offline projects in {}: {e}",
                    path.display()
                ),
            );
        }
    }
}

/// Starts the offline LaraCopilot: the one place where the CLI starts it.
///
/// # Errors
///
/// [`Failure::Local`] naming the cause.
pub fn start(builder: MockServerBuilder) -> Result<MockServer, Failure> {
    builder.start().map_err(|e| {
        let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(": {c}"));
        Failure::Local(format!("cannot start the offline LaraCopilot: {e}{cause}"))
    })
}

/// The store file, as the environment names it; `None` keeps nothing.
fn store_path() -> Option<PathBuf> {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(value) = std::env::var_os(STORE_ENV) {
        return (!value.is_empty()).then(|| PathBuf::from(value));
    }
    let state = nonempty("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| nonempty("HOME").map(|home| Path::new(&home).join(".local/state")))
        .or_else(|| nonempty("LOCALAPPDATA").map(PathBuf::from))?;
    Some(state.join("laracopilot").join("offline-projects.json"))
}

/// The store file's content.
#[derive(Serialize, Deserialize)]
struct Store {
    /// The format's version.
    offline_projects: u32,
    projects: Vec<Remembered>,
}

/// One remembered project.
#[derive(Serialize, Deserialize, Clone)]
struct Remembered {
    project_id: String,
    name: String,
    app_url: String,
    status: String,
    #[serde(default)]
    prompts: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
}

impl Remembered {
    fn from_mock(project: &MockProject) -> Remembered {
        Remembered {
            project_id: project.project_id.to_string(),
            name: project.name.clone(),
            app_url: project.app_url.clone(),
            status: project.status.as_str().to_owned(),
            prompts: project.prompts.clone(),
            files: project.files.clone(),
        }
    }

    fn to_mock(&self) -> MockProject {
        // A status this version does not know (written by a later one) reads as
        // failed: never as a success.
        let status = self.status.parse().unwrap_or(ProjectStatus::Failed);
        let mut project = MockProject::new(self.project_id.as_str(), status);
        project.name.clone_from(&self.name);
        project.app_url.clone_from(&self.app_url);
        project.prompts.clone_from(&self.prompts);
        project.files.clone_from(&self.files);
        project
    }
}

/// The remembered projects; none when the file is missing, and none (said on
/// stderr) when it cannot be read.
fn load(path: &Path) -> Vec<Remembered> {
    let read = || -> Result<Vec<Remembered>, String> {
        let size = match std::fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        if size > MAX_STORE_BYTES {
            return Err(format!("larger than {MAX_STORE_BYTES} bytes"));
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let store: Store = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(store.projects)
    };
    read().unwrap_or_else(|why| {
        let text = format!("the offline projects in {}: {why}", path.display());
        out::warn("Ignoring", &text);
        Vec::new()
    })
}

/// Writes the store to a sibling file, then renames it: never a half-written store.
fn save(path: &Path, projects: &[Remembered]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let store = Store {
        offline_projects: 1,
        projects: projects.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&store).map_err(std::io::Error::other)?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, json)?;
    std::fs::rename(&partial, path)
}
