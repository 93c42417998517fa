//! Errors in the middle of a stream never print the token.

use super::*;

/// A server that sends the headers of an event stream and one event, then stays
/// silent: the idle timeout fires in the middle of the stream.
async fn stalling_server() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let event = "data: {\"type\":\"project_created\",\"project_id\":\"p1\"}\n\n";
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
            event.len()
        );
        let _ = socket.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    (format!("http://{address}/api/v1"), task)
}

#[tokio::test]
async fn stream_errors_never_print_the_token() {
    let (logs, _guard) = capture_logs();
    let mut printed = Printed::default();
    let created =
        r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#;
    let bodies = [
        ("incomplete", sse_body(&[created])),
        (
            "decode",
            format!(
                "{}data: {{\"type\":\"file_created\",\"path\":\n\n",
                sse_body(&[created])
            ),
        ),
        (
            "too large",
            sse_body(&[
                created,
                &format!(
                    r#"{{"type":"tool_progress","message":"{}"}}"#,
                    "x".repeat(4096)
                ),
            ]),
        ),
        (
            "credits",
            sse_body(&[created, r#"{"type":"credits_exhausted"}"#]),
        ),
        (
            "success",
            sse_body(&[
                created,
                r#"{"type":"file_created","path":"app/Models/Task.php"}"#,
                r#"{"type":"stream_end","project_id":"p1"}"#,
            ]),
        ),
    ];
    for (label, body) in bodies {
        let server = server().await;
        mount(&server, "POST", "/agent/generate", sse(body)).await;
        let client = builder(&server)
            .max_event_size(1024)
            .retry_policy(RetryPolicy::none())
            // Each body is streamed twice, "credits" included.
            .credits_cooldown(None)
            .build()
            .unwrap();
        let mut generation = client.generate("Build a task app").await.unwrap();
        printed.debug(&format!("{label}: Generation (start)"), &generation);
        let mut items = 0;
        while let Some(item) = tokio::time::timeout(Duration::from_secs(10), generation.next())
            .await
            .expect("the stream makes progress")
        {
            printed.result(&format!("{label}: item {items}"), &item);
            items += 1;
            assert!(items < 100, "runaway stream");
        }
        printed.debug(&format!("{label}: Generation (end)"), &generation);
        let outcome = client
            .generate("Build a task app")
            .await
            .unwrap()
            .finish()
            .await;
        printed.result(&format!("{label}: finish"), &outcome);
    }

    // No answer at all within the idle timeout.
    let server = server().await;
    mount(
        &server,
        "POST",
        "/agent/generate",
        sse(sse_body(&[created])).set_delay(Duration::from_secs(3)),
    )
    .await;
    let client = builder(&server)
        .idle_timeout(Some(Duration::from_millis(200)))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    printed.result(
        "idle before headers",
        &client.generate("Build a task app").await,
    );

    // Silence in the middle of the stream (after a head and an event that a loaded
    // machine may take 0.2 s to deliver).
    let (base, stalled) = stalling_server().await;
    let client = Client::builder()
        .token(token())
        .base_url(base)
        .idle_timeout(Some(Duration::from_secs(1)))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let generation = client.generate("Build a task app").await.unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(10), generation.finish())
        .await
        .expect("the idle timeout fires");
    assert!(
        matches!(finished, Err(Error::Timeout { .. })),
        "{finished:?}"
    );
    printed.result("idle mid-stream", &finished);
    stalled.abort();

    printed.text("tracing output", logs.text());
    printed.assert_clean();
}
