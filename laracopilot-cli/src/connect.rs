//! Reaching LaraCopilot: the flags every talking subcommand shares, the one place
//! where a client is built from them ([`shape`]), the one place where a journal is
//! opened ([`open_journal`]), and the choice between the real API and the embedded
//! offline LaraCopilot ([`connect`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use laracopilot::journal::{Journal, JournalOptions, PostgresJournal, SqliteJournal};
use laracopilot::tokens::TokenProvider;
use laracopilot::{Budget, Client, ClientBuilder};

use crate::failure::Failure;
use crate::offline::Offline;
use crate::out;

/// The flags of every subcommand that talks to LaraCopilot, flattened into each
/// one's arguments: a flag added here is a flag of every one of them, spelled the
/// same way.
#[derive(Debug, Clone, clap::Args)]
pub struct Talk {
    /// Print JSON on stdout, one object per line; human messages go to stderr
    ///
    /// generate, follow-up: {"event": TYPE, "data": EVENT} for each event, then
    /// {"schema_version": 1, "outcome": {...}} or {"schema_version": 1, "error": {...}}.
    /// status: the status answer, or the error. plans: {"schema_version": 1, "plans":
    /// [...]}. resume: an outcome or error line per journal entry. The README of
    /// laracopilot-cli has the schema.
    #[arg(long)]
    pub json: bool,

    /// Record every exchange with LaraCopilot into this cassette file (JSON lines,
    /// the token masked), to replay it later: `laracopilot mock-server --replay FILE`,
    /// or `MockServer::replay` in a test
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Give up on a stream (or on an answer's headers) after this many seconds
    /// without a byte [default: the SDK's, 300]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: Option<u64>,
}

/// `--journal`, flattened only into the subcommands that start generations or
/// settle them (generate, follow-up, resume): a status poll has nothing to journal,
/// so status does not take it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JournalFlag {
    /// The journal: an SQLite file (one host: created if missing, owner-only) or a
    /// `postgres://` URL (a fleet); each generation is recorded in it, and resume
    /// settles what a crash left unfinished there
    ///
    /// The intent is written before the request is sent (with the spend guards),
    /// that the server accepted it, the project id as soon as it is known, the
    /// outcome at the end. With --json the outcome line of generate and follow-up
    /// gains "journal_id", the generation's entry. A file that is not a journal is
    /// refused, never touched.
    #[arg(long, value_name = "PATH|URL")]
    pub journal: Option<String>,

    /// How long this run's journal entries stay its own (and its concurrency slots
    /// taken) after it stops renewing them, a crash say: the longest another
    /// process waits before it may resume them [default: 30]
    #[arg(long, value_name = "SECS", requires = "journal", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease: Option<u64>,

    /// With a `postgres://` journal: the database schema its tables live in;
    /// journals in different schemas share nothing (staging and production in one
    /// database, say) [default: laracopilot]
    #[arg(long, value_name = "NAME", requires = "journal")]
    pub journal_schema: Option<String>,
}

/// The spend guards of the calls that spend credits (generate, follow-up), shared
/// through the journal by every process and host that uses it with the same scope.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GuardFlags {
    /// The scope the spend guards count under (a team, a tenant, an environment)
    /// [default: default]
    #[arg(long, value_name = "NAME")]
    pub scope: Option<String>,

    /// At most N generate and follow-up calls of the scope at once (across every
    /// host with --journal): the call waits for a slot
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrent: Option<u64>,

    /// At most COUNT calls of the scope started per WINDOW (minute, hour, day), e.g.
    /// 10/hour or 200/day; may be given more than once; needs --journal. A refused
    /// call sends nothing and exits 6
    #[arg(long, value_name = "COUNT/WINDOW", value_parser = parse_budget)]
    pub budget: Vec<Budget>,

    /// Makes this call happen at most once per key and scope, whichever process or
    /// host repeats it (needs --journal): a repeat sends nothing and answers the
    /// first call's result (with --json, "replay": true in its outcome line)
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
}

fn parse_budget(text: &str) -> Result<Budget, String> {
    text.parse::<Budget>().map_err(|e| e.to_string())
}

/// Opens the journal `spec` names: the one place where the CLI opens one, an SQLite
/// file or a `postgres://` URL, with this run's lease.
///
/// # Errors
///
/// [`Failure::Sdk`] with the SDK's `Error::Journal` when the journal cannot be
/// opened (a file that is not a journal, a database that cannot be reached, a schema
/// name that is not one, ...); [`Failure::Usage`] for `--journal-schema` with an
/// SQLite file.
pub async fn open_journal(flag: &JournalFlag) -> Result<Option<Arc<dyn Journal>>, Failure> {
    let Some(spec) = flag.journal.as_deref() else {
        return Ok(None);
    };
    let mut options = JournalOptions::new();
    if let Some(secs) = flag.lease {
        options = options.lease(Duration::from_secs(secs));
    }
    let journal: Arc<dyn Journal> = match (is_postgres(spec), flag.journal_schema.as_deref()) {
        (true, schema) => {
            let schema = schema.unwrap_or(PostgresJournal::DEFAULT_SCHEMA);
            Arc::new(PostgresJournal::connect_in(spec, schema, options).await?)
        }
        (false, Some(_)) => {
            return Err(Failure::Usage(
                "--journal-schema needs a postgres:// journal (an SQLite file has no schemas)"
                    .into(),
            ))
        }
        (false, None) => Arc::new(SqliteJournal::open_with(spec, options)?),
    };
    match &flag.journal_schema {
        Some(schema) => out::note("Journal", &format!("{} (schema {schema})", shown(spec))),
        None => out::note("Journal", &shown(spec)),
    }
    Ok(Some(journal))
}

/// How long a run waits, before it exits, for its journal to write what it queued.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Waits (at most [`FLUSH_LIMIT`]) until the journal of `client`, if it has one, has
/// written what was queued without waiting (`Client::flush_journal`): the release
/// of a stream dropped halfway (stdout closed, a stream that broke), of a call that
/// failed after it may have started work, or of an entry `resume` did not report.
/// A process that exits first loses them: its slots stay held across the fleet,
/// and its entries driven, until its lease expires (30 s by default). Call it once
/// the run's streams are dropped, whatever the run's result, before exiting.
pub async fn flush_journal(client: &Client, journal: &JournalFlag) {
    if journal.journal.is_none() {
        return;
    }
    match tokio::time::timeout(FLUSH_LIMIT, client.flush_journal()).await {
        Ok(Ok(())) => {}
        // The lease ends the rest; say so, since other hosts wait for it.
        Ok(Err(error)) => out::warn("Warning", &format!("{error}")),
        Err(_) => out::warn(
            "Warning",
            &format!(
                "the journal did not finish its writes within {} s: this run's slots \
                 come back when its lease expires",
                FLUSH_LIMIT.as_secs()
            ),
        ),
    }
}

/// Whether `spec` names a PostgreSQL database rather than an SQLite file.
fn is_postgres(spec: &str) -> bool {
    let lower = spec.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The journal as it may be shown: an SQLite path as it is; a URL without its
/// password (in its user part or as a `password` parameter), and a URL that does
/// not parse (which could hold one anywhere) not at all.
pub fn shown(spec: &str) -> String {
    if !is_postgres(spec) {
        return spec.to_owned();
    }
    let Ok(mut url) = url::Url::parse(spec.trim()) else {
        return "(a postgres:// URL that does not parse, not shown: it may hold a password)"
            .to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("****"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = match key.to_ascii_lowercase().contains("password") {
                    true => "****".to_owned(),
                    false => value.into_owned(),
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// `builder` as the flags shape it: the idle timeout, the journal, the `--record`
/// cassette. The one place where a flag reaches a client.
pub fn shape(
    builder: ClientBuilder,
    flags: &Talk,
    journal: Option<Arc<dyn Journal>>,
    guards: &GuardFlags,
) -> ClientBuilder {
    let mut builder = builder;
    if let Some(scope) = &guards.scope {
        builder = builder.scope(scope);
    }
    if let Some(n) = guards.max_concurrent {
        builder = builder.max_concurrent_generations(usize::try_from(n).unwrap_or(usize::MAX));
    }
    for budget in &guards.budget {
        builder = builder.budget(*budget);
    }
    if let Some(secs) = flags.idle_timeout {
        builder = builder.idle_timeout(Duration::from_secs(secs));
    }
    if let Some(journal) = journal {
        builder = builder.journal(journal);
    }
    if let Some(path) = &flags.record {
        out::note("Recording", &format!("into {}", path.display()));
        builder = builder.record_to(path);
    }
    builder
}

/// `request` with the per-call guard of `guards` (its idempotency key), sent.
///
/// # Errors
///
/// The call's: a refusal by a spend guard, the server's answer, ...
pub async fn request(
    request: laracopilot::GenerateRequest<'_>,
    guards: &GuardFlags,
) -> laracopilot::Result<laracopilot::Generation> {
    match &guards.idempotency_key {
        Some(key) => request.idempotency_key(key).await,
        None => request.await,
    }
}

/// The fields the guards add to the JSON outcome of `generation`: with
/// `--idempotency-key`, `"replay"`, whether it is the outcome of an earlier call with
/// the key, replayed (nothing was sent).
pub fn guard_fields(
    generation: &laracopilot::Generation,
    guards: &GuardFlags,
) -> Vec<(&'static str, serde_json::Value)> {
    match guards.idempotency_key {
        Some(_) => vec![("replay", serde_json::Value::Bool(generation.is_replay()))],
        None => Vec::new(),
    }
}

/// A builder for the real API with the token of `provider` (read again whenever it
/// changes), as the environment configures the rest: `LARACOPILOT_BASE_URL` and
/// `LARACOPILOT_OFFLINE`, read as `ClientBuilder::from_env` reads them.
pub fn with_provider(provider: Arc<dyn TokenProvider>) -> ClientBuilder {
    let mut builder = Client::builder().token_provider(provider);
    if let Ok(url) = std::env::var(laracopilot::BASE_URL_ENV) {
        if !url.trim().is_empty() {
            builder = builder.base_url(url.trim());
        }
    }
    let offline = std::env::var(laracopilot::OFFLINE_ENV).unwrap_or_default();
    if matches!(
        offline.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    ) {
        builder = builder.offline(true);
    }
    builder
}

/// A client, and the embedded offline LaraCopilot it talks to when there is one
/// (kept alive as long as the connection).
pub struct Connection {
    /// The client, shaped by the flags.
    pub client: Client,
    /// The embedded offline LaraCopilot, when no token was set.
    pub offline: Option<Offline>,
}

/// Whether a token is set: the real API is meant.
pub fn token_set() -> bool {
    std::env::var_os(laracopilot::TOKEN_ENV).is_some()
}

/// Which API a run would talk to, without sending anything: the real API's base URL
/// as a client built from the environment normalizes it, or `offline` when no token
/// is set (for `generate --cache`, whose entries belong to one API).
///
/// # Errors
///
/// [`Failure::Sdk`] with `Error::Config` for a bad token or base URL.
pub fn api_identity(offline: &str) -> Result<String, Failure> {
    if !token_set() {
        return Ok(offline.to_owned());
    }
    Ok(Client::builder().from_env().build()?.base_url().to_owned())
}

/// The real API's client, as the environment configures it, shaped by `flags`;
/// says which API on stderr.
///
/// # Errors
///
/// [`Failure::Sdk`] with `Error::Config` for a bad token or base URL.
pub fn api(
    flags: &Talk,
    journal: Option<Arc<dyn Journal>>,
    guards: &GuardFlags,
) -> Result<Client, Failure> {
    let client = shape(Client::builder().from_env(), flags, journal, guards).build()?;
    let at = format!("the LaraCopilot API at {}", client.base_url());
    out::note("Using", &at);
    Ok(client)
}

/// The real API when `LARACOPILOT_API_TOKEN` is set (and `LARACOPILOT_BASE_URL` when
/// given); otherwise the embedded offline LaraCopilot, which knows the projects
/// generated offline before. Says which on stderr.
///
/// # Errors
///
/// A bad token or base URL; the offline LaraCopilot that cannot start.
pub fn connect(
    flags: &Talk,
    journal: Option<Arc<dyn Journal>>,
    guards: &GuardFlags,
) -> Result<Connection, Failure> {
    if token_set() {
        return Ok(Connection {
            client: api(flags, journal, guards)?,
            offline: None,
        });
    }
    let offline = Offline::start()?;
    let client = shape(offline.client_builder(), flags, journal, guards).build()?;
    Ok(Connection {
        client,
        offline: Some(offline),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_is_shown_without_any_password() {
        let cases = [
            ("app.db", "app.db"),
            (
                "postgres://app:S3cret-pw@db.internal:5432/app",
                "postgres://app:****@db.internal:5432/app",
            ),
            (
                "postgresql://app@db.internal/app?sslmode=require&password=S3cret-pw",
                "postgresql://app@db.internal/app?sslmode=require&password=****",
            ),
            (
                "postgres://app:S3cret@pw@db.internal/app",
                "postgres://app:****@db.internal/app",
            ),
            (
                "postgres://app:S3cret-pw@[not a host/app",
                "(a postgres:// URL that does not parse, not shown: it may hold a password)",
            ),
        ];
        for (spec, want) in cases {
            let shown = shown(spec);
            assert_eq!(shown, want, "{spec}");
            assert!(!shown.contains("S3cret"), "{spec}: {shown}");
        }
    }
}
