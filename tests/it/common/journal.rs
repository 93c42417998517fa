//! Helpers for the journal tests: a journal that logs every write next to what the
//! offline LaraCopilot had received at that moment (and can refuse writes), one
//! shared log of writes and of what the caller saw, and readers of journal files.

use std::path::Path;
use std::sync::{Arc, Mutex};

use laracopilot::journal::{Entry, Journal, JournalFuture, Record, Settlement};
use laracopilot_mock::MockServer;
use serde_json::Value;

/// One thing that happened, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The client wrote this record (see [`describe`]); the server had received
    /// `posts` generate requests by then.
    Wrote { record: String, posts: usize },
    /// The caller got this item (an event's type, or `error:<kind>`).
    Saw(String),
}

/// The shared log of one test.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Step>>>);

impl Log {
    pub fn push(&self, step: Step) {
        self.0.lock().unwrap().push(step);
    }

    pub fn saw(&self, item: &laracopilot::Result<laracopilot::Event>) {
        self.push(Step::Saw(seen(item)));
    }

    pub fn steps(&self) -> Vec<Step> {
        self.0.lock().unwrap().clone()
    }

    /// The records written, described.
    pub fn written(&self) -> Vec<String> {
        self.steps()
            .into_iter()
            .filter_map(|s| match s {
                Step::Wrote { record, .. } => Some(record),
                Step::Saw(_) => None,
            })
            .collect()
    }

    /// Where the first step matching `want` is.
    pub fn position(&self, want: impl Fn(&Step) -> bool) -> Option<usize> {
        self.steps().iter().position(want)
    }

    /// Where the write of the record starting with `prefix` is, and the POSTs the
    /// server had seen then.
    pub fn write_of(&self, prefix: &str) -> Option<(usize, usize)> {
        self.steps()
            .iter()
            .enumerate()
            .find_map(|(i, step)| match step {
                Step::Wrote { record, posts } if record.starts_with(prefix) => Some((i, *posts)),
                _ => None,
            })
    }

    /// Where the caller saw `what` first.
    pub fn seen_at(&self, what: &str) -> Option<usize> {
        self.position(|s| matches!(s, Step::Saw(x) if x == what))
    }
}

/// How the caller names an item.
pub fn seen(item: &laracopilot::Result<laracopilot::Event>) -> String {
    match item {
        Ok(event) => event.type_name().to_owned(),
        Err(error) => format!("error:{}", error.kind()),
    }
}

/// Which writes a [`Checked`] journal refuses.
pub type Refuse = Arc<dyn Fn(&Record) -> bool + Send + Sync>;

/// A journal that logs each write (with the POSTs the server had received at that
/// moment) before handing it to `inner`, and refuses the writes `refuse` picks.
pub struct Checked<J> {
    pub inner: J,
    pub server: Option<Arc<MockServer>>,
    pub log: Log,
    pub refuse: Option<Refuse>,
}

impl<J: Journal> Checked<J> {
    pub fn new(inner: J, server: Option<Arc<MockServer>>, log: Log) -> Self {
        Checked {
            inner,
            server,
            log,
            refuse: None,
        }
    }

    pub fn refusing(mut self, refuse: impl Fn(&Record) -> bool + Send + Sync + 'static) -> Self {
        self.refuse = Some(Arc::new(refuse));
        self
    }
}

impl<J: Journal> Journal for Checked<J> {
    fn write(&self, record: Record) -> JournalFuture<'_, ()> {
        let posts = self.server.as_deref().map_or(0, super::mock::posts);
        self.log.push(Step::Wrote {
            record: describe(&record),
            posts,
        });
        if self.refuse.as_ref().is_some_and(|refuse| refuse(&record)) {
            return Box::pin(async { Err("the disk is full".into()) });
        }
        self.inner.write(record)
    }

    fn unfinished(&self) -> JournalFuture<'_, Vec<Entry>> {
        self.inner.unfinished()
    }
}

/// A record as one line of text: `started generate`, `started follow_up p1`,
/// `project_known p1`, `settled p1 succeeded https://…`, `settled - failed
/// incomplete true`, `settled - unknown`.
pub fn describe(record: &Record) -> String {
    match record {
        Record::Started(entry) => {
            let kind = serde_json::to_value(entry.kind).unwrap();
            let kind = kind.as_str().unwrap_or("?");
            match &entry.project_id {
                Some(id) => format!("started {kind} {id}"),
                None => format!("started {kind}"),
            }
        }
        Record::ProjectKnown { project_id, .. } => format!("project_known {project_id}"),
        Record::Settled {
            project_id,
            outcome,
            ..
        } => {
            let id = project_id.as_ref().map_or("-", |p| p.as_str());
            format!("settled {id} {}", settlement(outcome))
        }
        _ => "other".to_owned(),
    }
}

/// `succeeded <url>`, `failed <kind> <may_have_started_work>`, `unknown`.
pub fn settlement(outcome: &Settlement) -> String {
    match outcome {
        Settlement::Succeeded { app_url, .. } => {
            format!("succeeded {}", app_url.as_deref().unwrap_or("-"))
        }
        Settlement::Failed {
            error,
            may_have_started_work,
            ..
        } => format!("failed {error} {may_have_started_work}"),
        Settlement::Unknown => "unknown".to_owned(),
        _ => "other".to_owned(),
    }
}

/// Every line of the journal file at `path`, each parsed as JSON; a line that is not
/// is a failure (the file is corrupt), except a last one without its newline when
/// `torn_ok` (a crash in the middle of a write), which is returned apart.
pub fn file_lines(path: &Path, torn_ok: bool) -> (Vec<Value>, Option<String>) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let complete = text.ends_with('\n') || text.is_empty();
    let mut lines: Vec<&str> = text.split_terminator('\n').collect();
    let torn = match complete {
        true => None,
        false => lines.pop().map(str::to_owned),
    };
    let parsed = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "{}: line {} is not JSON ({e}): {line}",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect();
    if let Some(torn) = &torn {
        // A last line without its newline may still be whole (written, not flushed
        // with its newline): only a cut one is torn.
        if serde_json::from_str::<Value>(torn).is_ok() {
            let mut all: Vec<Value> = parsed;
            all.push(serde_json::from_str(torn).unwrap());
            return (all, None);
        }
        assert!(torn_ok, "{}: torn last line {torn:?}", path.display());
    }
    (parsed, torn)
}
