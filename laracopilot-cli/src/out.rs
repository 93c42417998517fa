//! The program's two outputs. Stdout carries results (a summary, or JSON lines):
//! every write is checked, and a closed stdout becomes [`Failure::Closed`] (exit
//! 141, nothing more printed) instead of a panic. Stderr carries what people read
//! while it runs (notes, progress, errors); a failed write there is ignored, since
//! nobody is left to tell.
//!
//! Every line for people is [cleaned](crate::terminal::clean) here; JSON lines are
//! written by serde_json, which escapes what JSON requires.

use std::io::Write;

use serde_json::Value;

use crate::failure::Failure;
use crate::terminal::{self, Tone};

/// Writes `text` (cleaned) as one line on stdout.
///
/// # Errors
///
/// [`Failure::Closed`] when stdout is a pipe whose reader is gone;
/// [`Failure::Local`] for any other write error.
pub fn line(text: &str) -> Result<(), Failure> {
    write_stdout(&terminal::clean(text))
}

/// Writes one JSON object on its own line on stdout.
///
/// # Errors
///
/// As [`line()`].
pub fn json(value: &Value) -> Result<(), Failure> {
    write_stdout(&value.to_string())
}

fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::BrokenPipe => Failure::Closed,
            _ => Failure::Local(format!("cannot write to stdout: {error}")),
        })
}

/// Writes `text` as it is on stderr (the caller cleaned it, or it is the program's
/// own); a failed write is ignored.
pub fn stderr_raw(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Prints a labeled note on stderr (`"       Using the embedded offline ..."`), the
/// text cleaned, the label in color on a terminal.
pub fn note(verb: &str, text: &str) {
    stderr_raw(&terminal::label(terminal::colors(), Tone::Good, verb, text));
}

/// Prints a labeled warning on stderr, as [`note`] does.
pub fn warn(verb: &str, text: &str) {
    stderr_raw(&terminal::label(terminal::colors(), Tone::Warn, verb, text));
}

/// Whether stdout can no longer be written: it is a pipe (or socket) whose reading
/// end is closed. On Linux `poll(2)` with no requested events reports `POLLERR` for
/// such a pipe, and `POLLHUP` for a hung-up terminal or socket; a file or an open
/// pipe reports neither. Elsewhere, `false`: the next write tells.
pub fn stdout_closed() -> bool {
    #[cfg(unix)]
    {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let stdout = std::io::stdout();
        let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&now)) {
            Ok(_) => fds
                .iter()
                .any(|fd| fd.revents().intersects(PollFlags::ERR | PollFlags::HUP)),
            Err(_) => false,
        }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// [`Failure::Closed`] when [stdout is closed](stdout_closed): a check before work
/// whose result nobody could read (a generation that spends credits, a settlement).
///
/// # Errors
///
/// [`Failure::Closed`].
pub fn ensure_open() -> Result<(), Failure> {
    if stdout_closed() {
        return Err(Failure::Closed);
    }
    Ok(())
}
