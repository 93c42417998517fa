//! `verify_token`: accepted, expired, revoked, locally expired, after a rotation, and
//! answers that say nothing about the token.

use super::*;

#[tokio::test]
async fn verify_token_reports_a_valid_token_as_accepted_from_the_probe_404() {
    let server = server().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path(format!("/api/v1{PROBE}")))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {TOKEN}").as_str(),
        ))
        .and(wiremock::matchers::header("accept", "application/json"))
        .respond_with(
            wiremock::ResponseTemplate::new(404).set_body_json(
                serde_json::json!({"status": false, "message": "Project not found."}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let check = bounded(client(&server).verify_token()).await.unwrap();
    assert_eq!(check, TokenCheck::Accepted);
    assert!(check.is_accepted());
    assert_eq!(check.to_string(), "the API token is accepted");
}

#[tokio::test]
async fn verify_token_reports_an_expired_token() {
    let server = server().await;
    mount(&server, "GET", PROBE, expired()).await;
    let check = bounded(client(&server).verify_token()).await.unwrap();
    assert!(
        matches!(check, TokenCheck::Expired { locally: false, .. }),
        "{check:?}"
    );
    assert!(!check.is_accepted());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn verify_token_reports_a_revoked_token_as_unauthorized() {
    let server = server().await;
    mount(&server, "GET", PROBE, unauthorized()).await;
    let check = bounded(client(&server).verify_token()).await.unwrap();
    assert!(
        matches!(&check, TokenCheck::Unauthorized { message: Some(m), .. } if m == "Unauthorized."),
        "{check:?}"
    );
    assert_eq!(check.to_string(), "the API token is invalid or revoked");
}

#[tokio::test]
async fn verify_token_reports_a_locally_expired_token_without_sending() {
    let server = server().await;
    let token = aged(TOKEN, "old", 61, Expiration::Days60);
    let client = builder_with(&server, laracopilot::tokens::StaticToken::new(token))
        .build()
        .unwrap();
    let check = bounded(client.verify_token()).await.unwrap();
    assert!(
        matches!(check, TokenCheck::Expired { locally: true, .. }),
        "{check:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn verify_token_checks_the_rotated_token_after_a_revocation() {
    let server = server().await;
    mount_for_token(&server, "GET", PROBE, OLD, unauthorized()).await;
    mount_for_token(
        &server,
        "GET",
        PROBE,
        NEW,
        wiremock::ResponseTemplate::new(404).set_body_json(serde_json::json!({"status": false})),
    )
    .await;
    let (provider, _) = sequence(&[OLD, NEW]);
    let client = builder_with(&server, provider).build().unwrap();
    assert_eq!(
        bounded(client.verify_token()).await.unwrap(),
        TokenCheck::Accepted
    );
    assert_eq!(bearers(&server).await, [OLD, NEW]);
}

#[tokio::test]
async fn verify_token_is_an_error_when_the_answer_says_nothing_about_the_token() {
    let server = server().await;
    mount(
        &server,
        "GET",
        PROBE,
        wiremock::ResponseTemplate::new(400).set_body_string("bad request"),
    )
    .await;
    let err = bounded(client(&server).verify_token()).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err:?}");
}

// ---- the example ----
