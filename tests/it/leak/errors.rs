//! No error answer, whatever its status, makes the SDK print the token.

use super::*;

#[tokio::test]
async fn every_error_status_never_prints_the_token() {
    let (logs, _guard) = capture_logs();
    let mut printed = Printed::default();
    let html = "<html><body><h1>500 Internal Server Error</h1></body></html>";
    let answers = [
        ("401 unauthorized", unauthorized()),
        ("401 expired", expired()),
        (
            "404",
            ResponseTemplate::new(404).set_body_json(
                serde_json::json!({"status": false, "message": "Project not found."}),
            ),
        ),
        (
            "422",
            ResponseTemplate::new(422).set_body_json(serde_json::json!({
                "message": "The prompt field is required.",
                "errors": {"prompt": ["The prompt field is required."]}
            })),
        ),
        (
            "429",
            ResponseTemplate::new(429).insert_header("retry-after", "7"),
        ),
        (
            "500 html",
            ResponseTemplate::new(500).set_body_raw(html, "text/html"),
        ),
        ("503", ResponseTemplate::new(503)),
        (
            "302",
            ResponseTemplate::new(302).insert_header("location", "https://example.com/login"),
        ),
        (
            "200 not json",
            ResponseTemplate::new(200).set_body_raw("<html>ok</html>", "text/html"),
        ),
        (
            "200 status false",
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"status": false, "message": "nope"})),
        ),
    ];
    let mut answered = 0;
    for (label, answer) in answers {
        let server = server().await;
        Mock::given(any()).respond_with(answer).mount(&server).await;
        let client = one_attempt(&server);
        printed.result(
            &format!("{label}: project"),
            &client.project("abc123").await,
        );
        printed.result(
            &format!("{label}: generate"),
            &client.generate("Build a task app").await,
        );
        printed.result(
            &format!("{label}: follow_up"),
            &client.follow_up("abc123", "Add a dark mode").await,
        );
        printed.result(
            &format!("{label}: verify_token"),
            &client.verify_token().await,
        );
        answered += server.received_requests().await.unwrap().len();
    }
    assert!(answered >= 40, "every call reached a server ({answered})");

    // Nothing listening: a transport error, whose chain comes from the HTTP stack.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let client = Client::builder()
        .token(token())
        .base_url(format!("http://{address}/api/v1"))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    printed.result("connection refused", &client.project("abc123").await);

    // Known locally to be expired: refused before sending.
    let old = token().with_info(TokenInfo::new(
        "old",
        SystemTime::now() - Duration::from_secs(31 * 86_400),
        Expiration::Days30,
    ));
    let server = server().await;
    let client = Client::builder()
        .token(old)
        .base_url(format!("{}/api/v1", server.uri()))
        .build()
        .unwrap();
    printed.result("locally expired", &client.project("abc123").await);
    printed.result(
        "locally expired: verify_token",
        &client.verify_token().await,
    );

    printed.text("tracing output", logs.text());
    printed.assert_clean();
}
