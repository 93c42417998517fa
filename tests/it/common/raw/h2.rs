//! An HTTP/2 (h2c, prior knowledge) server whose answer yields one chunk and then
//! nothing ever: the stalled body that HTTP/1.1 servers cannot show over HTTP/2.

#[allow(
    unused_imports,
    reason = "the parent's imports, as each part uses them"
)]
use super::*;

type H2Body = http_body_util::StreamBody<
    Pin<
        Box<
            dyn futures::Stream<Item = Result<hyper::body::Frame<Bytes>, Infallible>>
                + Send
                + 'static,
        >,
    >,
>;

/// An HTTP/2 server (h2c, prior knowledge) whose every answer has the given status
/// and headers, and a body that yields one chunk and then never another.
pub struct H2Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl H2Server {
    pub fn start(status: u16, headers: &[(&str, &str)], first_chunk: &[u8]) -> H2Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let first_chunk = Bytes::copy_from_slice(first_chunk);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let requests = Arc::clone(&requests);
            std::thread::Builder::new()
                .name("h2-server".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("server runtime");
                    runtime.block_on(async move {
                        let listener =
                            tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                        loop {
                            tokio::select! {
                                accepted = listener.accept() => {
                                    let Ok((stream, _)) = accepted else { continue };
                                    let requests = Arc::clone(&requests);
                                    let headers = headers.clone();
                                    let first_chunk = first_chunk.clone();
                                    tokio::spawn(async move {
                                        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                                            requests
                                                .lock()
                                                .unwrap_or_else(PoisonError::into_inner)
                                                .push(format!("{} {}", request.method(), request.uri().path()));
                                            let headers = headers.clone();
                                            let first_chunk = first_chunk.clone();
                                            async move {
                                                let frames = futures::stream::once(async move {
                                                    Ok::<_, Infallible>(hyper::body::Frame::data(first_chunk))
                                                })
                                                .chain(futures::stream::pending());
                                                let body: H2Body = http_body_util::StreamBody::new(Box::pin(frames));
                                                let mut response = hyper::Response::builder().status(status);
                                                for (name, value) in &headers {
                                                    response = response.header(name.as_str(), value.as_str());
                                                }
                                                Ok::<_, Infallible>(response.body(body).expect("a valid response"))
                                            }
                                        });
                                        let _ = hyper::server::conn::http2::Builder::new(
                                            hyper_util::rt::TokioExecutor::new(),
                                        )
                                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                        .await;
                                    });
                                }
                                _ = &mut stopped => return,
                            }
                        }
                    });
                    runtime.shutdown_timeout(Duration::from_secs(2));
                })
                .expect("server thread")
        };
        H2Server {
            addr,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/api/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    /// `METHOD /path` of every request received.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A reqwest client that speaks HTTP/2 without negotiation, for
    /// `ClientBuilder::http_client`.
    pub fn http_client() -> laracopilot::reqwest::Client {
        laracopilot::reqwest::Client::builder()
            .http2_prior_knowledge()
            .no_proxy()
            .build()
            .expect("an HTTP/2 client")
    }
}

impl Drop for H2Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
