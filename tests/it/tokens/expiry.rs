//! Local expiry and the expiry hook.

use super::*;

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
