//! The progress display of a generation, on stderr, driven by
//! [`laracopilot::Progress`].
//!
//! On a terminal: a bar for the container (percentage and step), then a spinner while
//! the application is generated (elapsed time, file count, last file), with a line
//! per project and per file printed above them. Anywhere else: the same lines, plain
//! (no bar, no control characters), plus one per container step and per phase
//! change, for logs and for tools that read them. Every piece of server text is
//! [cleaned](crate::terminal::clean), in the lines and in the bar's message alike.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use laracopilot::{Error, Event, Outcome, Phase, Progress};

use crate::out;
use crate::terminal::{self, clean, label, Tone};

/// After this long without an event, the spinner says so.
const QUIET: Duration = Duration::from_secs(10);

/// The display of one generation.
pub struct Display {
    /// Shared with the bar's ticker thread, which reads the clock from it.
    progress: Arc<Mutex<Progress>>,
    mode: Mode,
    /// The outcome goes to stdout as JSON rather than as a summary for people.
    json: bool,
}

enum Mode {
    /// A terminal: a bar or spinner, with lines printed above it.
    Terminal {
        bar: ProgressBar,
        color: bool,
        /// The phase the bar is styled for.
        styled: Styled,
    },
    /// Not a terminal: plain lines.
    Lines,
    /// `--json` without a terminal to draw on: nothing.
    Silent,
}

#[derive(Clone, Copy, PartialEq)]
enum Styled {
    Waiting,
    Container,
    Generating,
}

impl Display {
    /// The display of a generation, continuing from `progress` (the generation's
    /// progress before its first event: its clock and, for a follow-up, its
    /// project), on stderr: a bar on a terminal; plain lines elsewhere, or nothing
    /// at all with `--json` (whose lines are on stdout).
    pub fn new(json: bool, progress: Progress) -> Display {
        let progress = Arc::new(Mutex::new(progress));
        // With --json on a terminal, the JSON lines are the display.
        let mode = if terminal::stderr_is_terminal() && !(json && std::io::stdout().is_terminal()) {
            let color = terminal::colors();
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
            bar.set_style(spinner_style(&progress, color));
            bar.set_prefix("Waiting");
            bar.set_message("for the first event");
            bar.enable_steady_tick(Duration::from_millis(100));
            Mode::Terminal {
                bar,
                color,
                styled: Styled::Waiting,
            }
        } else if json {
            Mode::Silent
        } else {
            Mode::Lines
        };
        Display {
            progress,
            mode,
            json,
        }
    }

    /// Runs `print` (which writes to stdout) with the bar out of the way.
    pub fn above<T>(&self, print: impl FnOnce() -> T) -> T {
        match &self.mode {
            Mode::Terminal { bar, .. } => bar.suspend(print),
            _ => print(),
        }
    }

    /// Shows what `event` changed.
    pub fn event(&mut self, event: &Event) {
        // The ticker thread locks the progress to draw: never hold the lock while
        // drawing.
        let (before, before_since, modified_before, progress) = {
            let mut shared = lock(&self.progress);
            let before = (
                shared.phase(),
                shared.phase_since(),
                shared.files_modified(),
            );
            shared.apply(event);
            (before.0, before.1, before.2, shared.clone())
        };
        let color = matches!(self.mode, Mode::Terminal { color: true, .. });
        let plain = matches!(self.mode, Mode::Lines);
        let mut lines = Vec::new();
        if progress.phase() != before && progress.phase() == Phase::Generating {
            if let (Phase::Provisioning { .. }, Some(from), Some(to)) =
                (before, before_since, progress.phase_since())
            {
                let took = human_duration(to.saturating_duration_since(from));
                let text = format!("ready in {took}");
                lines.push(label(color, Tone::Good, "Container", &text));
            }
            if plain {
                let what = match (before, progress.project_id()) {
                    (Phase::Waiting, Some(id)) => format!("changes to project {id}"),
                    _ => "the application".to_owned(),
                };
                lines.push(label(color, Tone::Good, "Generating", &what));
            }
        }
        match event {
            Event::ProjectCreated(created) => {
                let mut text = format!("{} created", created.project_id);
                if let Some(url) = &created.app_url {
                    let _ = write!(text, ": {url}");
                }
                lines.push(label(color, Tone::Good, "Project", &text));
            }
            Event::ContainerProgress(step) if plain => {
                let percent = match step.percentage {
                    Some(p) => format!("{:>3.0}%", p.clamp(0.0, 100.0)),
                    None => "    ".to_owned(),
                };
                let text = format!("{percent} {}", step.message);
                lines.push(label(color, Tone::Info, "Container", &text));
            }
            Event::FileCreated(file) => {
                // `Progress` decides what counts as a modification.
                let modified = progress.files_modified() > modified_before;
                let verb = if modified { "Modified" } else { "Created" };
                let path = file.path.as_deref().unwrap_or("(a file without a path)");
                lines.push(label(color, Tone::Info, verb, path));
            }
            _ => {}
        }
        match &mut self.mode {
            Mode::Silent => {}
            Mode::Lines => lines.iter().for_each(|line| out::stderr_raw(line)),
            Mode::Terminal { bar, styled, .. } => {
                for line in lines {
                    bar.println(line);
                }
                redraw(bar, styled, &progress, &self.progress, color);
            }
        }
    }

    /// The generation succeeded: clears the bar, and says so in a "Finished" line
    /// where no summary for people follows on the terminal (plain lines, `--json`).
    pub fn finished(&mut self, outcome: &Outcome) {
        let progress = &outcome.progress;
        let text = format!(
            "{} in {}",
            files(progress.files()),
            human_duration(progress.elapsed())
        );
        if let (Mode::Terminal { bar, .. }, false) = (&self.mode, self.json) {
            bar.finish_and_clear();
            // A blank line between the progress and the summary that follows.
            out::stderr_raw("");
            self.mode = Mode::Silent;
            return;
        }
        self.end(Tone::Good, "Finished", &text);
    }

    /// The generation failed with `error` (which the caller reports).
    pub fn failed(&mut self, error: &Error) {
        let mut progress = lock(&self.progress).clone();
        progress.apply_error(error);
        let text = format!(
            "{} after {} and {}",
            error.kind(),
            files(progress.files()),
            human_duration(progress.elapsed())
        );
        self.end(Tone::Bad, "Failed", &text);
    }

    /// Stops drawing without a word (stdout's reader is gone).
    pub fn abandon(&mut self) {
        if let Mode::Terminal { bar, .. } = &self.mode {
            bar.finish_and_clear();
        }
        self.mode = Mode::Silent;
    }

    fn end(&mut self, tone: Tone, verb: &str, text: &str) {
        match &self.mode {
            Mode::Silent => {}
            Mode::Lines => out::stderr_raw(&label(false, tone, verb, text)),
            Mode::Terminal { bar, color, .. } => {
                bar.finish_and_clear();
                out::stderr_raw(&label(*color, tone, verb, text));
            }
        }
        self.mode = Mode::Silent;
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Mode::Terminal { bar, .. } = &self.mode {
            bar.finish_and_clear();
        }
    }
}

/// Restyles the bar for the phase and updates its position and message.
fn redraw(
    bar: &ProgressBar,
    styled: &mut Styled,
    progress: &Progress,
    shared: &Arc<Mutex<Progress>>,
    color: bool,
) {
    match progress.phase() {
        Phase::Provisioning { percentage, .. } => {
            if *styled != Styled::Container {
                bar.set_style(container_style(shared, color));
                bar.set_prefix("Container");
                *styled = Styled::Container;
            }
            // Clamped to 0..=100 by `Progress`: the cast cannot truncate.
            bar.set_position(percentage.unwrap_or(0.0).round() as u64);
            let message = progress.message().unwrap_or("provisioning");
            bar.set_message(clean(message).into_owned());
        }
        Phase::Generating => {
            if *styled != Styled::Generating {
                bar.set_style(spinner_style(shared, color));
                bar.set_prefix("Generating");
                *styled = Styled::Generating;
            }
            let mut message = files(progress.files());
            if let Some(path) = progress.last_path() {
                let _ = write!(message, ", last {}", clean(path));
            }
            bar.set_message(message);
        }
        _ => {}
    }
}

/// `[====>    ]  40% 0:03  Installing Laravel...`
fn container_style(progress: &Arc<Mutex<Progress>>, color: bool) -> ProgressStyle {
    let template = if color {
        "{prefix:>12.cyan.bold} [{bar:30.cyan/blue}] {pos:>3}% {clock:.dim}  {wide_msg}{quiet:.yellow}"
    } else {
        "{prefix:>12} [{bar:30}] {pos:>3}% {clock}  {wide_msg}{quiet}"
    };
    style(template, progress).progress_chars("=> ")
}

/// `⠙ 0:07  12 files, last app/Models/Task.php`
fn spinner_style(progress: &Arc<Mutex<Progress>>, color: bool) -> ProgressStyle {
    let template = if color {
        "{prefix:>12.cyan.bold} {spinner:.cyan} {clock:.dim}  {wide_msg}{quiet:.yellow}"
    } else {
        "{prefix:>12} {spinner} {clock}  {wide_msg}{quiet}"
    };
    style(template, progress).tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

/// A template with the keys `clock` (the generation's elapsed time) and `quiet`
/// (how long no event arrived, once that is long), read from the progress.
fn style(template: &str, progress: &Arc<Mutex<Progress>>) -> ProgressStyle {
    let clock = Arc::clone(progress);
    let quiet = Arc::clone(progress);
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "clock",
            move |_: &ProgressState, out: &mut dyn fmt::Write| {
                let _ = out.write_str(&clock_time(lock(&clock).elapsed()));
            },
        )
        .with_key(
            "quiet",
            move |_: &ProgressState, out: &mut dyn fmt::Write| {
                let progress = lock(&quiet);
                if progress.stalled(QUIET) {
                    let quiet_for = human_duration(progress.since_last_event());
                    let _ = write!(out, "  (no event for {quiet_for})");
                }
            },
        )
}

fn lock(progress: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `"1 file"`, `"12 files"`.
fn files(count: u64) -> String {
    match count {
        1 => "1 file".to_owned(),
        n => format!("{n} files"),
    }
}

/// `"0.4s"`, `"12s"`, `"3m 05s"`, `"1h 02m"`.
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..10 => format!("{:.1}s", duration.as_secs_f64()),
        10..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `"0:07"`, `"12:45"`, `"1:02:03"`.
fn clock_time(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs < 3600 {
        format!("{}:{:02}", secs / 60, secs % 60)
    } else {
        format!("{}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
    }
}
