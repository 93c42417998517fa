//! The bridge between blocking callers and async code: a small tokio runtime that
//! runs a future to completion on the calling thread, wherever that thread is.

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

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
                may_have_started_work: false,
            })
    }

    /// Runs `future` to completion and returns its output, from any thread.
    ///
    /// - Outside any runtime: `block_on` on the calling thread.
    /// - On a multi-thread runtime: the same, inside `block_in_place`, so that the
    ///   runtime moves its other tasks to other workers meanwhile.
    /// - On a current-thread runtime, whose only thread the call blocks: only when no
    ///   other task lives on that runtime (nothing there can be waiting to run, such
    ///   as a test server the call talks to), on a helper thread started for the call
    ///   (`block_on` is not allowed on the runtime's own thread). Otherwise an error at
    ///   once: the call could wait for such a task for good.
    ///
    /// A panic of the future is resumed on the calling thread.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] on a current-thread runtime with other tasks alive;
    /// [`Error::Transport`] if the runtime stopped (not expected: every caller holds it
    /// alive) or the helper thread cannot be started.
    pub(super) fn run<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.0.as_ref().ok_or_else(stopped)?;
        let Ok(handle) = Handle::try_current() else {
            return Ok(runtime.block_on(future));
        };
        if handle.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return Ok(tokio::task::block_in_place(|| runtime.block_on(future)));
        }
        // The task making this call (if it is one) counts itself; the blocking
        // threads of `spawn_blocking` count as none.
        let others = handle
            .metrics()
            .num_alive_tasks()
            .saturating_sub(usize::from(tokio::task::try_id().is_some()));
        if others > 0 {
            return Err(Error::config(format!(
                "the blocking client was called on a current-thread tokio runtime that runs {others} other task(s), which the call would stall (a server it talks to would never answer): use the async client there, a multi-thread runtime, or a plain thread (std::thread::spawn)"
            )));
        }
        std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("laracopilot-blocking-call".into())
                .spawn_scoped(scope, || runtime.block_on(future))
                .map_err(|e| Error::Transport {
                    source: Box::new(e),
                    project_id: None,
                    attempts: 0,
                    may_have_started_work: false,
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
        may_have_started_work: false,
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

    fn runs_borrows_and_resumes_panics(runtime: &Runtime) {
        assert_eq!(runtime.run(async { 6 * 7 }).unwrap(), 42);
        let mut borrowed = vec![1];
        runtime.run(async { borrowed.push(2) }).unwrap();
        assert_eq!(borrowed, [1, 2]);
        let payload = catch_unwind(AssertUnwindSafe(|| runtime.run(async { panic!("boom") })))
            .expect_err("the panic reaches the caller");
        assert_eq!(panic_message(payload), "boom");
        // Still usable afterwards.
        assert_eq!(runtime.run(async { 1 }).unwrap(), 1);
        // The future runs with the client's runtime, whose timers work.
        runtime
            .run(async { tokio::time::sleep(std::time::Duration::from_millis(1)).await })
            .unwrap();
    }

    #[test]
    fn outside_a_runtime_futures_run_and_panics_reach_the_caller() {
        assert!(Handle::try_current().is_err());
        runs_borrows_and_resumes_panics(&Runtime::new().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_thread_runtime_futures_run_and_panics_reach_the_caller() {
        let runtime = Runtime::new().unwrap();
        runs_borrows_and_resumes_panics(&runtime);
        drop(runtime);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn from_spawn_blocking_on_a_multi_thread_runtime_futures_run() {
        let answer = tokio::task::spawn_blocking(|| {
            let runtime = Runtime::new().unwrap();
            runtime.run(async { 7 }).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(answer, 7);
    }

    #[tokio::test]
    async fn on_a_current_thread_runtime_alone_futures_run_and_panics_reach_the_caller() {
        let runtime = Runtime::new().unwrap();
        runs_borrows_and_resumes_panics(&runtime);
        drop(runtime);
    }

    #[tokio::test]
    async fn on_a_current_thread_runtime_with_other_tasks_a_call_fails_at_once() {
        // A task the call could be waiting for, on the runtime the call would block.
        let (ready, wait) = tokio::sync::oneshot::channel::<()>();
        let other = tokio::spawn(async move {
            let _ = wait.await;
        });
        tokio::task::yield_now().await;
        let runtime = Runtime::new().unwrap();
        let started = std::time::Instant::now();
        let error = runtime.run(std::future::pending::<()>()).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let Error::Config { message } = error else {
            panic!("{error:?}");
        };
        assert!(
            message.contains("current-thread") && message.contains("1 other"),
            "{message}"
        );
        ready.send(()).unwrap();
        other.await.unwrap();
        // With the task gone, the same call runs.
        assert_eq!(runtime.run(async { 3 }).unwrap(), 3);
        drop(runtime);
    }

    #[test]
    fn from_spawn_blocking_on_a_busy_current_thread_runtime_futures_run() {
        let caller = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answer = caller.block_on(async {
            let _busy = tokio::spawn(std::future::pending::<()>());
            tokio::task::spawn_blocking(|| {
                let runtime = Runtime::new().unwrap();
                runtime.run(async { 5 }).unwrap()
            })
            .await
            .unwrap()
        });
        assert_eq!(answer, 5);
    }
}
