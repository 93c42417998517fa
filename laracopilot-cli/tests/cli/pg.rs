//! A PostgreSQL server for the tests of `--journal postgres://...`: the one
//! `LARACOPILOT_TEST_POSTGRES` names (`.ci/postgres.sh` starts one and prints it),
//! else [`DEFAULT_URL`]. With no server there the tests are skipped, saying so on
//! stderr; with the variable set, an unreachable server fails them. Each test works
//! in a schema of its own (`--journal-schema`), dropped when it passes.

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

/// Where the tests look for a server when `LARACOPILOT_TEST_POSTGRES` is unset:
/// what `.ci/postgres.sh` makes.
const DEFAULT_URL: &str = "postgres://laracopilot:laracopilot@127.0.0.1:5432/laracopilot";

const ENV: &str = "LARACOPILOT_TEST_POSTGRES";

/// A test's server and schema, and a connection of its own to drop the schema.
pub struct Database {
    pub url: String,
    pub schema: String,
    admin: tokio_postgres::Client,
}

/// The server to test against, or `None` (said on stderr, past libtest's capture)
/// when there is none and none was asked for.
pub async fn database(test: &str) -> Option<Database> {
    let (url, asked) = match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => (url, true),
        _ => (DEFAULT_URL.to_owned(), false),
    };
    let config = tokio_postgres::Config::from_str(&url).expect("a PostgreSQL URL");
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        config.connect(tokio_postgres::NoTls),
    )
    .await;
    let (admin, connection) = match connected {
        Ok(Ok(connected)) => connected,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "no answer within 5 s".to_owned(),
            };
            let shown = masked(&url);
            assert!(
                !asked,
                "{ENV} is set but its server cannot be reached ({shown}): {why}"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipping the PostgreSQL test {test}: no server at {shown} ({why}); set {ENV}"
            );
            return None;
        }
    };
    tokio::spawn(connection);
    let schema = format!(
        "lcc_{:012x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            & 0xffff_ffff_ffff
    );
    Some(Database { url, schema, admin })
}

/// The URL with its password masked, for a test's own messages.
fn masked(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}

impl Database {
    /// The password of the URL, when it has one.
    pub fn password(&self) -> Option<String> {
        url::Url::parse(&self.url)
            .ok()?
            .password()
            .map(ToOwned::to_owned)
    }

    /// Fails when `output` shows the URL's password: its `user:password@` form, or
    /// the password itself when it is not also the user's or the database's name.
    pub fn assert_no_password(&self, label: &str, output: &str) {
        let Some(password) = self.password() else {
            return;
        };
        let url = url::Url::parse(&self.url).unwrap();
        assert!(
            !output.contains(&format!(":{password}@")) && !output.contains(&self.url),
            "{label} shows the journal's password: {output}"
        );
        let elsewhere = url.username().contains(&password)
            || url.path().contains(&password)
            || url.host_str().unwrap_or_default().contains(&password);
        if !elsewhere {
            assert!(
                !output.contains(&password),
                "{label} shows the journal's password: {output}"
            );
        }
    }

    /// Drops the test's schema (a test that fails leaves it, to be looked at).
    pub async fn drop_schema(self) {
        self.admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await
            .unwrap();
    }
}
