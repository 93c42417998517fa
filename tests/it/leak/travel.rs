//! Where the token may travel: never over plain HTTP to a remote host, never to
//! another origin through a redirect.

use super::*;

#[test]
fn plain_http_to_a_remote_host_is_refused_without_the_opt_in() {
    let build = |url: &str, allow: bool| {
        Client::builder()
            .token(token())
            .base_url(url)
            .allow_http(allow)
            .build()
    };
    for url in [
        "http://builder.laracopilot.com/api/v1",
        "http://10.0.0.7/api/v1",
        "http://[2001:db8::1]/",
    ] {
        let err = build(url, false).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains("https"), "{err}");
        assert!(build(url, true).is_ok(), "{url} with allow_http");
    }
    for url in [
        "http://127.0.0.1:8080/api/v1",
        "http://localhost:8080/",
        "http://[::1]:8080/",
    ] {
        assert!(build(url, false).is_ok(), "{url} is loopback");
    }
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_an_error_and_the_token_never_travels_there() {
    let elsewhere = wiremock::MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("should never be reached"))
        .mount(&elsewhere)
        .await;
    let origin = server().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/api/v1/agent/project/abc123", elsewhere.uri()).as_str(),
        ))
        .mount(&origin)
        .await;
    let client = one_attempt(&origin);
    let project = client.project("abc123").await.unwrap_err();
    assert!(
        matches!(project, Error::Api { status: 302, .. }),
        "{project:?}"
    );
    let generate = client.generate("Build a task app").await.unwrap_err();
    assert!(
        matches!(generate, Error::Api { status: 302, .. }),
        "{generate:?}"
    );
    let verify = client.verify_token().await.unwrap_err();
    assert_eq!(verify.status(), Some(302));
    assert_eq!(origin.received_requests().await.unwrap().len(), 3);
    let reached = elsewhere.received_requests().await.unwrap();
    assert!(
        reached
            .iter()
            .all(|r| r.headers.get("authorization").is_none()),
        "the Authorization header travelled to another origin"
    );
    assert!(reached.is_empty(), "redirects are not followed");
}
