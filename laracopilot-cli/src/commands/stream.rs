//! Running one generation to its end, as generate and follow-up show it: progress on
//! stderr, then a summary for people or, with `--json`, a line per event and the
//! outcome line on stdout. A closed stdout stops the run at once.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use laracopilot::{Generation, Outcome};
use serde_json::Value;

use crate::display::{human_duration, Display};
use crate::failure::Failure;
use crate::{json, out};

/// Runs `generation` to its end with the progress display, then prints the outcome
/// (with `--json` its line, with `journal_id` when journaled and `extra`; otherwise
/// the summary for people, when `summary`).
/// With `--json`, every event is printed as it arrives; when stdout's reader is gone
/// the generation is dropped at once (the server goes on generating; a journal
/// entry stays unfinished, which is the truth) and the run ends with
/// [`Failure::Closed`].
///
/// # Errors
///
/// The generation's error (after the display said so), or a closed stdout.
pub async fn stream(
    generation: Generation,
    json_lines: bool,
    extra: Vec<(&str, Value)>,
    summary: bool,
) -> Result<Outcome, Failure> {
    let journal_id = generation.progress().journal_id().map(|id| id.to_string());
    if generation.is_replay() {
        let first = journal_id.as_deref().unwrap_or("the journal");
        let text = format!(
            "the outcome of the first call with this idempotency key ({first}): nothing was sent"
        );
        out::note("Replaying", &text);
    } else if let Some(id) = &journal_id {
        out::note("Journal", &format!("entry {id}"));
    }
    let mut display = Display::new(json_lines, generation.progress().clone());
    let failed_write: RefCell<Option<Failure>> = RefCell::new(None);
    let finished = {
        let display = &mut display;
        let failed_write = &failed_write;
        let drive = generation.finish_with(|event| {
            if json_lines && failed_write.borrow().is_none() {
                if let Err(failure) = display.above(|| out::json(&json::event(event))) {
                    *failed_write.borrow_mut() = Some(failure);
                }
            }
            display.event(event);
        });
        until_failed(drive, failed_write).await
    };
    if let Some(failure) = failed_write.into_inner() {
        display.abandon();
        return Err(failure);
    }
    let result = finished.ok_or(Failure::Closed)?;
    let mut extra = extra;
    if let Some(id) = journal_id {
        extra.push(("journal_id", Value::from(id)));
    }
    match result {
        Ok(outcome) => {
            display.finished(&outcome);
            if json_lines {
                out::json(&json::outcome(json::outcome_object(&outcome, extra)))?;
            } else if summary {
                print_summary(&outcome)?;
            }
            Ok(outcome)
        }
        Err(error) => {
            display.failed(&error);
            Err(Failure::Sdk(error))
        }
    }
}

/// Drives `future` until it completes (`Some`) or a write fails (`None`): it is
/// then dropped, and the generation it drives with it.
async fn until_failed<F: Future>(
    future: F,
    failed: &RefCell<Option<Failure>>,
) -> Option<F::Output> {
    let mut future = pin!(future);
    std::future::poll_fn(|cx| {
        if failed.borrow().is_some() {
            return Poll::Ready(None);
        }
        match future.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending if failed.borrow().is_some() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The summary of an outcome for people, on stdout.
///
/// # Errors
///
/// A closed stdout.
pub fn print_summary(outcome: &Outcome) -> Result<(), Failure> {
    let progress = &outcome.progress;
    let id = outcome.project_id().map_or("-", |id| id.as_str());
    out::line(&format!("Project: {id}"))?;
    let url = outcome.app_url.as_deref().unwrap_or("(no URL given)");
    out::line(&format!("App:     {url}"))?;
    out::line(&format!(
        "Files:   {} created, {} modified",
        progress.files_created(),
        progress.files_modified()
    ))?;
    out::line(&format!("Time:    {}", human_duration(progress.elapsed())))
}
