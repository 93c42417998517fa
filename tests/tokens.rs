//! Token lifecycle over HTTP: rotation through each provider, one shared refresh for
//! concurrent rejections, local expiry, the expiry hook, and `verify_token`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed unwrap or index is a failed test"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use laracopilot::tokens::{
    EnvToken, Expiration, FileToken, FnToken, TokenCheck, TokenFuture, TokenInfo, TokenProvider,
};
use laracopilot::{Error, Token};

const OLD: &str = "lcp_old_token_aaaaaaaaaaaa";
const NEW: &str = "lcp_new_token_bbbbbbbbbbbb";
const PROJECT: &str = "/agent/project/abc123";
const PROBE: &str = "/agent/project/laracopilot-sdk-token-probe";
const DAY: u64 = 86_400;

fn tok(value: &str) -> Token {
    Token::new(value).unwrap()
}

/// A token created `age_days` ago with `expiration`.
fn aged(value: &str, name: &str, age_days: u64, expiration: Expiration) -> Token {
    let created = SystemTime::now() - Duration::from_secs(age_days * DAY);
    tok(value).with_info(TokenInfo::new(name, created, expiration))
}

/// A server where `OLD` is revoked and `NEW` is valid, for the status call.
async fn rotated_server() -> wiremock::MockServer {
    let server = server().await;
    mount_for_token(&server, "GET", PROJECT, OLD, unauthorized()).await;
    mount_for_token(&server, "GET", PROJECT, NEW, project_json("abc123")).await;
    server
}

// ---- rotation through each provider ----

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

/// What a closure provider's closure returns.
type Provided = std::future::Ready<Result<Token, laracopilot::BoxError>>;

/// A closure provider handing out `values` in turn (the last one repeats), counting
/// its calls.
fn sequence(
    values: &'static [&'static str],
) -> (
    FnToken<impl Fn() -> Provided + Send + Sync + 'static>,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider = FnToken::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Token::new(values[n.min(values.len() - 1)]).map_err(Into::into))
    });
    (provider, calls)
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

#[tokio::test]
async fn a_generate_call_rejected_with_401_is_posted_again_only_with_a_new_token() {
    let server = server().await;
    mount_for_token(&server, "POST", "/agent/generate", OLD, unauthorized()).await;
    mount_for_token(&server, "POST", "/agent/generate", NEW, documented_stream()).await;
    let (provider, _) = sequence(&[OLD, NEW]);
    let client = builder_with(&server, provider).build().unwrap();
    let outcome = bounded(async { client.generate("Build a task app").await?.finish().await })
        .await
        .unwrap();
    assert_eq!(outcome.project_id.unwrap(), "abc123");
    assert_eq!(bearers(&server).await, [OLD, NEW]);
}

// ---- one shared refresh ----

/// Hands out `current`; a refresh (slow, counted) switches it to `next`.
struct Counting {
    current: Mutex<Token>,
    next: Token,
    refreshes: AtomicUsize,
    tokens: AtomicUsize,
}

impl Counting {
    fn new(current: &str, next: &str) -> Arc<Self> {
        Arc::new(Counting {
            current: Mutex::new(tok(current)),
            next: tok(next),
            refreshes: AtomicUsize::new(0),
            tokens: AtomicUsize::new(0),
        })
    }
}

/// `Arc<Counting>` as a provider, so that the test keeps a handle on the counts.
struct Shared(Arc<Counting>);

impl TokenProvider for Shared {
    fn token(&self) -> TokenFuture<'_> {
        self.0.tokens.fetch_add(1, Ordering::SeqCst);
        let token = self.0.current.lock().unwrap().clone();
        Box::pin(async move { Ok(token) })
    }

    fn refresh<'a>(&'a self, _rejected: &'a Token) -> TokenFuture<'a> {
        Box::pin(async move {
            self.0.refreshes.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let next = self.0.next.clone();
            *self.0.current.lock().unwrap() = next.clone();
            Ok(next)
        })
    }
}

async fn fifty_concurrent_calls(
    client: &laracopilot::Client,
) -> Vec<laracopilot::Result<laracopilot::Project>> {
    let calls = (0..50).map(|_| client.project("abc123"));
    bounded(futures::future::join_all(calls)).await
}

#[tokio::test]
async fn fifty_requests_rejected_together_share_one_refresh_and_each_retries_once() {
    let server = rotated_server().await;
    let counting = Counting::new(OLD, NEW);
    let client = builder_with(&server, Shared(Arc::clone(&counting)))
        .build()
        .unwrap();
    let results = fifty_concurrent_calls(&client).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(counting.refreshes.load(Ordering::SeqCst), 1);
    // On one thread, every call takes its token before any answer arrives: all fifty
    // go out with the old token, and each is sent again exactly once.
    let sent = bearers(&server).await;
    assert_eq!(sent.iter().filter(|b| *b == OLD).count(), 50);
    assert_eq!(sent.iter().filter(|b| *b == NEW).count(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_requests_rejected_together_on_many_threads_share_one_refresh() {
    let server = rotated_server().await;
    let counting = Counting::new(OLD, NEW);
    let client = builder_with(&server, Shared(Arc::clone(&counting)))
        .build()
        .unwrap();
    let calls = (0..50).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.project("abc123").await })
    });
    let results = bounded(futures::future::join_all(calls)).await;
    for result in results {
        result.unwrap().unwrap();
    }
    assert_eq!(counting.refreshes.load(Ordering::SeqCst), 1);
    let sent = bearers(&server).await;
    assert_eq!(sent.iter().filter(|b| *b == NEW).count(), 50);
    assert!(
        sent.iter().filter(|b| *b == OLD).count() <= 50,
        "one attempt each"
    );
}

#[tokio::test]
async fn fifty_rejections_with_no_newer_token_share_one_refresh_and_none_is_resent() {
    let server = rotated_server().await;
    let counting = Counting::new(OLD, OLD);
    let client = builder_with(&server, Shared(Arc::clone(&counting)))
        .build()
        .unwrap();
    let results = fifty_concurrent_calls(&client).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(Error::Unauthorized { .. }))),
        "{results:?}"
    );
    assert_eq!(counting.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(bearers(&server).await.len(), 50);
}

#[tokio::test]
async fn a_rejection_after_the_shared_refresh_refreshes_again() {
    // Rotation twice: OLD -> NEW, then NEW revoked too. The second 401 is about a
    // token handed out after the first refresh, so it refreshes again.
    let server = server().await;
    mount_for_token(&server, "GET", PROJECT, OLD, unauthorized()).await;
    mount_for_token(&server, "GET", PROJECT, NEW, unauthorized()).await;
    let counting = Counting::new(OLD, NEW);
    let client = builder_with(&server, Shared(Arc::clone(&counting)))
        .build()
        .unwrap();
    bounded(client.project("abc123")).await.unwrap_err();
    bounded(client.project("abc123")).await.unwrap_err();
    assert_eq!(counting.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(bearers(&server).await, [OLD, NEW, NEW]);
}

// ---- local expiry and the expiry hook ----

#[tokio::test]
async fn a_token_known_to_be_expired_fails_fast_and_nothing_reaches_the_server() {
    let server = server().await;
    let token = aged(TOKEN, "CI Pipeline", 31, Expiration::Days30);
    let client = builder_with(&server, laracopilot::tokens::StaticToken::new(token))
        .build()
        .unwrap();
    let project = bounded(client.project("abc123")).await.unwrap_err();
    assert!(
        matches!(project, Error::TokenExpired { locally: true, .. }),
        "{project:?}"
    );
    assert_eq!(project.status(), None);
    let generate = bounded(client.generate("Build a task app"))
        .await
        .unwrap_err();
    assert!(
        matches!(generate, Error::TokenExpired { locally: true, .. }),
        "{generate:?}"
    );
    let follow_up = bounded(client.follow_up("abc123", "Add a dark mode"))
        .await
        .unwrap_err();
    assert!(
        matches!(follow_up, Error::TokenExpired { locally: true, .. }),
        "{follow_up:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_token_known_to_be_expired_is_replaced_by_the_provider_before_sending() {
    let server = rotated_server().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider = FnToken::new(move || {
        let token = match counter.fetch_add(1, Ordering::SeqCst) {
            0 => aged(OLD, "old", 40, Expiration::Days30),
            _ => aged(NEW, "new", 0, Expiration::Days90),
        };
        std::future::ready(Ok(token))
    });
    let client = builder_with(&server, provider).build().unwrap();
    bounded(client.project("abc123")).await.unwrap();
    assert_eq!(bearers(&server).await, [NEW]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_expiry_hook_fires_once_for_a_token_expiring_within_the_window() {
    let server = server().await;
    mount(&server, "GET", PROJECT, project_json("abc123")).await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let hook_seen = Arc::clone(&seen);
    let client = builder_with(
        &server,
        laracopilot::tokens::StaticToken::new(aged(TOKEN, "Production", 25, Expiration::Days30)),
    )
    .on_token_expiring(Duration::from_secs(7 * DAY), move |info| {
        hook_seen.lock().unwrap().push(info.name().to_owned());
    })
    .build()
    .unwrap();
    for _ in 0..3 {
        bounded(client.project("abc123")).await.unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), ["Production"]);
}

#[tokio::test]
async fn the_expiry_hook_stays_silent_outside_the_window_and_without_an_expiry() {
    let server = server().await;
    mount(&server, "GET", PROJECT, project_json("abc123")).await;
    for token in [
        aged(TOKEN, "fresh", 1, Expiration::Days30),
        aged(TOKEN, "forever", 400, Expiration::Never),
        tok(TOKEN),
    ] {
        let fired = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&fired);
        let client = builder_with(&server, laracopilot::tokens::StaticToken::new(token))
            .on_token_expiring(Duration::from_secs(7 * DAY), move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        bounded(client.project("abc123")).await.unwrap();
        assert_eq!(fired.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn the_expiry_hook_fires_again_for_a_new_token_that_also_expires_soon() {
    let server = rotated_server().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider = FnToken::new(move || {
        let token = match counter.fetch_add(1, Ordering::SeqCst) {
            0 => aged(OLD, "first", 28, Expiration::Days30),
            _ => aged(NEW, "second", 29, Expiration::Days30),
        };
        std::future::ready(Ok(token))
    });
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let hook_seen = Arc::clone(&seen);
    let client = builder_with(&server, provider)
        .on_token_expiring(Duration::from_secs(7 * DAY), move |info| {
            hook_seen.lock().unwrap().push(info.name().to_owned());
        })
        .build()
        .unwrap();
    bounded(client.project("abc123")).await.unwrap();
    bounded(client.project("abc123")).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["first", "second"]);
}

#[tokio::test]
async fn an_expired_token_fires_the_hook_once_and_then_fails_every_call() {
    let server = server().await;
    let fired = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fired);
    let client = builder_with(
        &server,
        laracopilot::tokens::StaticToken::new(aged(TOKEN, "old", 95, Expiration::Days90)),
    )
    .on_token_expiring(Duration::from_secs(DAY), move |info| {
        assert_eq!(info.status(), laracopilot::tokens::TokenStatus::Expired);
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .build()
    .unwrap();
    for _ in 0..3 {
        let err = bounded(client.project("abc123")).await.unwrap_err();
        assert!(
            matches!(err, Error::TokenExpired { locally: true, .. }),
            "{err:?}"
        );
    }
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---- verify_token ----

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
    assert_eq!(check, TokenCheck::Expired { locally: false });
    assert!(!check.is_accepted());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn verify_token_reports_a_revoked_token_as_unauthorized() {
    let server = server().await;
    mount(&server, "GET", PROBE, unauthorized()).await;
    let check = bounded(client(&server).verify_token()).await.unwrap();
    assert_eq!(
        check,
        TokenCheck::Unauthorized {
            message: Some("Unauthorized.".into())
        }
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
    assert_eq!(check, TokenCheck::Expired { locally: true });
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

#[test]
fn the_token_rotation_example_survives_a_rotation_on_the_offline_server() {
    let Some(program) = example("token_rotation") else {
        return;
    };
    let (status, stdout, stderr) =
        run_bounded(&program, &["4", "20"], &[], Duration::from_secs(60));
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        let expected = match i {
            0 | 1 => "token ****0001: the API token is accepted",
            2 => "rotated: ",
            _ => "token ****0002: the API token is accepted",
        };
        assert!(line.contains(expected), "line {i}: {line}");
    }
}
