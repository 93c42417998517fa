//! The bridge between blocking callers and async code: a small tokio runtime that
//! runs a future to completion from any thread, inside a tokio runtime or not.

use std::future::Future;
use std::sync::mpsc;

use tokio::runtime::Handle;

use crate::{Error, Result};

/// The runtime of a blocking client; `None` only while being dropped.
pub(super) struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    pub(super) fn new() -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("laracopilot-blocking")
            .enable_all()
            .build()
            .map(|runtime| Runtime(Some(runtime)))
            .map_err(|e| Error::Transport {
                source: Box::new(e),
                project_id: None,
                attempts: 0,
            })
    }

    /// Runs `future` to completion and returns its output, from any thread.
    ///
    /// Outside a runtime: `block_on` on the calling thread. Inside one (where
    /// `block_on` would panic): as a task of this runtime, the calling thread waiting
    /// on a channel. A panic of the future is resumed on the calling thread.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] if the runtime stopped before the future completed (not
    /// expected: every caller holds the runtime alive).
    pub(super) fn run<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.0.as_ref().ok_or_else(stopped)?;
        if Handle::try_current().is_err() {
            return Ok(runtime.block_on(future));
        }
        let (sender, receiver) = mpsc::sync_channel(1);
        let task = runtime.spawn(future);
        runtime.spawn(async move {
            // The receiver is gone only if the waiting thread itself went away.
            let _ = sender.send(task.await);
        });
        match receiver.recv() {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Ok(Err(_)) | Err(_) => Err(stopped()),
        }
    }

    /// As [`Runtime::run`], for a future that borrows from the caller: inside a
    /// runtime it runs on a scoped helper thread (started for this call) instead of
    /// as a task.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] if the helper thread cannot be started.
    pub(super) fn run_borrowing<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.0.as_ref().ok_or_else(stopped)?;
        if Handle::try_current().is_err() {
            return Ok(runtime.block_on(future));
        }
        std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("laracopilot-blocking-call".into())
                .spawn_scoped(scope, || runtime.block_on(future))
                .map_err(|e| Error::Transport {
                    source: Box::new(e),
                    project_id: None,
                    attempts: 0,
                })?;
            match helper.join() {
                Ok(output) => Ok(output),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let Some(runtime) = self.0.take() else { return };
        if Handle::try_current().is_ok() {
            // A plain drop waits for the worker thread, which tokio forbids (with a
            // panic) inside an async context: let it stop in the background instead.
            runtime.shutdown_background();
        } else {
            drop(runtime);
        }
    }
}

pub(super) fn stopped() -> Error {
    Error::Transport {
        source: "the blocking client's runtime stopped".into(),
        project_id: None,
        attempts: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::*;

    fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    }

    fn runs_and_resumes_panics(runtime: &Runtime) {
        assert_eq!(runtime.run(async { 6 * 7 }).unwrap(), 42);
        let mut borrowed = vec![1];
        runtime.run_borrowing(async { borrowed.push(2) }).unwrap();
        assert_eq!(borrowed, [1, 2]);

        let payload = catch_unwind(AssertUnwindSafe(|| runtime.run(async { panic!("boom") })))
            .expect_err("the panic reaches the caller");
        assert_eq!(panic_message(payload), "boom");
        let payload = catch_unwind(AssertUnwindSafe(|| {
            runtime.run_borrowing(async { panic!("bang") })
        }))
        .expect_err("the panic reaches the caller");
        assert_eq!(panic_message(payload), "bang");
        // Still usable afterwards.
        assert_eq!(runtime.run(async { 1 }).unwrap(), 1);
    }

    #[test]
    fn outside_a_runtime_futures_run_and_panics_reach_the_caller() {
        assert!(Handle::try_current().is_err());
        runs_and_resumes_panics(&Runtime::new().unwrap());
    }

    #[tokio::test]
    async fn inside_a_runtime_futures_run_and_panics_reach_the_caller() {
        assert!(Handle::try_current().is_ok());
        let runtime = Runtime::new().unwrap();
        runs_and_resumes_panics(&runtime);
        drop(runtime);
    }

    #[test]
    fn the_future_sees_the_clients_runtime_not_the_callers() {
        let caller = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let runtime = Runtime::new().unwrap();
        let name = caller.block_on(async {
            runtime
                .run(async { std::thread::current().name().map(str::to_owned) })
                .unwrap()
        });
        assert_eq!(name.as_deref(), Some("laracopilot-blocking"));
    }
}
