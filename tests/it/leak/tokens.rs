//! Tokens, providers and builders never print the token.

use super::*;

#[tokio::test]
async fn tokens_providers_and_builders_never_print_the_token() {
    let (logs, _guard) = capture_logs();
    let mut printed = Printed::default();

    // Bad values that contain the secret: the errors must not repeat it.
    for (label, bad) in [
        ("newline", format!("{TOKEN}\n")),
        ("space", format!("{TOKEN} {TOKEN}")),
        ("tab", format!("\t{TOKEN}")),
        ("control", format!("{TOKEN}\u{7}")),
        ("zero-width", format!("{TOKEN}\u{200B}")),
    ] {
        printed.result(&format!("Token::new({label})"), &Token::new(bad));
    }
    let now = SystemTime::now();
    let info = TokenInfo::new("Production", now, Expiration::Days30);
    let with_info = token().with_info(info.clone());
    printed.debug("Token", &token());
    printed.debug("Token with info", &with_info);
    printed.text("Token::masked", token().masked());
    printed.debug("TokenInfo", &info);
    printed.debug("Expiration", &Expiration::Days90);
    printed.text("Expiration", Expiration::Days90.to_string());
    printed.debug("TokenStatus", &TokenStatus::Expired);
    printed.text("TokenStatus", info.status_at(now).to_string());
    // The other answers come from servers, in the token check's own leak tests.
    let check = TokenCheck::Accepted;
    printed.debug("TokenCheck", &check);
    printed.text("TokenCheck", check.to_string());

    // Providers, before and after use.
    let stat = StaticToken::new(with_info.clone());
    printed.debug("StaticToken", &stat);
    let var = "LARACOPILOT_LEAK_TEST_TOKEN";
    std::env::set_var(var, TOKEN);
    let env = EnvToken::new(var).unwrap();
    printed.debug("EnvToken", &env);
    std::env::set_var(var, format!("{SECOND} {TOKEN}"));
    printed.provided("EnvToken::refresh (invalid)", &env.refresh(&token()).await);
    printed.result("EnvToken::new (invalid)", &EnvToken::new(var));
    std::env::remove_var(var);
    printed.result("EnvToken::new (missing)", &EnvToken::new(var));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let from_file = FileToken::new(&file).unwrap();
    printed.debug("FileToken", &from_file);
    std::fs::write(&file, format!("{SECOND} {TOKEN}\n")).unwrap();
    printed.provided("FileToken::token (invalid file)", &from_file.token().await);
    printed.provided(
        "FileToken::refresh (invalid file)",
        &from_file.refresh(&token()).await,
    );
    printed.result("FileToken::new (invalid)", &FileToken::new(&file));
    std::fs::write(&file, [0xff, 0xfe, b'a']).unwrap();
    printed.result("FileToken::new (not UTF-8)", &FileToken::new(&file));
    let closure = FnToken::new(|| std::future::ready(Token::new(SECOND).map_err(Into::into)));
    printed.debug("FnToken (before)", &closure);
    printed.provided("FnToken::token", &closure.token().await);
    printed.debug("FnToken (after)", &closure);

    // Builders and their errors.
    let builder = Client::builder().token(token());
    printed.debug("ClientBuilder", &builder);
    let client = builder.build().unwrap();
    printed.debug("Client", &client);
    for (label, url) in [
        (
            "credentials",
            format!("https://user:{TOKEN}@example.com/api/v1"),
        ),
        ("not a url", TOKEN.to_owned()),
        ("scheme", format!("ftp://example.com/{TOKEN}")),
        ("plain http", "http://example.com/api/v1".to_owned()),
        ("query", format!("https://example.com/api/v1?{TOKEN}")),
    ] {
        let built = Client::builder().token(token()).base_url(url).build();
        printed.result(&format!("build ({label})"), &built);
    }
    let user_agent = Client::builder()
        .token(token())
        .user_agent(format!("agent\n{TOKEN}"))
        .build();
    printed.result("build (user agent)", &user_agent);
    let no_token = Client::builder().build();
    printed.result("build (no token)", &no_token);
    #[cfg(feature = "blocking")]
    {
        let blocking = tokio::task::spawn_blocking(|| {
            let client = Client::builder().token(token()).build_blocking();
            format!("{client:?} {client:#?}")
        })
        .await
        .unwrap();
        printed.text("blocking::Client", blocking);
    }

    printed.text("tracing output", logs.text());
    printed.assert_clean();
}
