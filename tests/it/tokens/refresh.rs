//! One refresh after a 401, shared by the requests rejected together; a generate
//! call is posted again only with a new token.

use super::*;

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
    assert_eq!(outcome.project_id().unwrap(), "abc123");
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
