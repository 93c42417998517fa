//! Token lifecycle: where the client gets its token, what is known about it, and
//! how a rotated or revoked token is replaced without restarting anything.
//!
//! # Providers
//!
//! The client asks its [`TokenProvider`] for the token before every request. The
//! crate provides four:
//!
//! - [`StaticToken`]: one token for the client's whole life
//!   ([`ClientBuilder::token`](crate::ClientBuilder::token) uses it);
//! - [`EnvToken`]: an environment variable, read again on refresh;
//! - [`FileToken`]: a file such as a mounted secret, read again whenever it changes;
//! - [`FnToken`]: the caller's own (async) closure, e.g. a secrets manager client.
//!
//! # After a 401
//!
//! When the server answers 401, the client asks the provider to
//! [`refresh`](TokenProvider::refresh) once; if that yields a different token, the
//! request is sent again once (a 401 means the server did no work, so this never
//! spends credits twice). Otherwise the typed error
//! ([`Error::Unauthorized`](crate::Error::Unauthorized) or
//! [`Error::TokenExpired`](crate::Error::TokenExpired)) reaches the caller.
//!
//! Requests that are rejected together share one refresh: the first one refreshes,
//! the others wait for it and use its result. A request whose token had already been
//! replaced when its 401 arrived uses the replacement without refreshing again.
//!
//! # Expiry
//!
//! A [`Token`] can carry its [`TokenInfo`] (name, created date,
//! [`Expiration`]), as the dashboard shows it. A client whose token is known to be
//! expired asks its provider for a newer one (as after a 401) and, if there is none,
//! fails with [`Error::TokenExpired`](crate::Error::TokenExpired) `{ locally: true }`
//! without sending the request. Before that,
//! [`ClientBuilder::on_token_expiring`](crate::ClientBuilder::on_token_expiring) warns.
//!
//! ```no_run
//! use std::time::Duration;
//! use laracopilot::tokens::FileToken;
//!
//! # async fn run() -> laracopilot::Result<()> {
//! // A mounted secret, rotated by the platform: picked up without a restart.
//! let client = laracopilot::Client::builder()
//!     .token_provider(FileToken::new("/run/secrets/laracopilot-token")?)
//!     .on_token_expiring(Duration::from_secs(7 * 86_400), |info| {
//!         eprintln!("token {:?} expires at {:?}", info.name(), info.expiry_time());
//!     })
//!     .build()?;
//! if !client.verify_token().await?.is_accepted() {
//!     eprintln!("the LaraCopilot token is not accepted");
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{BoxError, Token};

mod check;
mod file;
mod info;
mod providers;
mod source;
pub(crate) mod token;

pub use check::TokenCheck;
pub use file::FileToken;
pub use info::{Expiration, TokenInfo, TokenStatus};
pub use providers::{EnvToken, FnToken, StaticToken};

pub(crate) use check::PROBE_PROJECT_ID;
pub(crate) use source::{ExpiryOptions, Lease, TokenSource};

/// A boxed future returned by [`TokenProvider`] methods: the token, or why the
/// provider could not give one (any error type; `?` boxes it). The client reports a
/// provider's failure as [`Error::TokenProvider`](crate::Error::TokenProvider), or as
/// the crate's own error when the provider returned one (such as a
/// [`Token::new`] error).
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send + 'a>>;

/// Where the client gets its API token.
///
/// Implement it to plug in a secrets manager (or wrap a closure in [`FnToken`]).
/// [`token`](TokenProvider::token) is called before every request, so it should be
/// cheap: return a cached token and do the expensive work in
/// [`refresh`](TokenProvider::refresh). After `refresh` returned a token, `token`
/// should return that token too.
///
/// ```
/// use laracopilot::tokens::{TokenFuture, TokenProvider};
/// use laracopilot::Token;
///
/// struct Vault;
///
/// impl TokenProvider for Vault {
///     fn token(&self) -> TokenFuture<'_> {
///         Box::pin(async { Ok(Token::new("lcp_0123456789abcdef")?) })
///     }
/// }
///
/// let client = laracopilot::Client::builder().token_provider(Vault).build()?;
/// # Ok::<(), laracopilot::Error>(())
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// The token to use for the next request.
    ///
    /// # Errors
    ///
    /// Whatever the provider cannot resolve; the request is then not sent and the
    /// error reaches the caller as [`Error::TokenProvider`](crate::Error::TokenProvider)
    /// (or as itself, when it is this crate's [`Error`](crate::Error)).
    fn token(&self) -> TokenFuture<'_>;

    /// Called after the server rejected `rejected` with 401 (or when `rejected` is
    /// known locally to be expired): return a newer token if there is one, or the same
    /// token if not. The default asks [`token`](TokenProvider::token) again.
    ///
    /// A client never runs two refreshes at the same time (requests rejected
    /// together wait for one refresh and share its result); clients sharing one
    /// provider refresh independently. A refresh must not make requests through the
    /// client it provides for: that client's rejected requests wait for it.
    ///
    /// # Errors
    ///
    /// Whatever the provider cannot resolve; the client then reports the 401 (or the
    /// local expiry) that led to the refresh, with this error as its `source`.
    fn refresh<'a>(&'a self, rejected: &'a Token) -> TokenFuture<'a> {
        let _ = rejected;
        self.token()
    }
}

/// A shared provider: keep a handle on it (to look at its current token, for
/// instance) while the client uses it.
///
/// ```no_run
/// use std::sync::Arc;
/// use laracopilot::tokens::{FileToken, TokenProvider};
///
/// # async fn run() -> Result<(), laracopilot::BoxError> {
/// let provider = Arc::new(FileToken::new("/run/secrets/laracopilot-token")?);
/// let client = laracopilot::Client::builder()
///     .token_provider(Arc::clone(&provider))
///     .build()?;
/// println!("using {}", provider.token().await?.masked());
/// # Ok(()) }
/// ```
impl<P: TokenProvider + ?Sized> TokenProvider for Arc<P> {
    fn token(&self) -> TokenFuture<'_> {
        (**self).token()
    }

    fn refresh<'a>(&'a self, rejected: &'a Token) -> TokenFuture<'a> {
        (**self).refresh(rejected)
    }
}
