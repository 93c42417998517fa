//! The blocking client's own runtime: one thread running a current-thread tokio
//! runtime, to which every call is sent as a task; the caller waits for its answer
//! on a channel.

use std::future::Future;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;

use crate::{Error, Result};

/// The runtime thread of a blocking client, shared by its clones and generations;
/// it stops when the last of them is dropped.
pub(super) struct Runtime {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Starts the thread and its runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] when the thread or the runtime cannot start.
    pub(super) fn new() -> Result<Self> {
        let (ready, started) = mpsc::sync_channel(1);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("laracopilot-blocking".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let _ = ready.send(Ok(runtime.handle().clone()));
                // Drives every task sent here (and the I/O and timers) until stopped.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| {
                Error::runtime(
                    "the blocking client's runtime thread could not start",
                    Some(Box::new(e)),
                )
            })?;
        let handle = match started.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(error)) => {
                let _ = thread.join();
                return Err(Error::runtime(
                    "the blocking client's runtime could not start",
                    Some(Box::new(error)),
                ));
            }
            Err(_) => return Err(stopped_error()),
        };
        Ok(Runtime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `future` on the runtime thread and waits for its output, wherever the
    /// caller is: a plain thread, a multi-thread tokio runtime (the wait is inside
    /// `block_in_place`, so the runtime's other tasks move to its other workers), or
    /// a current-thread runtime (whose thread simply waits: the call's I/O runs on
    /// the client's own thread). A panic of the future is resumed on the caller.
    ///
    /// The one case no design can serve: a server the call needs, running as a task
    /// of the caller's current-thread runtime, whose only thread the wait blocks.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] when the runtime thread is gone.
    pub(super) fn run<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (answer, answered) = mpsc::sync_channel(1);
        let task = self.handle.spawn(future);
        self.handle.spawn(async move {
            let _ = answer.send(task.await);
        });
        let wait = || answered.recv();
        let received = match Handle::try_current() {
            Ok(caller) if caller.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        match received {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Ok(Err(_)) | Err(_) => Err(stopped_error()),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Waiting for the thread is fine from a plain thread; inside an async
        // context (or on the runtime thread itself) it stops in the background.
        let own_thread = thread.thread().id() == thread::current().id();
        if Handle::try_current().is_err() && !own_thread {
            let _ = thread.join();
        }
    }
}

fn stopped_error() -> Error {
    Error::runtime("the blocking client's runtime thread stopped", None)
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::time::Duration;

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
        let payload = catch_unwind(AssertUnwindSafe(|| runtime.run(async { panic!("boom") })))
            .expect_err("the panic reaches the caller");
        assert_eq!(panic_message(payload), "boom");
        // Still usable afterwards.
        assert_eq!(runtime.run(async { 1 }).unwrap(), 1);
        // The future runs on the client's runtime, whose timers work.
        runtime
            .run(async { tokio::time::sleep(Duration::from_millis(1)).await })
            .unwrap();
        // Every call runs on the one runtime thread.
        let name = runtime
            .run(async { thread::current().name().map(str::to_owned) })
            .unwrap();
        assert_eq!(name.as_deref(), Some("laracopilot-blocking"));
    }

    #[test]
    fn outside_a_runtime_futures_run_and_panics_reach_the_caller() {
        assert!(Handle::try_current().is_err());
        runs_and_resumes_panics(&Runtime::new().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_thread_runtime_futures_run_and_panics_reach_the_caller() {
        let runtime = Runtime::new().unwrap();
        runs_and_resumes_panics(&runtime);
        drop(runtime);
    }

    #[tokio::test]
    async fn on_a_current_thread_runtime_with_other_tasks_calls_still_run() {
        // A task alive on the caller's runtime (a metrics exporter, say) does not
        // keep a blocking call from running: its I/O is on the client's thread.
        let (release, wait) = oneshot::channel::<()>();
        let other = tokio::spawn(async move {
            let _ = wait.await;
        });
        tokio::task::yield_now().await;
        let runtime = Runtime::new().unwrap();
        runs_and_resumes_panics(&runtime);
        release.send(()).unwrap();
        other.await.unwrap();
        drop(runtime);
    }

    #[test]
    fn from_spawn_blocking_of_a_current_thread_runtime_futures_run() {
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

    #[test]
    fn dropping_the_runtime_outside_a_runtime_waits_for_its_thread_to_end() {
        struct SetOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let runtime = Runtime::new().unwrap();
        let guard = SetOnDrop(std::sync::Arc::clone(&ended));
        runtime.handle.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        drop(runtime);
        // The runtime dropped its tasks before the drop returned.
        assert!(ended.load(std::sync::atomic::Ordering::SeqCst));
    }
}
