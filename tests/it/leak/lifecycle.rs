//! Rotation, refresh and expiry warnings (and their logs) never print the token.

use super::*;

#[tokio::test]
async fn rotation_refresh_and_expiry_warnings_never_print_the_token() {
    let (logs, _guard) = capture_logs();
    let mut printed = Printed::default();
    let server = server().await;
    mount_for_token(
        &server,
        "GET",
        "/agent/project/abc123",
        TOKEN,
        unauthorized(),
    )
    .await;
    mount_for_token(
        &server,
        "GET",
        "/agent/project/abc123",
        SECOND,
        project_json("abc123"),
    )
    .await;

    // Rotation through a closure, with both tokens expiring soon.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let soon = |value: &str, name: &str| {
        let created = SystemTime::now() - Duration::from_secs(29 * 86_400);
        Token::new(value)
            .unwrap()
            .with_info(TokenInfo::new(name, created, Expiration::Days30))
    };
    let provider = FnToken::new(move || {
        let value = if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            TOKEN
        } else {
            SECOND
        };
        std::future::ready(Ok(soon(value, "Production")))
    });
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let hook_out = Arc::clone(&hooked);
    let client = builder_with(&server, provider)
        .on_token_expiring(Duration::from_secs(7 * 86_400), move |info| {
            hook_out.lock().unwrap().push(format!("{info:?}"));
        })
        .build()
        .unwrap();
    printed.result("rotated call", &client.project("abc123").await);
    printed.result("verify after rotation", &client.verify_token().await);
    printed.text("hook", hooked.lock().unwrap().join("\n"));
    assert_eq!(
        hooked.lock().unwrap().len(),
        2,
        "the hook fired for each token"
    );

    // A refresh that finds nothing new, and one that fails.
    let same = builder_with(&server, StaticToken::new(token()))
        .build()
        .unwrap();
    printed.result("no newer token", &same.project("abc123").await);
    let failing = builder_with(
        &server,
        FnToken::new(|| std::future::ready(Err("the vault is sealed".into()))),
    )
    .build()
    .unwrap();
    printed.result("provider error", &failing.project("abc123").await);

    // A mounted secret caught halfway through a rewrite.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{SECOND}\n")).unwrap();
    let from_file = builder_with(&server, FileToken::new(&file).unwrap())
        .build()
        .unwrap();
    printed.result("file token", &from_file.project("abc123").await);
    std::fs::write(&file, format!("{TOKEN} {SECOND}")).unwrap();
    printed.result(
        "file token (invalid file)",
        &from_file.project("abc123").await,
    );

    let log = logs.text();
    // The capture works, and shows tokens only by their masks.
    assert!(log.contains("expires soon"), "{log}");
    assert!(
        log.contains("****9f8e") && log.contains("****7a6b"),
        "{log}"
    );
    assert!(log.contains("refreshed the API token"), "{log}");
    printed.text("tracing output", log);
    printed.assert_clean();
}
