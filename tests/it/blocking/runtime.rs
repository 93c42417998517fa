//! The blocking client never deadlocks inside a tokio runtime: every call runs on
//! the client's own runtime thread, so it works on a current-thread runtime (what
//! `#[tokio::test]` builds) whether or not that runtime runs other tasks (which go on
//! once the call returns), on a multi-thread runtime and from `spawn_blocking`; the
//! one case no design can serve (the call's server is a task of the caller's own
//! current-thread runtime) ends with the call's timeout, not a hang; and events
//! already received are handed out, then the stream goes on on the client's thread.
//!
//! Every scenario runs on a thread of its own, so that a deadlock fails the test after
//! a bound instead of hanging it.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::{self, on_thread, RawServer, Step, PATIENCE};
use laracopilot::{blocking, Error, Event, WaitOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on its own thread with a whole generation and a ready project.
fn server() -> RawServer {
    RawServer::start(|request| {
        let answer = if request.method == "GET" {
            raw::project_answer("p1", "ready")
        } else {
            raw::sse_answer(&[
                r#"{"type":"project_created","project_id":"p1"}"#,
                r#"{"type":"stream_end","project_id":"p1"}"#,
            ])
        };
        vec![Step::Write(answer), Step::Close]
    })
}

fn client(base: &str) -> blocking::Client {
    raw::builder(base).build_blocking().unwrap()
}

/// Every call of the blocking client, each of which must work.
fn every_call_works(client: &blocking::Client) {
    let outcome = client
        .generate("Build an app")
        .send()
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(
        outcome.project_id().as_ref().map(|id| id.as_str()),
        Some("p1")
    );
    let events: Vec<_> = client
        .follow_up("p1", "Add a page")
        .send()
        .unwrap()
        .take(10)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        client.project("p1").unwrap().project_status.as_deref(),
        Some("ready")
    );
    let options = WaitOptions::default().timeout(Duration::from_secs(5));
    client.wait_for_project("p1", options).unwrap();
    let _ = client.verify_token();
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn on_a_current_thread_runtime_with_no_other_task_the_blocking_client_works() {
    let server = server();
    let base = server.base_url();
    on_thread(
        PATIENCE,
        "the calls on a current-thread runtime",
        move || {
            current_thread().block_on(async {
                let client = client(&base);
                every_call_works(&client);
                // Dropped inside the runtime: no panic, no wait.
                drop(client);
            })
        },
    );
    assert_eq!(server.count("POST"), 2);
}

/// A tiny server spawned as a task on the current runtime: it answers every request
/// with `answer` (and counts the connections), as long as its runtime runs it.
async fn spawn_server_task(
    answer: Vec<u8>,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 1 << 20 {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, connections, task)
}

#[test]
fn on_a_current_thread_runtime_that_runs_another_task_every_call_works() {
    // Was refused with `Error::Config` before the blocking client had a runtime
    // thread of its own; every call now runs there.
    let server = server();
    let base = server.base_url();
    let resumed = on_thread(PATIENCE, "the calls beside a task", move || {
        current_thread().block_on(async {
            // Another task of this runtime, waiting for a message.
            let (tell, told) = tokio::sync::oneshot::channel::<u32>();
            let other = tokio::spawn(async move { told.await.unwrap() + 1 });
            tokio::task::yield_now().await;
            let client = client(&base);
            every_call_works(&client);
            // The other task is still there, and runs once the thread is free.
            tell.send(41).unwrap();
            let resumed = other.await.unwrap();
            drop(client);
            resumed
        })
    });
    assert_eq!(resumed, 42);
    assert_eq!(server.count("POST"), 2);
    assert_eq!(
        server.count("GET"),
        3,
        "project, wait_for_project, verify_token"
    );
}

#[test]
fn a_server_that_is_a_task_of_the_callers_current_thread_runtime_times_the_call_out() {
    // The one case no design can serve: the caller's only thread waits for the call,
    // and the call waits for a server that needs that thread. The call's own
    // timeout ends it: no hang.
    let error = on_thread(PATIENCE, "a call to a server beside it", || {
        current_thread().block_on(async {
            let (addr, _connections, task) =
                spawn_server_task(raw::project_answer("p1", "ready")).await;
            let client = raw::builder(&format!("http://{addr}/api/v1"))
                .request_timeout(Duration::from_secs(1))
                .build_blocking()
                .unwrap();
            let error = client.project("p1").unwrap_err();
            task.abort();
            error
        })
    });
    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: laracopilot::TimeoutKind::Request,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn on_a_multi_thread_runtime_the_blocking_client_works_with_a_server_on_that_runtime() {
    on_thread(PATIENCE, "the calls on a multi-thread runtime", || {
        multi_thread().block_on(async {
            let (addr, connections, task) =
                spawn_server_task(raw::project_answer("p1", "ready")).await;
            let client = client(&format!("http://{addr}/api/v1"));
            // The call blocks this worker; the other one serves the request.
            let project = client.project("p1").unwrap();
            assert_eq!(project.project_status.as_deref(), Some("ready"));
            // From a task too.
            let from_task = tokio::spawn(async move { client.project("p1").map(|_| ()) });
            from_task.await.unwrap().unwrap();
            assert_eq!(connections.load(Ordering::SeqCst), 2);
            task.abort();
        })
    });
}

#[test]
fn from_spawn_blocking_the_blocking_client_works() {
    let server = server();
    let base = server.base_url();
    on_thread(PATIENCE, "the calls from spawn_blocking", move || {
        let on_multi = base.clone();
        multi_thread().block_on(async move {
            tokio::task::spawn_blocking(move || every_call_works(&client(&on_multi)))
                .await
                .unwrap();
        });
        current_thread().block_on(async move {
            tokio::task::spawn_blocking(move || every_call_works(&client(&base)))
                .await
                .unwrap();
        });
    });
    assert_eq!(server.count("POST"), 4);
}

/// A stream whose first chunk holds `count` events (no `stream_end`), then silence.
fn one_chunk_then_silence(count: usize) -> RawServer {
    RawServer::start(move |_| {
        let mut events = vec![r#"{"type":"project_created","project_id":"p1"}"#.to_owned()];
        for i in 1..count {
            events.push(format!(
                r#"{{"type":"tool_progress","message":"step {i}"}}"#
            ));
        }
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        // Head and events in one write: one read on the client's side.
        vec![Step::Write(raw::sse_answer(&events)), Step::Stall]
    })
}

#[test]
fn events_already_received_are_handed_out_then_the_stream_goes_on_on_the_clients_thread() {
    const COUNT: usize = 40;
    let server = one_chunk_then_silence(COUNT);
    let base = server.base_url();
    let (first, rest) = on_thread(PATIENCE, "the iteration", move || {
        current_thread().block_on(async {
            let client = raw::builder(&base)
                .idle_timeout(Some(Duration::from_secs(1)))
                .build_blocking()
                .unwrap();
            let mut generation = client.generate("Build an app").send().unwrap();
            // The first event needs I/O: the chunk is read.
            let first = generation.next().expect("an event").expect("not an error");
            // Another task lives on the caller's runtime from now on: the items
            // already received come out, and the ones that need I/O are still
            // driven, on the client's own thread (the silence ends in the idle
            // timeout; it was refused with `Error::Config` before).
            let blocker = tokio::spawn(std::future::pending::<()>());
            let rest: Vec<_> = generation.by_ref().take(COUNT * 2).collect();
            blocker.abort();
            (first, rest)
        })
    });
    assert!(matches!(first, Event::ProjectCreated(_)), "{first:?}");
    let received: Vec<&Event> = rest.iter().map_while(|item| item.as_ref().ok()).collect();
    assert_eq!(received.len(), COUNT - 1, "{rest:?}");
    assert!(received.iter().all(|e| matches!(e, Event::ToolProgress(_))));
    assert_eq!(rest.len(), COUNT, "{rest:?}");
    let Some(Err(error)) = rest.last() else {
        panic!("{:?}", rest.last());
    };
    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: laracopilot::TimeoutKind::Idle,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.project_id().map(|id| id.as_str()), Some("p1"));
}

#[test]
fn events_already_received_come_out_promptly_then_the_idle_timeout_ends_the_stream() {
    const COUNT: usize = 40;
    let server = one_chunk_then_silence(COUNT);
    let base = server.base_url();
    let (items, took) = on_thread(PATIENCE, "the iteration", move || {
        let client = raw::builder(&base)
            .idle_timeout(Some(Duration::from_secs(3)))
            .build_blocking()
            .unwrap();
        let mut generation = client.generate("Build an app").send().unwrap();
        let mut items = Vec::new();
        let mut took = Duration::ZERO;
        let started = Instant::now();
        for item in generation.by_ref().take(COUNT * 2) {
            if item.is_ok() {
                took = started.elapsed();
            }
            items.push(item);
        }
        (items, took)
    });
    assert_eq!(items.len(), COUNT + 1, "{items:?}");
    assert!(items[..COUNT].iter().all(Result::is_ok), "{items:?}");
    assert!(
        took < Duration::from_secs(2),
        "the received events did not wait for the idle timeout: {took:?}"
    );
    assert!(
        matches!(
            items.last(),
            Some(Err(Error::Timeout {
                kind: laracopilot::TimeoutKind::Idle,
                ..
            }))
        ),
        "{:?}",
        items.last()
    );
}
