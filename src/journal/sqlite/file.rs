//! What the SQLite engine checks before SQLite touches a path: the kind of file,
//! its header, and (read only) whether the database is a journal. Nothing here
//! writes to what is there.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use rusqlite::Connection;

use super::{APPLICATION_ID, SCHEMA_VERSION, SQLITE_MAGIC};
use crate::journal::engine::Problem;
use crate::{Error, Result};

/// What the path held before SQLite was given it.
pub(super) enum Found {
    /// Nothing (created now, empty), or an empty file.
    Empty,
    /// An SQLite database that may be a journal.
    Database,
}

pub(super) fn refused(path: &Path, what: impl fmt::Display) -> Error {
    Error::journal(
        format!(
            "{} is not a laracopilot journal, and was left as it is",
            path.display()
        ),
        Problem::new(what.to_string()),
    )
}

pub(super) fn failed(path: &Path, what: &str, source: impl Into<crate::error::BoxError>) -> Error {
    Error::journal(
        format!("the SQLite journal {} could not {what}", path.display()),
        source,
    )
}

/// What kind of file `meta` describes, for a refusal.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return "it is a symbolic link (open the path it points to instead)";
    }
    if kind.is_dir() {
        return "it is a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "it is a FIFO";
        }
        if kind.is_socket() {
            return "it is a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "it is a device";
        }
    }
    "it is not a regular file"
}

/// Checks what is at `path` before SQLite touches it, creating an empty file
/// (owner-only) when there is nothing. Never follows a symbolic link, never blocks
/// on a FIFO, never writes to what is there.
pub(super) fn check_path(path: &Path) -> Result<Found> {
    for side in ["-wal", "-shm", "-journal"] {
        let mut side_path = path.as_os_str().to_owned();
        side_path.push(side);
        if let Ok(meta) = fs::symlink_metadata(&side_path) {
            if !meta.file_type().is_file() {
                return Err(refused(
                    path,
                    format_args!(
                        "its SQLite side file {} is not a regular file ({})",
                        Path::new(&side_path).display(),
                        kind_of(&meta)
                    ),
                ));
            }
        }
    }
    let before = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => match create(path) {
            Ok(()) => return Ok(Found::Empty),
            // Another process created it meanwhile: check what it made.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::symlink_metadata(path).map_err(|e| failed(path, "be read", e))?
            }
            Err(e) => return Err(failed(path, "be created", e)),
        },
        Err(e) => return Err(failed(path, "be read", e)),
    };
    if !before.file_type().is_file() {
        return Err(refused(path, kind_of(&before)));
    }
    let mut file = open_to_read(path).map_err(|e| failed(path, "be read", e))?;
    let meta = file.metadata().map_err(|e| failed(path, "be read", e))?;
    if !meta.file_type().is_file() || !same_file(&before, &meta) {
        return Err(refused(path, "it was replaced while it was being checked"));
    }
    if meta.len() == 0 {
        return Ok(Found::Empty);
    }
    let mut header = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut header)
        .map_err(|e| failed(path, "be read", e))?;
    let not_sqlite = "it is not an SQLite database (its first bytes are not an SQLite header)";
    if header.len() < 100 || header.get(..16) != Some(&SQLITE_MAGIC[..]) {
        return Err(refused(path, not_sqlite));
    }
    let application_id = be_u32(&header, 68);
    let user_version = be_u32(&header, 60);
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(refused(
            path,
            format_args!(
                "it is the SQLite database of another application (application_id {application_id:#010x})"
            ),
        ));
    }
    if application_id == APPLICATION_ID && user_version > SCHEMA_VERSION {
        return Err(newer(path, user_version));
    }
    Ok(Found::Database)
}

pub(super) fn newer(path: &Path, version: u32) -> Error {
    Error::journal(
        format!(
            "the journal {} has schema version {version}, newer than this SDK's ({SCHEMA_VERSION}): upgrade the SDK; the file was left as it is",
            path.display()
        ),
        Problem::new(format!("journal schema version {version}")),
    )
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

#[cfg(unix)]
fn create(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
}

#[cfg(unix)]
fn open_to_read(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // No symbolic link followed; a FIFO swapped in after the check does not block.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_to_read(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    true
}

/// What a database holds, as far as being a journal goes.
pub(super) struct Inspection {
    pub(super) application_id: u32,
    pub(super) user_version: u32,
    pub(super) tables: Vec<String>,
}

pub(super) fn inspect(connection: &Connection) -> rusqlite::Result<Inspection> {
    let application_id: i64 = connection.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let user_version: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut statement = connection.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let tables = statement
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Inspection {
        // Both are 32-bit header fields that SQLite reads as signed.
        application_id: application_id as u32,
        user_version: user_version as u32,
        tables,
    })
}

impl Inspection {
    /// Whether the database is a journal (or nothing yet): `Err` says why not.
    pub(super) fn verdict(&self, path: &Path) -> Result<()> {
        match self.application_id {
            APPLICATION_ID if self.user_version > SCHEMA_VERSION => {
                Err(newer(path, self.user_version))
            }
            APPLICATION_ID => Ok(()),
            0 if self.tables.is_empty() => Ok(()),
            0 => Err(refused(
                path,
                format_args!(
                    "it is an SQLite database with tables of its own ({})",
                    self.tables.join(", ")
                ),
            )),
            other => Err(refused(
                path,
                format_args!(
                    "it is the SQLite database of another application (application_id {other:#010x})"
                ),
            )),
        }
    }
}
