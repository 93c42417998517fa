//! Token states: valid, expired, revoked and unknown tokens get their documented
//! answers, and revocation takes effect at once.

use laracopilot::{Error, Token};
use laracopilot_mock::{MockServer, TokenState};
use serde_json::json;

use crate::common::mock::*;
use crate::common::*;

#[tokio::test]
async fn each_token_state_gets_its_typed_answer() {
    let server = MockServer::start();
    let with = |value: &str| {
        server
            .client_builder()
            .token(Token::new(value).unwrap())
            .build()
            .unwrap()
    };
    server.add_token("lcp_mock_valid_0000000001", TokenState::Valid);
    server.add_token("lcp_mock_expired_000000002", TokenState::Expired);
    server.add_token("lcp_mock_revoked_000000003", TokenState::Revoked);

    finish_ok(&with("lcp_mock_valid_0000000001"), PROMPT).await;
    let expired = with("lcp_mock_expired_000000002").generate(PROMPT).await;
    assert!(
        matches!(expired, Err(Error::TokenExpired { locally: false, .. })),
        "{expired:?}"
    );
    for value in ["lcp_mock_revoked_000000003", "lcp_mock_never_registered"] {
        let refused = with(value).generate(PROMPT).await;
        let Err(Error::Unauthorized { message, .. }) = refused else {
            panic!("{value}: {refused:?}")
        };
        assert_eq!(message.as_deref(), Some("Unauthorized."));
    }
}

#[tokio::test]
async fn revoking_a_token_takes_effect_on_the_next_request() {
    let server = raw_token_server();
    let client = server.client();
    let id = finish_ok(&client, PROMPT)
        .await
        .project_id()
        .cloned()
        .unwrap();
    server.revoke(RAW_TOKEN);
    assert!(matches!(
        client.project(&id).await,
        Err(Error::Unauthorized { .. })
    ));
    server.add_token(RAW_TOKEN, TokenState::Valid);
    assert!(client.project(&id).await.is_ok());
}

#[test]
fn missing_or_malformed_authorization_gets_the_documented_401() {
    let server = raw_token_server();
    for header in [None, Some("Basic abc"), Some("Bearer"), Some("Bearer  ")] {
        let auth = header.map_or(String::new(), |v| format!("Authorization: {v}\r\n"));
        let raw = format!(
            "GET /api/v1/agent/project/p1 HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        );
        let mut stream = connect(server.addr());
        std::io::Write::write_all(&mut stream, raw.as_bytes()).unwrap();
        let answer = parse(&read_to_close(&mut stream));
        assert_eq!(answer.status, 401, "{header:?}");
        assert_eq!(
            answer.json(),
            json!({"status": false, "message": "Unauthorized."})
        );
        assert_eq!(
            answer.text(),
            r#"{"status":false,"message":"Unauthorized."}"#,
            "the documented key order"
        );
    }
}
