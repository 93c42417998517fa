//! Every documented failure maps to its typed error, checked before any stream exists.

use crate::common;

use std::time::Duration;

use common::*;
use laracopilot::Error;
use wiremock::ResponseTemplate;

fn json(status: u16, body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

async fn generate_error(response: ResponseTemplate) -> Error {
    let server = server().await;
    mount(&server, "POST", "/agent/generate", response).await;
    client(&server)
        .generate("Build a task management app")
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_401_unauthorized_body_is_unauthorized() {
    let err = generate_error(json(
        401,
        serde_json::json!({"status": false, "message": "Unauthorized."}),
    ))
    .await;
    assert!(
        matches!(&err, Error::Unauthorized { message: Some(m), .. } if m == "Unauthorized."),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_401_expired_body_is_token_expired() {
    let err = generate_error(json(
        401,
        serde_json::json!({"status": false, "message": "API token has expired."}),
    ))
    .await;
    assert!(
        matches!(err, Error::TokenExpired { locally: false, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(401));
}

#[tokio::test]
async fn a_401_with_an_html_body_is_unauthorized() {
    let err =
        generate_error(ResponseTemplate::new(401).set_body_string("<html>denied</html>")).await;
    assert!(
        matches!(err, Error::Unauthorized { message: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_422_carries_the_field_map() {
    let err = generate_error(json(
        422,
        serde_json::json!({
            "message": "The prompt field must be at least 10 characters.",
            "errors": {"prompt": ["The prompt field must be at least 10 characters."], "other": "single"}
        }),
    ))
    .await;
    let Error::Validation {
        message, errors, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(message, "The prompt field must be at least 10 characters.");
    assert_eq!(
        errors["prompt"],
        ["The prompt field must be at least 10 characters."]
    );
    assert_eq!(errors["other"], ["single"]);
    assert_eq!(err.status(), Some(422));
}

#[tokio::test]
async fn a_404_on_status_is_not_found_with_the_project_id() {
    let server = server().await;
    mount(
        &server,
        "GET",
        "/agent/project/nope",
        json(
            404,
            serde_json::json!({"status": false, "message": "Project not found"}),
        ),
    )
    .await;
    let err = client(&server).project("nope").await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(err.project_id().unwrap(), "nope");
}

#[tokio::test]
async fn a_404_on_follow_up_is_not_found_with_the_project_id() {
    let server = server().await;
    mount(
        &server,
        "POST",
        "/agent/generate/gone",
        json(404, serde_json::json!({"status": false})),
    )
    .await;
    let err = client(&server)
        .follow_up("gone", "Add a dark mode please")
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(err.project_id().unwrap(), "gone");
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_is_rate_limited() {
    let err = generate_error(ResponseTemplate::new(429).insert_header("retry-after", "17")).await;
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(17)));
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_429_with_retry_after_as_http_date_is_rate_limited() {
    let when = std::time::SystemTime::now() + Duration::from_secs(120);
    let err = generate_error(
        ResponseTemplate::new(429).insert_header("retry-after", httpdate_fmt(when).as_str()),
    )
    .await;
    let after = err.retry_after().expect("retry-after parsed");
    assert!(
        after > Duration::from_secs(100) && after <= Duration::from_secs(120),
        "{after:?}"
    );
}

fn httpdate_fmt(time: std::time::SystemTime) -> String {
    // Format by hand (IMF-fixdate) to keep the test independent of the parser.
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month_name} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[tokio::test]
async fn a_500_with_an_html_page_is_api_with_a_capped_snippet() {
    let page = format!("<html><body>{}</body></html>", "Bad gateway ".repeat(500));
    let err = generate_error(ResponseTemplate::new(500).set_body_raw(page, "text/html")).await;
    let Error::Api {
        status,
        message,
        body,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 500);
    assert_eq!(*message, None);
    assert!(body.starts_with("<html><body>Bad gateway"));
    assert!(body.len() < 600, "{}", body.len());
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_302_is_not_followed() {
    let target = server().await;
    mount_documented_generate(&target).await;
    let err = generate_error(ResponseTemplate::new(302).insert_header(
        "location",
        format!("{}/api/v1/agent/generate", target.uri()).as_str(),
    ))
    .await;
    assert!(matches!(err, Error::Api { status: 302, .. }), "{err:?}");
    assert!(target.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_200_with_a_json_body_is_an_api_error_with_its_message() {
    let err = generate_error(json(
        200,
        serde_json::json!({"status": false, "message": "Something odd"}),
    ))
    .await;
    let Error::Api {
        status, message, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*status, message.as_deref()), (200, Some("Something odd")));
}

#[tokio::test]
async fn a_200_with_a_plain_body_is_an_api_error_that_says_what_it_is() {
    let err = generate_error(ResponseTemplate::new(200).set_body_string("hello")).await;
    let Error::Api {
        status: 200,
        message: Some(message),
        body,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(body, "hello");
    assert!(message.contains("text/plain"), "{message}");
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = laracopilot::Client::builder()
        .token(token())
        .base_url(format!("http://127.0.0.1:{port}/api/v1"))
        .retry_policy(laracopilot::RetryPolicy::none())
        .build()
        .unwrap();
    let err = client
        .generate("Build a task management app")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn a_body_echoing_the_token_is_masked_in_the_error() {
    let echo = format!("<html><pre>Authorization: Bearer {TOKEN}</pre></html>");
    let err = generate_error(ResponseTemplate::new(500).set_body_string(echo)).await;
    let Error::Api { body, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(body.contains("Bearer ****"), "{body}");
    assert!(!format!("{err:?}").contains(TOKEN));
    let err = generate_error(json(
        422,
        serde_json::json!({"message": TOKEN, "errors": {"prompt": [TOKEN]}}),
    ))
    .await;
    assert!(!format!("{err} {err:?}").contains(TOKEN), "{err:?}");
}

#[tokio::test]
async fn no_error_debug_or_display_contains_the_token() {
    let responses = [
        json(
            401,
            serde_json::json!({"message": format!("Unauthorized. {TOKEN}")}),
        ),
        json(404, serde_json::json!({"message": TOKEN})),
        json(
            422,
            serde_json::json!({"message": "bad", "errors": {"prompt": ["x"]}}),
        ),
        ResponseTemplate::new(500).set_body_string("oops"),
    ];
    for response in responses {
        let err = generate_error(response).await;
        let text = format!("{err} {err:?}");
        assert!(!text.contains(TOKEN), "{text}");
    }
}
