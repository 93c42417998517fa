//! Rotation through each provider: static, environment, file, closure.

use super::*;

#[tokio::test]
async fn a_static_token_rejected_with_401_is_not_sent_again() {
    let server = rotated_server().await;
    let client = builder_with(&server, laracopilot::tokens::StaticToken::new(tok(OLD)))
        .build()
        .unwrap();
    let err = bounded(client.project("abc123")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { message, .. } if message.as_deref() == Some("Unauthorized.")),
        "{err:?}"
    );
    assert_eq!(bearers(&server).await, [OLD]);
}

#[tokio::test]
async fn an_expired_answer_is_token_expired_from_the_server_and_not_sent_again() {
    let server = server().await;
    mount_for_token(&server, "GET", PROJECT, OLD, expired()).await;
    let client = builder_with(&server, laracopilot::tokens::StaticToken::new(tok(OLD)))
        .build()
        .unwrap();
    let err = bounded(client.project("abc123")).await.unwrap_err();
    assert!(
        matches!(err, Error::TokenExpired { locally: false, .. }),
        "{err:?}"
    );
    assert_eq!(bearers(&server).await, [OLD]);
}

#[tokio::test]
async fn env_token_reads_the_variable_again_after_a_401_and_retries_once() {
    let var = "LARACOPILOT_TEST_TOKEN_ENV_ROTATION";
    std::env::set_var(var, OLD);
    let provider = EnvToken::new(var).unwrap();
    assert_eq!(provider.var(), var);
    let server = rotated_server().await;
    let client = builder_with(&server, provider).build().unwrap();

    std::env::set_var(var, NEW); // rotated in the process's environment
    let project = bounded(client.project("abc123")).await.unwrap();
    assert_eq!(project.project_id, "abc123");
    assert_eq!(bearers(&server).await, [OLD, NEW]);

    // The new token is kept: the next call goes straight with it.
    bounded(client.project("abc123")).await.unwrap();
    assert_eq!(bearers(&server).await, [OLD, NEW, NEW]);
    std::env::remove_var(var);
}

#[tokio::test]
async fn env_token_fails_early_naming_the_variable_but_not_the_value() {
    let missing = EnvToken::new("LARACOPILOT_TEST_TOKEN_ENV_MISSING").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "invalid configuration: LARACOPILOT_TEST_TOKEN_ENV_MISSING is not set"
    );
    let var = "LARACOPILOT_TEST_TOKEN_ENV_INVALID";
    std::env::set_var(var, format!("{TOKEN}\n"));
    let invalid = EnvToken::new(var).unwrap_err().to_string();
    std::env::remove_var(var);
    assert!(invalid.contains(var), "{invalid}");
    assert!(!invalid.contains(TOKEN), "{invalid}");
}

#[tokio::test]
async fn file_token_picks_up_a_rotated_file_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{OLD}\n")).unwrap();
    let server = server().await;
    mount_for_token(&server, "GET", PROJECT, OLD, project_json("abc123")).await;
    mount_for_token(&server, "GET", PROJECT, NEW, project_json("abc123")).await;
    let client = builder_with(&server, FileToken::new(&file).unwrap())
        .build()
        .unwrap();
    bounded(client.project("abc123")).await.unwrap();

    // A different length: the metadata shows the change, no 401 is needed.
    std::fs::write(&file, format!("{NEW}-longer\n")).unwrap();
    mount_for_token(
        &server,
        "GET",
        PROJECT,
        &format!("{NEW}-longer"),
        project_json("abc123"),
    )
    .await;
    bounded(client.project("abc123")).await.unwrap();
    assert_eq!(
        bearers(&server).await,
        [OLD.to_owned(), format!("{NEW}-longer")]
    );
}

#[tokio::test]
async fn file_token_reads_the_file_again_after_a_401_even_when_it_looks_unchanged() {
    assert_eq!(OLD.len(), NEW.len());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{OLD}\n")).unwrap();
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let server = rotated_server().await;
    let client = builder_with(&server, FileToken::new(&file).unwrap())
        .build()
        .unwrap();

    // Same length, same inode, modification time put back: only a re-read tells.
    std::fs::write(&file, format!("{NEW}\n")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let project = bounded(client.project("abc123")).await.unwrap();
    assert_eq!(project.project_id, "abc123");
    assert_eq!(bearers(&server).await, [OLD, NEW]);
}

#[tokio::test]
async fn file_token_trims_whitespace_and_keeps_the_last_good_token_until_the_file_is_valid_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("  {OLD}\r\n")).unwrap();
    let server = server().await;
    mount_for_token(&server, "GET", PROJECT, OLD, project_json("abc123")).await;
    let client = builder_with(&server, FileToken::new(&file).unwrap())
        .build()
        .unwrap();
    bounded(client.project("abc123")).await.unwrap();

    std::fs::write(&file, "").unwrap(); // a writer caught halfway
    bounded(client.project("abc123")).await.unwrap();
    bounded(client.project("abc123")).await.unwrap();
    assert_eq!(bearers(&server).await, [OLD, OLD, OLD]);

    // The writer finishes: the next request uses the new token.
    mount_for_token(&server, "GET", PROJECT, NEW, project_json("abc123")).await;
    std::fs::write(&file, format!("{NEW}\n")).unwrap();
    bounded(client.project("abc123")).await.unwrap();
    assert_eq!(bearers(&server).await, [OLD, OLD, OLD, NEW]);
}

#[tokio::test]
async fn file_token_fails_early_naming_the_file_but_not_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let missing = FileToken::new(dir.path().join("absent")).unwrap_err();
    assert!(missing.to_string().contains("absent"), "{missing}");
    let file = dir.path().join("bad");
    std::fs::write(&file, format!("{TOKEN} {TOKEN}\n")).unwrap();
    let shown = FileToken::new(&file).unwrap_err().to_string();
    assert!(shown.contains("bad"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[tokio::test]
async fn fn_token_is_called_again_after_a_401_and_the_request_retried_once() {
    let server = rotated_server().await;
    let (provider, calls) = sequence(&[OLD, NEW]);
    let client = builder_with(&server, provider).build().unwrap();
    bounded(client.project("abc123")).await.unwrap();
    bounded(client.project("abc123")).await.unwrap();
    assert_eq!(bearers(&server).await, [OLD, NEW, NEW]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "first fetch and one refresh"
    );
}

#[tokio::test]
async fn an_async_closure_works_as_a_provider() {
    let server = rotated_server().await;
    let provider = FnToken::new(|| async {
        tokio::task::yield_now().await;
        Ok(Token::new(NEW)?)
    });
    let client = builder_with(&server, provider).build().unwrap();
    bounded(client.project("abc123")).await.unwrap();
    assert_eq!(bearers(&server).await, [NEW]);
}

#[tokio::test]
async fn a_provider_that_returns_the_same_token_causes_no_retry() {
    let server = rotated_server().await;
    let (provider, calls) = sequence(&[OLD]);
    let client = builder_with(&server, provider).build().unwrap();
    let err = bounded(client.project("abc123")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(bearers(&server).await, [OLD]);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "first fetch and one refresh"
    );
}
