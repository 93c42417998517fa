//! A tiny loopback SSE server for the benchmarks: it answers every request with a
//! `text/event-stream` body made by the caller, over HTTP/1.1 or h2c (HTTP/2 with
//! prior knowledge).
#![allow(dead_code, reason = "each benchmark uses a different part")]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// The HTTP version spoken on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (h2c).
    Http2,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Http1 => "http1",
            Proto::Http2 => "h2c",
        }
    }
}

static RELEASE: Notify = Notify::const_new();
static RELEASED: AtomicBool = AtomicBool::new(false);

/// Lets every held body ([`Reply::held`]) send its tail and end.
pub fn release_all() {
    RELEASED.store(true, Ordering::SeqCst);
    RELEASE.notify_waiters();
}

/// A response body.
pub enum Reply {
    /// These frames, then the end of the body; with `hold`, the body stays open
    /// instead of ending.
    Frames {
        frames: Arc<[Bytes]>,
        next: usize,
        hold: bool,
    },
    /// These frames, then nothing until [`release_all`] (or a request to a path
    /// ending in `/release`), then `tail` and the end of the body.
    Held {
        frames: Arc<[Bytes]>,
        next: usize,
        tail: Option<Bytes>,
        wait: Option<Pin<Box<Notified<'static>>>>,
    },
    /// `left` small events, one per tick, each carrying the time it was written (see
    /// [`now_ns`]), then `stream_end`.
    Ticks {
        interval: tokio::time::Interval,
        left: usize,
    },
}

impl Reply {
    pub fn frames(frames: Arc<[Bytes]>, hold: bool) -> Self {
        Reply::Frames {
            frames,
            next: 0,
            hold,
        }
    }

    pub fn held(frames: Arc<[Bytes]>, tail: Bytes) -> Self {
        Reply::Held {
            frames,
            next: 0,
            tail: Some(tail),
            wait: None,
        }
    }

    /// Ticks every `period`; the first tick comes one period after the request.
    pub fn ticks(period: Duration, count: usize) -> Self {
        let start = tokio::time::Instant::now() + period;
        let mut interval = tokio::time::interval_at(start, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Reply::Ticks {
            interval,
            left: count,
        }
    }
}

/// Nanoseconds since a process-wide epoch: the server stamps events with it and the
/// client compares on arrival (both run in one process).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The stamp of a tick event, read from its JSON text or from raw bytes holding it.
pub fn stamp(text: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(text, b"\"sent_ns\":")? + 10;
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit());
    Some(digits.fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

impl http_body::Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Reply::Frames { frames, next, hold } => match frames.get(*next) {
                Some(frame) => {
                    *next += 1;
                    Poll::Ready(Some(Ok(Frame::data(frame.clone()))))
                }
                // Held open: nothing will ever wake this body; the connection ends
                // when the client drops it or the process exits.
                None if *hold => Poll::Pending,
                None => Poll::Ready(None),
            },
            Reply::Held {
                frames,
                next,
                tail,
                wait,
            } => {
                if let Some(frame) = frames.get(*next) {
                    *next += 1;
                    return Poll::Ready(Some(Ok(Frame::data(frame.clone()))));
                }
                if !RELEASED.load(Ordering::SeqCst) {
                    let wait = wait.get_or_insert_with(|| Box::pin(RELEASE.notified()));
                    // Registered before the flag is read again: no release is missed.
                    wait.as_mut().enable();
                    if !RELEASED.load(Ordering::SeqCst) && wait.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Poll::Ready(tail.take().map(|tail| Ok(Frame::data(tail))))
            }
            Reply::Ticks { interval, left } => {
                if *left == 0 {
                    return Poll::Ready(None);
                }
                if interval.poll_tick(cx).is_pending() {
                    return Poll::Pending;
                }
                *left -= 1;
                let event = if *left == 0 {
                    "data: {\"type\":\"stream_end\"}\n\n".to_owned()
                } else {
                    format!(
                        "data: {{\"type\":\"container_progress\",\"message\":\"tick\",\"percentage\":50,\"sent_ns\":{}}}\n\n",
                        now_ns()
                    )
                };
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
            }
        }
    }
}

/// Serves `make(path)` on every request to `listener`, forever.
pub async fn run<F>(listener: TcpListener, proto: Proto, make: F)
where
    F: Fn(&str) -> Reply + Send + Sync + 'static,
{
    let make = Arc::new(make);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let make = Arc::clone(&make);
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let body = if request.uri().path().ends_with("/release") {
                release_all();
                Reply::frames(Arc::new([]), false)
            } else {
                make(request.uri().path())
            };
            async move {
                // Read the request body to its end: over HTTP/2, dropping it early
                // resets the stream, and too many resets end the connection.
                let _ = request.into_body().collect().await;
                Ok::<_, Infallible>(
                    hyper::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(body)
                        .expect("a static response is valid"),
                )
            }
        });
        let io = TokioIo::new(stream);
        tokio::spawn(async move {
            let _ = match proto {
                Proto::Http1 => {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                }
                Proto::Http2 => {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(u32::MAX)
                        .serve_connection(io, service)
                        .await
                }
            };
        });
    }
}

/// Starts a server on its own thread (its own single-threaded runtime) and returns
/// its address.
pub fn spawn<F>(proto: Proto, make: F) -> SocketAddr
where
    F: Fn(&str) -> Reply + Send + Sync + 'static,
{
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    std_listener
        .set_nonblocking(true)
        .expect("a nonblocking listener");
    let addr = std_listener.local_addr().expect("a bound address");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = TcpListener::from_std(std_listener).expect("a tokio listener");
            run(listener, proto, make).await
        });
    });
    addr
}

/// `bytes` cut into frames of `size` bytes (sharing one buffer).
pub fn frames(bytes: &[u8], size: usize) -> Arc<[Bytes]> {
    let all = Bytes::copy_from_slice(bytes);
    (0..bytes.len())
        .step_by(size)
        .map(|at| all.slice(at..(at + size).min(bytes.len())))
        .collect()
}
