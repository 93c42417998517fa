//! Generation streams end to end over HTTP: events, terminal rules, the request sent.

use crate::common;

use common::*;
use laracopilot::{Error, Event};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::Mock;

#[tokio::test]
async fn the_documented_example_stream_yields_its_four_events_with_exact_fields() {
    let server = server().await;
    mount_documented_generate(&server).await;

    let items = collect(
        client(&server)
            .generate("Build a task management app")
            .await
            .unwrap(),
    )
    .await;
    let events: Vec<Event> = items.into_iter().map(|i| i.unwrap()).collect();
    assert_eq!(events.len(), 4);
    let Event::ProjectCreated(created) = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(created.project_id, "abc123");
    assert_eq!(
        created.app_url.as_deref(),
        Some("https://abc123.laracopilot.com")
    );
    let Event::ContainerProgress(progress) = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(progress.message, "Installing Laravel...");
    assert_eq!(progress.percentage, Some(40.0));
    let Event::ContainerReady(ready) = &events[2] else {
        panic!("{:?}", events[2])
    };
    assert_eq!(ready.message, "Container ready. Starting AI generation...");
    let Event::StreamEnd(end) = &events[3] else {
        panic!("{:?}", events[3])
    };
    assert_eq!(end.project_id.as_ref().map(|p| p.as_str()), Some("abc123"));
    assert_eq!(
        end.app_url.as_deref(),
        Some("https://abc123.laracopilot.com")
    );
}

#[tokio::test]
async fn the_request_has_the_documented_method_path_headers_and_body() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/agent/generate"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "text/event-stream"))
        .and(header("content-type", "application/json"))
        .and(header(
            "user-agent",
            concat!("laracopilot-rust/", env!("CARGO_PKG_VERSION")),
        ))
        .and(body_json(
            serde_json::json!({"prompt": "Build a task management app"}),
        ))
        .respond_with(documented_stream())
        .expect(1)
        .mount(&server)
        .await;
    let outcome = finish_ok(&client(&server), "Build a task management app").await;
    assert_eq!(outcome.project_id().unwrap(), "abc123");
    assert_eq!(outcome.stats().events, 4);
}

#[tokio::test]
async fn every_event_type_and_an_unknown_one_decode() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":7,"app_url":"https://7.laracopilot.com"}"#,
        r#"{"type":"container_progress","message":"Installing Laravel...","percentage":40}"#,
        r#"{"type":"container_ready","message":"ready"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php","bytes":120}"#,
        r#"{"type":"tool_progress","tool":"artisan","message":"migrating"}"#,
        r#"{"type":"deployment_started","region":"eu"}"#,
        r#"{"type":"stream_end","project_id":7,"app_url":"https://7.laracopilot.com"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let events: Vec<Event> = collect(
        client(&server)
            .generate("Build a task management app")
            .await
            .unwrap(),
    )
    .await
    .into_iter()
    .map(|e| e.unwrap())
    .collect();
    let types: Vec<&str> = events.iter().map(Event::type_name).collect();
    assert_eq!(
        types,
        [
            "project_created",
            "container_progress",
            "container_ready",
            "file_created",
            "tool_progress",
            "deployment_started",
            "stream_end"
        ]
    );
    let Event::ProjectCreated(created) = &events[0] else {
        panic!()
    };
    assert_eq!(created.project_id, "7");
    let Event::FileCreated(file) = &events[3] else {
        panic!()
    };
    assert_eq!(file.path.as_deref(), Some("app/Models/Task.php"));
    assert!(file.raw_json().contains(r#""bytes":120"#));
    let Event::ToolProgress(tool) = &events[4] else {
        panic!()
    };
    assert_eq!(
        (tool.tool.as_deref(), tool.message.as_deref()),
        (Some("artisan"), Some("migrating"))
    );
    let Event::Unknown(unknown) = &events[5] else {
        panic!()
    };
    assert_eq!(unknown.type_name, "deployment_started");
    assert_eq!(
        unknown.raw_json(),
        r#"{"type":"deployment_started","region":"eu"}"#
    );
}

#[tokio::test]
async fn stream_end_ends_the_stream_and_later_bytes_are_ignored() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p1"}"#,
        r#"{"type":"stream_end","project_id":"p1"}"#,
        r#"{"type":"file_created","path":"late.php"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let items = collect(
        client(&server)
            .generate("Build a task management app")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(items.len(), 2);
    assert!(matches!(items[1], Ok(Event::StreamEnd(_))));
}

#[tokio::test]
async fn credits_exhausted_is_an_error_that_ends_the_stream_with_the_project_id() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p1"}"#,
        r#"{"type":"file_created","path":"a.php"}"#,
        r#"{"type":"credits_exhausted","message":"Out of credits"}"#,
        r#"{"type":"file_created","path":"late.php"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let generation = client(&server)
        .generate("Build a task management app")
        .await
        .unwrap();
    let items = collect(generation).await;
    assert_eq!(items.len(), 3);
    let Err(error @ Error::CreditsExhausted { raw, .. }) = &items[2] else {
        panic!("{:?}", items[2])
    };
    assert_eq!(error.project_id().unwrap(), "p1");
    assert!(raw.contains("Out of credits"));

    let err = finish(&client(&server), "Build a task management app")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CreditsExhausted { .. }));
    assert_eq!(err.project_id().unwrap(), "p1");
}

#[tokio::test]
async fn end_of_body_without_a_terminal_event_is_incomplete_with_the_project_id() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p9"}"#,
        r#"{"type":"container_progress","message":"Installing","percentage":10}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let items = collect(
        client(&server)
            .generate("Build a task management app")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(items.len(), 3);
    let Err(error @ Error::Incomplete { events, .. }) = &items[2] else {
        panic!("{:?}", items[2])
    };
    assert_eq!((error.project_id().unwrap().as_str(), *events), ("p9", 2));
}

#[tokio::test]
async fn an_empty_body_is_incomplete() {
    let server = server().await;
    mount(&server, "POST", "/agent/generate", sse("")).await;
    let err = finish(&client(&server), "Build a task management app")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Incomplete { events: 0, .. }),
        "{err:?}"
    );
    assert_eq!(err.project_id(), None);
}

#[tokio::test]
async fn an_undecodable_event_is_malformed_data_and_the_stream_goes_on() {
    let server = server().await;
    let body = "data: not json\n\n".to_owned() + &sse_body(&[r#"{"type":"stream_end"}"#]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let items = collect(
        client(&server)
            .generate("Build a task management app")
            .await
            .unwrap(),
    )
    .await;
    let Ok(Event::Malformed(malformed)) = &items[0] else {
        panic!("{:?}", items[0]);
    };
    assert_eq!(malformed.raw_json(), "not json");
    assert!(malformed.reason.starts_with("not JSON"), "{malformed:?}");
    assert!(matches!(items[1], Ok(Event::StreamEnd(_))));
}

#[tokio::test]
async fn finish_sums_up_files_in_order_without_duplicates() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#,
        r#"{"type":"file_created","path":"routes/web.php"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php"}"#,
        r#"{"type":"file_created","path":"routes/web.php"}"#,
        r#"{"type":"file_created"}"#,
        r#"{"type":"stream_end","project_id":"p1"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let outcome = finish_ok(&client(&server), "Build a task management app").await;
    assert_eq!(outcome.files, ["routes/web.php", "app/Models/Task.php"]);
    assert_eq!(
        outcome.app_url.as_deref(),
        Some("https://p1.laracopilot.com")
    );
    assert_eq!(outcome.stats().events, 6);
}

#[tokio::test]
async fn a_follow_up_posts_to_the_project_and_knows_its_id_before_any_event() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/agent/generate/abc123"))
        .and(header("accept", "text/event-stream"))
        .and(body_json(serde_json::json!({"prompt": "Add a dark mode"})))
        .respond_with(sse(sse_body(&[
            r#"{"type":"file_created","path":"a.css"}"#,
            r#"{"type":"stream_end"}"#,
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let id = laracopilot::ProjectId::from("abc123");
    let generation = client(&server)
        .follow_up(&id, "Add a dark mode")
        .await
        .unwrap();
    assert_eq!(generation.project_id(), Some(&id));
    let outcome = generation.finish().await.unwrap();
    assert_eq!(outcome.project_id(), Some(&id));
    assert_eq!(outcome.files, ["a.css"]);
}

#[tokio::test]
async fn the_status_call_sends_accept_json_and_decodes_the_project() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/agent/project/abc123"))
        .and(header("accept", "application/json"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "status": true, "project_id": "abc123", "app_url": "https://abc123.laracopilot.com",
                "project_status": "ready", "name": "Tasks", "owner": "team"
            })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let project = client(&server).project("abc123").await.unwrap();
    assert_eq!(project.project_id, "abc123");
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(project.name.as_deref(), Some("Tasks"));
    assert!(project.raw_json().contains("\"owner\""));
}

#[tokio::test]
async fn a_silent_stream_fails_with_an_idle_timeout_keeping_the_project_id() {
    let (addr, _server) = raw_server(|mut socket| async move {
        write_head(&mut socket).await;
        let _ = socket
            .write_all(b"data: {\"type\":\"project_created\",\"project_id\":\"p5\"}\n\n")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let client = raw_builder(addr)
        .idle_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    assert_times_out_after_one_event(client, laracopilot::TimeoutKind::Idle, "p5").await;
}

#[tokio::test]
async fn a_stream_past_its_deadline_fails_even_while_bytes_arrive() {
    let (addr, _server) = raw_server(|mut socket| async move {
        write_head(&mut socket).await;
        let _ = socket
            .write_all(b"data: {\"type\":\"project_created\",\"project_id\":\"p6\"}\n\n")
            .await;
        for _ in 0..200 {
            if socket.write_all(b": keep-alive\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Keep-alive comments reset the idle timer (and it is far longer than the gaps
    // between them, even on a loaded machine), so only the deadline can fire.
    let client = raw_builder(addr)
        .idle_timeout(Some(Duration::from_secs(5)))
        .stream_deadline(Some(Duration::from_millis(400)))
        .build()
        .unwrap();
    assert_times_out_after_one_event(client, laracopilot::TimeoutKind::Deadline, "p6").await;
}

#[tokio::test]
async fn the_longest_gap_between_bytes_is_measured() {
    // The server pauses only once the client has the first event, so that the
    // client sees the whole pause however late it read that event.
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
    let read_rx = std::sync::Mutex::new(Some(read_rx));
    let (addr, _server) = raw_server(move |mut socket| {
        let read = read_rx.lock().unwrap().take();
        async move {
            write_head(&mut socket).await;
            let _ = socket
                .write_all(b"data: {\"type\":\"project_created\",\"project_id\":\"p7\"}\n\n")
                .await;
            if let Some(read) = read {
                let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let _ = socket
                .write_all(b"data: {\"type\":\"stream_end\"}\n\n")
                .await;
        }
    })
    .await;
    let client = raw_builder(addr).build().unwrap();
    let mut generation = bounded(client.generate("Build a task management app"))
        .await
        .unwrap();
    let first = bounded(generation.next()).await.unwrap().unwrap();
    assert_eq!(first.type_name(), "project_created");
    read_tx.send(()).unwrap();
    let outcome = bounded(generation.finish()).await.unwrap();
    assert!(
        outcome.stats().longest_gap >= Duration::from_millis(200),
        "{:?}",
        outcome.stats()
    );
    assert_eq!(outcome.stats().events, 2);
}

#[tokio::test]
async fn dropping_a_generation_closes_the_connection() {
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let closed_tx = std::sync::Mutex::new(Some(closed_tx));
    let (addr, _server) = raw_server(move |mut socket| {
        let tx = closed_tx.lock().unwrap().take();
        async move {
            write_head(&mut socket).await;
            // Write an event every 20 ms until the client goes away (bounded: 10 s).
            for i in 0..500 {
                let event = format!("data: {{\"type\":\"tool_progress\",\"message\":\"{i}\"}}\n\n");
                if socket.write_all(event.as_bytes()).await.is_err()
                    || socket.flush().await.is_err()
                {
                    if let Some(tx) = tx {
                        let _ = tx.send(i);
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
    .await;
    let client = raw_builder(addr).build().unwrap();
    let mut generation = client
        .generate("Build a task management app")
        .await
        .unwrap();
    assert!(generation.next().await.unwrap().is_ok());
    drop(generation);
    let sent = tokio::time::timeout(Duration::from_secs(5), closed_rx)
        .await
        .expect("the server saw the connection close")
        .unwrap();
    assert!(sent < 400, "{sent}");
}

#[tokio::test]
async fn debug_output_never_contains_the_token() {
    let server = server().await;
    mount_documented_generate(&server).await;
    let client = client(&server);
    let generation = client
        .generate("Build a task management app")
        .await
        .unwrap();
    let text = format!(
        "{client:?} {generation:?} {:?} {:?}",
        token(),
        builder(&server)
    );
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains(&TOKEN[..TOKEN.len() - 4]), "{text}");
}

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bare HTTP server on loopback that hands each connection to `handler` after
/// reading the request head.
async fn raw_server<F, Fut>(handler: F) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            // Read until the end of the head and the small JSON body.
            let mut buf = vec![0u8; 8192];
            let mut read = 0;
            while read < buf.len() {
                match socket.read(&mut buf[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
                if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && buf[..read].ends_with(b"}") {
                    break;
                }
            }
            tokio::spawn(handler(socket));
        }
    });
    (addr, task)
}

/// A client for a `raw_server`.
fn raw_builder(addr: std::net::SocketAddr) -> laracopilot::ClientBuilder {
    laracopilot::Client::builder()
        .token(token())
        .base_url(format!("http://{addr}/api/v1"))
}

/// Generates, expecting `project_created` and then a timeout of `kind` that keeps the
/// project id.
async fn assert_times_out_after_one_event(
    client: laracopilot::Client,
    kind: laracopilot::TimeoutKind,
    id: &str,
) {
    let items = collect(
        client
            .generate("Build a task management app")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(items.len(), 2);
    let Err(err) = &items[1] else {
        panic!("{items:?}")
    };
    assert!(
        matches!(err, Error::Timeout { kind: k, .. } if *k == kind),
        "{err:?}"
    );
    assert_eq!(err.project_id().unwrap(), id);
}

async fn write_head(socket: &mut tokio::net::TcpStream) {
    let _ = socket
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
        )
        .await;
}

#[tokio::test]
async fn a_callers_own_reqwest_client_sends_the_requests() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/agent/generate"))
        .and(header("x-proxy-tag", "from-the-callers-client"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(documented_stream())
        .expect(1)
        .mount(&server)
        .await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-proxy-tag",
        reqwest::header::HeaderValue::from_static("from-the-callers-client"),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let client = builder(&server).http_client(http).build().unwrap();
    let outcome = finish_ok(&client, "Build a task management app").await;
    assert_eq!(outcome.stats().events, 4);
}
