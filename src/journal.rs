//! A client-side record of spend: which generations were started, which project each
//! became, and how each ended, written so that a crash loses nothing.
//!
//! LaraCopilot keeps no session a client could reattach to (no event ids, no resume,
//! no cancel), so a process that dies in minute six of a generation (a deploy, an OOM
//! kill, a recycled CI runner) cannot ask the server what it had started. With a
//! journal ([`ClientBuilder::journal`](crate::ClientBuilder::journal)), the client
//! records, for every generate and follow-up call:
//!
//! 1. [`Record::Started`], durably, **before** the request is sent: an entry in the
//!    journal means "may have been sent"; no entry means "never sent";
//! 2. [`Record::ProjectKnown`] as soon as the project id is known (before the event
//!    that names it is handed to the caller);
//! 3. [`Record::Settled`] with the outcome or the error's kind (before the terminal
//!    item is handed to the caller); after a broken stream,
//!    [`Client::finish_or_recover`](crate::Client::finish_or_recover) adds what its
//!    poll found, the entry's last word.
//!
//! After a restart, [`Client::unfinished`](crate::Client::unfinished) lists the
//! entries without an outcome, and [`Client::resume`](crate::Client::resume) settles
//! each: by polling the project when its id is known, or, without one, by reporting
//! [`Error::OutcomeUnknown`]: the request may have
//! started work, and only the caller can decide to send it again. The SDK never
//! re-sends a generate request on its own.
//!
//! A generation dropped halfway stays unfinished (the server may still be generating),
//! which is what the journal then says. Writes happen on the task that drives the
//! call or the stream: no task is spawned and nothing is buffered.
//!
//! [`FileJournal`] keeps one JSON object per line in a file; [`MemoryJournal`] keeps
//! them in memory, for tests; [`Journal`] is small enough to implement over a
//! database table (one row per entry: insert on `Started`, update on the others,
//! `unfinished` selects the rows without an outcome).
//!
//! ```no_run
//! use laracopilot::journal::FileJournal;
//! use laracopilot::WaitOptions;
//!
//! # async fn run() -> laracopilot::Result<()> {
//! let client = laracopilot::Client::builder()
//!     .from_env()
//!     .journal(FileJournal::open("/var/lib/app/laracopilot.journal")?)
//!     .build()?;
//! // At start-up: settle what the last run left unfinished.
//! for entry in client.unfinished().await? {
//!     match client.resume(&entry, WaitOptions::default()).await {
//!         Ok(outcome) => println!("{}: done at {:?}", entry.local_id, outcome.app_url),
//!         Err(error) => eprintln!("{}: {error}", entry.local_id),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crate::id::LocalId;
use crate::{BoxError, Error, ProjectId, Result};

/// A boxed future returned by [`Journal`] methods.
pub type JournalFuture<'a, T> =
    Pin<Box<dyn Future<Output = std::result::Result<T, BoxError>> + Send + 'a>>;

/// Where a client keeps its record of spend (see the [module docs](self)).
///
/// Asynchronous, so that an implementation can write to a database with an async
/// driver; a write must be durable when its future completes, since the client sends
/// the request (or hands the event to the caller) only then.
pub trait Journal: Send + Sync + 'static {
    /// Stores `record` durably.
    ///
    /// # Errors
    ///
    /// Whatever kept the record from being stored. For [`Record::Started`], the call
    /// then fails with [`Error::Journal`] and nothing is sent; for the other records
    /// the stream goes on (its entry stays unfinished, which resuming settles).
    fn write(&self, record: Record) -> JournalFuture<'_, ()>;

    /// The entries with a [`Record::Started`] and no [`Record::Settled`], oldest
    /// first, each with the project id of its [`Record::ProjectKnown`], if any.
    ///
    /// # Errors
    ///
    /// Whatever kept the entries from being read.
    fn unfinished(&self) -> JournalFuture<'_, Vec<Entry>>;
}

impl<J: Journal + ?Sized> Journal for Arc<J> {
    fn write(&self, record: Record) -> JournalFuture<'_, ()> {
        (**self).write(record)
    }

    fn unfinished(&self) -> JournalFuture<'_, Vec<Entry>> {
        (**self).unfinished()
    }
}

/// Which call an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// `POST /agent/generate`: a new project.
    Generate,
    /// `POST /agent/generate/{projectId}`: a follow-up.
    FollowUp,
}

/// What the client writes to its journal.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Record {
    /// A call is about to be sent.
    Started(Entry),
    /// The project id of an entry became known.
    #[non_exhaustive]
    ProjectKnown {
        /// The entry.
        local_id: LocalId,
        /// Its project.
        project_id: ProjectId,
        /// When it became known.
        at: SystemTime,
    },
    /// An entry ended: its stream's terminal item, the call's error, or a resume.
    #[non_exhaustive]
    Settled {
        /// The entry.
        local_id: LocalId,
        /// Its project, when known.
        project_id: Option<ProjectId>,
        /// How it ended.
        outcome: Settlement,
        /// When.
        at: SystemTime,
    },
}

impl Record {
    /// The entry this record is about.
    pub fn local_id(&self) -> &LocalId {
        match self {
            Record::Started(entry) => &entry.local_id,
            Record::ProjectKnown { local_id, .. } | Record::Settled { local_id, .. } => local_id,
        }
    }
}

/// One generation or follow-up, as its journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The client's id for it.
    pub local_id: LocalId,
    /// Which call it is.
    pub kind: Kind,
    /// The project: a follow-up's from the start, a new project's once known.
    pub project_id: Option<ProjectId>,
    /// The prompt sent.
    pub prompt: String,
    /// When the call was about to be sent.
    pub started_at: SystemTime,
    /// The token it was sent with, masked as the dashboard shows it (never the token).
    pub token: String,
}

/// How an entry ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// The generation succeeded (`stream_end`, or a polled project that succeeded).
    #[non_exhaustive]
    Succeeded {
        /// Where the application is served, when known.
        app_url: Option<String>,
    },
    /// The call or the stream ended with an error.
    #[non_exhaustive]
    Failed {
        /// The error's [`kind`](crate::Error::kind), e.g. `"credits_exhausted"`.
        error: String,
        /// Whether the request may have started work
        /// ([`Error::may_have_started_work`](crate::Error::may_have_started_work)).
        may_have_started_work: bool,
    },
    /// Resumed without a project id: whether it started work is unknown.
    Unknown,
}

impl Settlement {
    /// The settlement of a call or stream that ended with `error`.
    pub(crate) fn of_error(error: &Error) -> Settlement {
        Settlement::Failed {
            error: error.kind().to_owned(),
            may_have_started_work: error.may_have_started_work(),
        }
    }

    /// What a poll of an entry's project settles: success (with the app URL), or a
    /// project that failed or is gone. A failed or gone project's call was sent and
    /// named its project, so it may have started work, whatever the poll's own error
    /// says of the status call. Any other outcome of the poll (a timeout, say)
    /// settles nothing: `None`.
    pub(crate) fn of_poll(
        polled: std::result::Result<Option<String>, &Error>,
    ) -> Option<Settlement> {
        match polled {
            Ok(app_url) => Some(Settlement::Succeeded { app_url }),
            Err(error @ (Error::GenerationFailed { .. } | Error::NotFound { .. })) => {
                Some(Settlement::Failed {
                    error: error.kind().to_owned(),
                    may_have_started_work: true,
                })
            }
            Err(_) => None,
        }
    }
}

/// A journal in memory: for tests, and for services that journal elsewhere.
///
/// ```
/// use std::sync::Arc;
/// use laracopilot::journal::MemoryJournal;
///
/// let journal = Arc::new(MemoryJournal::new());
/// let client = laracopilot::Client::builder()
///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
///     .journal(Arc::clone(&journal))
///     .build()?;
/// assert!(journal.records().is_empty());
/// # Ok::<(), laracopilot::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryJournal {
    records: Mutex<Vec<Record>>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        MemoryJournal::default()
    }

    /// Every record written so far, oldest first.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.records).clone()
    }
}

impl Journal for MemoryJournal {
    fn write(&self, record: Record) -> JournalFuture<'_, ()> {
        lock(&self.records).push(record);
        Box::pin(async { Ok(()) })
    }

    fn unfinished(&self) -> JournalFuture<'_, Vec<Entry>> {
        let mut open = Open::default();
        for record in lock(&self.records).iter() {
            open.apply(record.clone());
        }
        Box::pin(async move { Ok(open.into_entries()) })
    }
}

/// A journal in a file: one JSON object per line, appended and flushed to disk
/// (`fsync`) before each write completes, compacted when it grows (rewritten to a
/// new file with the unfinished entries only, then renamed over the old one, so a
/// crash leaves either file whole).
///
/// A last line cut short by a crash mid-write is tolerated: it was never complete,
/// so the call it described was never sent (or its event never handed out); it is
/// dropped when the file is opened and counted in [`FileJournal::torn_lines`] (with
/// a `tracing` warning). Any other line that cannot be read is an error.
///
/// Writes are blocking file calls on the task making them, a few per generation
/// (each one small appended line and an `fsync`). One process per file: two
/// processes appending to the same file would interleave their entries.
///
/// The format, for reading and repairing by hand (`at` in milliseconds since the
/// Unix epoch):
///
/// ```text
/// {"v":1,"record":"started","local_id":"lcj-…","kind":"generate","project_id":null,"prompt":"…","at":1764618266123,"token":"****9f8e"}
/// {"v":1,"record":"project_known","local_id":"lcj-…","project_id":"abc123","at":1764618268001}
/// {"v":1,"record":"settled","local_id":"lcj-…","project_id":"abc123","outcome":"succeeded","app_url":"https://abc123.laracopilot.com","at":1764618569002}
/// {"v":1,"record":"settled","local_id":"lcj-…","project_id":null,"outcome":"failed","error":"rate_limited","may_have_started_work":false,"at":1764618269002}
/// ```
pub struct FileJournal {
    path: PathBuf,
    state: Mutex<FileState>,
}

struct FileState {
    file: File,
    open: Open,
    /// Lines in the file now.
    lines: usize,
    /// Bytes in the file now: where a write that fails is cut back to.
    len: u64,
    /// A failed write could not be cut back: nothing more may be appended after it.
    broken: bool,
    torn: usize,
}

/// Compaction starts once the file holds this many lines more than four per
/// unfinished entry.
const COMPACT_SLACK: usize = 1024;

impl fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("FileJournal")
            .field("path", &self.path)
            .field("unfinished", &state.open.entries.len())
            .field("lines", &state.lines)
            .finish_non_exhaustive()
    }
}

impl FileJournal {
    /// Opens (or creates) the journal at `path`, reading what it holds.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the file cannot be created, read or repaired, or holds
    /// a line that is not a record (other than a torn last line).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let io = |what: &str, e: std::io::Error| journal_error(&path, what, e);
        let mut open = Open::default();
        let mut lines = 0;
        let mut torn = 0;
        let mut keep = 0u64;
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(|e| io("cannot read", e))?);
            let mut offset = 0u64;
            for line in reader.split(b'\n') {
                let line = line.map_err(|e| io("cannot read", e))?;
                let end = offset + line.len() as u64 + 1;
                match serde_json::from_slice::<Line>(&line) {
                    Ok(parsed) => {
                        open.apply(parsed.into_record());
                        lines += 1;
                        keep = end;
                    }
                    Err(_) if line.iter().all(u8::is_ascii_whitespace) => keep = end,
                    Err(e) => {
                        torn += 1;
                        // Only the last line may be torn; anything after it is not a
                        // crash's leftover.
                        if torn > 1 || lines_after_torn(&path, end)? {
                            return Err(journal_error(
                                &path,
                                "holds a line that is not a record",
                                e,
                            ));
                        }
                    }
                }
                offset = end;
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("cannot open", e))?;
        if torn > 0 {
            #[cfg(feature = "tracing")]
            tracing::warn!(path = %path.display(), "dropping the torn last line of the laracopilot journal");
            file.set_len(keep).map_err(|e| io("cannot repair", e))?;
            file.sync_all().map_err(|e| io("cannot repair", e))?;
        } else if keep > 0 && !ends_with_newline(&path)? {
            file.write_all(b"\n").map_err(|e| io("cannot repair", e))?;
        }
        let len = file.metadata().map_err(|e| io("cannot read", e))?.len();
        Ok(FileJournal {
            path,
            state: Mutex::new(FileState {
                file,
                open,
                lines,
                len,
                broken: false,
                torn,
            }),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many torn lines (a crash in the middle of a write) were dropped when the
    /// file was opened: 0 or 1.
    pub fn torn_lines(&self) -> usize {
        lock(&self.state).torn
    }

    fn append(&self, record: Record) -> Result<()> {
        let mut state = lock(&self.state);
        let mut line = serde_json::to_vec(&Line::from_record(&record))
            .map_err(|e| journal_error(&self.path, "cannot encode a record", e))?;
        line.push(b'\n');
        let io = |e| journal_error(&self.path, "cannot write", e);
        if state.broken {
            return Err(io(std::io::Error::other(
                "an earlier failed write could not be undone",
            )));
        }
        let written = state
            .file
            .write_all(&line)
            .and_then(|()| state.file.sync_data());
        if let Err(error) = written {
            // The part of the line that reached the file must not stay: the next
            // write would leave it in the middle, where no reader can tell it from
            // corruption.
            let len = state.len;
            state.broken = state.file.set_len(len).is_err();
            return Err(io(error));
        }
        state.len += line.len() as u64;
        state.lines += 1;
        state.open.apply(record);
        if state.lines > 4 * state.open.entries.len() + COMPACT_SLACK {
            // The record is durable already: a compaction that fails leaves the old
            // file whole, to be compacted at a later write.
            if let Err(_error) = self.compact(&mut state) {
                #[cfg(feature = "tracing")]
                tracing::warn!(error = %_error, "could not compact the laracopilot journal");
            }
        }
        Ok(())
    }

    /// Rewrites the file with the unfinished entries only.
    fn compact(&self, state: &mut FileState) -> Result<()> {
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".compacting");
        let tmp = PathBuf::from(tmp_name);
        let result = self.write_compacted(state, &tmp);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Writes the unfinished entries to `tmp`, renames it over the journal, and
    /// appends to it from then on (the same open file: nothing to reopen).
    fn write_compacted(&self, state: &mut FileState, tmp: &Path) -> Result<()> {
        let io = |what: &str, e: std::io::Error| journal_error(&self.path, what, e);
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(|e| io("cannot compact", e))?;
        let mut lines = 0;
        let mut len = 0u64;
        for entry in state.open.in_order() {
            for record in entry_records(entry) {
                let mut line = serde_json::to_vec(&Line::from_record(&record))
                    .map_err(|e| journal_error(&self.path, "cannot encode a record", e))?;
                line.push(b'\n');
                out.write_all(&line).map_err(|e| io("cannot compact", e))?;
                lines += 1;
                len += line.len() as u64;
            }
        }
        out.sync_all().map_err(|e| io("cannot compact", e))?;
        fs::rename(tmp, &self.path).map_err(|e| io("cannot compact", e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself is durable once the directory is.
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        // The handle follows the file through the rename; its position is its end.
        state.file = out;
        state.len = len;
        state.lines = lines;
        Ok(())
    }
}

impl Journal for FileJournal {
    fn write(&self, record: Record) -> JournalFuture<'_, ()> {
        let written = self.append(record).map_err(BoxError::from);
        Box::pin(async move { written })
    }

    fn unfinished(&self) -> JournalFuture<'_, Vec<Entry>> {
        let entries: Vec<Entry> = lock(&self.state).open.in_order().cloned().collect();
        Box::pin(async move { Ok(entries) })
    }
}

/// The records that recreate `entry`.
fn entry_records(entry: &Entry) -> Vec<Record> {
    let mut started = entry.clone();
    let known = started.project_id.take();
    let follow_up = entry.kind == Kind::FollowUp;
    if follow_up {
        started.project_id.clone_from(&entry.project_id);
    }
    let mut records = vec![Record::Started(started)];
    if let (Some(project_id), false) = (known, follow_up) {
        records.push(Record::ProjectKnown {
            local_id: entry.local_id.clone(),
            project_id,
            at: entry.started_at,
        });
    }
    records
}

/// Whether more lines follow a torn one that ends at `end`.
fn lines_after_torn(path: &Path, end: u64) -> Result<bool> {
    let len = fs::metadata(path)
        .map_err(|e| journal_error(path, "cannot read", e))?
        .len();
    Ok(end < len)
}

fn ends_with_newline(path: &Path) -> Result<bool> {
    let bytes = fs::read(path).map_err(|e| journal_error(path, "cannot read", e))?;
    Ok(bytes.last().is_none_or(|b| *b == b'\n'))
}

fn journal_error(path: &Path, what: &str, source: impl Into<BoxError>) -> Error {
    Error::Journal {
        message: format!("the journal {} {what}", path.display()),
        source: source.into(),
    }
}

/// The unfinished entries, in the order they started.
#[derive(Debug, Default)]
struct Open {
    entries: HashMap<LocalId, (u64, Entry)>,
    next: u64,
}

impl Open {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Started(entry) => {
                let order = self.next;
                self.next += 1;
                self.entries.insert(entry.local_id.clone(), (order, entry));
            }
            Record::ProjectKnown {
                local_id,
                project_id,
                ..
            } => {
                if let Some((_, entry)) = self.entries.get_mut(&local_id) {
                    entry.project_id = Some(project_id);
                }
            }
            Record::Settled { local_id, .. } => {
                self.entries.remove(&local_id);
            }
        }
    }

    fn in_order(&self) -> impl Iterator<Item = &Entry> {
        let mut entries: Vec<&(u64, Entry)> = self.entries.values().collect();
        entries.sort_by_key(|(order, _)| *order);
        entries.into_iter().map(|(_, entry)| entry)
    }

    fn into_entries(self) -> Vec<Entry> {
        let mut entries: Vec<(u64, Entry)> = self.entries.into_values().collect();
        entries.sort_by_key(|(order, _)| *order);
        entries.into_iter().map(|(_, entry)| entry).collect()
    }
}

/// One line of a [`FileJournal`].
#[derive(Serialize, Deserialize)]
struct Line {
    v: u32,
    #[serde(flatten)]
    body: LineBody,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum LineBody {
    Started {
        local_id: LocalId,
        kind: Kind,
        project_id: Option<ProjectId>,
        prompt: String,
        at: u64,
        token: String,
    },
    ProjectKnown {
        local_id: LocalId,
        project_id: ProjectId,
        at: u64,
    },
    Settled {
        local_id: LocalId,
        project_id: Option<ProjectId>,
        #[serde(flatten)]
        outcome: LineOutcome,
        at: u64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum LineOutcome {
    Succeeded {
        app_url: Option<String>,
    },
    Failed {
        error: String,
        may_have_started_work: bool,
    },
    Unknown,
}

impl Line {
    fn from_record(record: &Record) -> Line {
        let body = match record {
            Record::Started(entry) => LineBody::Started {
                local_id: entry.local_id.clone(),
                kind: entry.kind,
                project_id: entry.project_id.clone(),
                prompt: entry.prompt.clone(),
                at: unix_millis(entry.started_at),
                token: entry.token.clone(),
            },
            Record::ProjectKnown {
                local_id,
                project_id,
                at,
            } => LineBody::ProjectKnown {
                local_id: local_id.clone(),
                project_id: project_id.clone(),
                at: unix_millis(*at),
            },
            Record::Settled {
                local_id,
                project_id,
                outcome,
                at,
            } => LineBody::Settled {
                local_id: local_id.clone(),
                project_id: project_id.clone(),
                outcome: match outcome {
                    Settlement::Succeeded { app_url } => LineOutcome::Succeeded {
                        app_url: app_url.clone(),
                    },
                    Settlement::Failed {
                        error,
                        may_have_started_work,
                    } => LineOutcome::Failed {
                        error: error.clone(),
                        may_have_started_work: *may_have_started_work,
                    },
                    Settlement::Unknown => LineOutcome::Unknown,
                },
                at: unix_millis(*at),
            },
        };
        Line { v: 1, body }
    }

    fn into_record(self) -> Record {
        match self.body {
            LineBody::Started {
                local_id,
                kind,
                project_id,
                prompt,
                at,
                token,
            } => Record::Started(Entry {
                local_id,
                kind,
                project_id,
                prompt,
                started_at: from_unix_millis(at),
                token,
            }),
            LineBody::ProjectKnown {
                local_id,
                project_id,
                at,
            } => Record::ProjectKnown {
                local_id,
                project_id,
                at: from_unix_millis(at),
            },
            LineBody::Settled {
                local_id,
                project_id,
                outcome,
                at,
            } => Record::Settled {
                local_id,
                project_id,
                outcome: match outcome {
                    LineOutcome::Succeeded { app_url } => Settlement::Succeeded { app_url },
                    LineOutcome::Failed {
                        error,
                        may_have_started_work,
                    } => Settlement::Failed {
                        error,
                        may_have_started_work,
                    },
                    LineOutcome::Unknown => Settlement::Unknown,
                },
                at: from_unix_millis(at),
            },
        }
    }
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(UNIX_EPOCH)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a whole record: a holder that panicked left no half state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, kind: Kind, project_id: Option<&str>) -> Entry {
        Entry {
            local_id: LocalId::from(id),
            kind,
            project_id: project_id.map(ProjectId::from),
            prompt: "Build a task management app".into(),
            started_at: UNIX_EPOCH + Duration::from_millis(1_764_618_266_123),
            token: "****9f8e".into(),
        }
    }

    fn known(id: &str, project: &str) -> Record {
        Record::ProjectKnown {
            local_id: LocalId::from(id),
            project_id: ProjectId::from(project),
            at: SystemTime::now(),
        }
    }

    fn settled(id: &str) -> Record {
        Record::Settled {
            local_id: LocalId::from(id),
            project_id: None,
            outcome: Settlement::Succeeded { app_url: None },
            at: SystemTime::now(),
        }
    }

    fn block_on<T>(future: JournalFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
            .unwrap()
    }

    #[test]
    fn local_ids_are_unique() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| LocalId::new()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.as_str().starts_with("lcj-")));
    }

    #[test]
    fn unfinished_entries_are_the_started_ones_without_an_outcome_in_order() {
        let journal = MemoryJournal::new();
        for record in [
            Record::Started(entry("b", Kind::Generate, None)),
            Record::Started(entry("a", Kind::FollowUp, Some("p9"))),
            known("b", "p1"),
            Record::Started(entry("c", Kind::Generate, None)),
            settled("c"),
        ] {
            block_on(journal.write(record));
        }
        let open = block_on(journal.unfinished());
        let ids: Vec<_> = open
            .iter()
            .map(|e| (e.local_id.as_str(), e.project_id.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                ("b", Some(ProjectId::from("p1"))),
                ("a", Some(ProjectId::from("p9")))
            ]
        );
    }

    #[test]
    fn a_file_journal_reads_back_what_it_wrote_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let journal = FileJournal::open(&path).unwrap();
            block_on(journal.write(Record::Started(entry("x", Kind::Generate, None))));
            block_on(journal.write(known("x", "p1")));
            block_on(journal.write(Record::Started(entry("y", Kind::Generate, None))));
            block_on(journal.write(settled("y")));
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(
            text.lines().all(|l| l.starts_with("{\"v\":1,\"record\":")),
            "{text}"
        );
        let journal = FileJournal::open(&path).unwrap();
        assert_eq!(journal.torn_lines(), 0);
        let open = block_on(journal.unfinished());
        assert_eq!(open.len(), 1);
        assert_eq!(open[0], {
            let mut e = entry("x", Kind::Generate, None);
            e.project_id = Some("p1".into());
            e
        });
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_reported_and_the_journal_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let journal = FileJournal::open(&path).unwrap();
            block_on(journal.write(Record::Started(entry("x", Kind::Generate, None))));
        }
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"v\":1,\"record\":\"started\",\"local_id\":\"to")
            .unwrap();
        drop(file);
        let journal = FileJournal::open(&path).unwrap();
        assert_eq!(journal.torn_lines(), 1);
        block_on(journal.write(known("x", "p1")));
        let reopened = FileJournal::open(&path).unwrap();
        assert_eq!(reopened.torn_lines(), 0);
        let open = block_on(reopened.unfinished());
        assert_eq!(open[0].project_id, Some(ProjectId::from("p1")));
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_not_a_silent_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        fs::write(&path, "garbage\n{\"v\":1,\"record\":\"project_known\",\"local_id\":\"x\",\"project_id\":\"p\",\"at\":0}\n").unwrap();
        let error = FileJournal::open(&path).unwrap_err();
        assert!(matches!(error, Error::Journal { .. }), "{error:?}");
    }

    #[test]
    fn the_file_is_compacted_to_the_unfinished_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let journal = FileJournal::open(&path).unwrap();
        block_on(journal.write(Record::Started(entry("keep", Kind::FollowUp, Some("p7")))));
        block_on(journal.write(Record::Started(entry("known", Kind::Generate, None))));
        block_on(journal.write(known("known", "p8")));
        for i in 0..COMPACT_SLACK {
            let id = format!("done-{i}");
            block_on(journal.write(Record::Started(entry(&id, Kind::Generate, None))));
            block_on(journal.write(settled(&id)));
        }
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < COMPACT_SLACK + 16, "{lines} lines");
        // Writes after a compaction land in the compacted file.
        block_on(journal.write(known("keep", "p7")));
        block_on(journal.write(Record::Started(entry("after", Kind::Generate, None))));
        let reopened = FileJournal::open(&path).unwrap();
        let open = block_on(reopened.unfinished());
        let ids: Vec<_> = open
            .iter()
            .map(|e| (e.local_id.as_str(), e.project_id.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                ("keep", Some("p7".into())),
                ("known", Some("p8".into())),
                ("after", None)
            ]
        );
    }
}
