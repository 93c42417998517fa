//! The simple providers: a fixed token, an environment variable, a closure.

use std::env::VarError;
use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroize;

use super::{TokenFuture, TokenProvider};
use crate::{BoxError, Error, Result, Token};

/// A token that never changes.
///
/// ```
/// use laracopilot::tokens::StaticToken;
/// let provider = StaticToken::new(laracopilot::Token::new("lcp_0123456789abcdef")?);
/// let client = laracopilot::Client::builder().token_provider(provider).build()?;
/// # Ok::<(), laracopilot::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StaticToken(Token);

impl StaticToken {
    /// Wraps a token.
    pub fn new(token: Token) -> Self {
        StaticToken(token)
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// A token read from an environment variable when created, and read again on each
/// refresh (after a 401, or when the token is known to be expired).
///
/// A process's environment changes only from inside the process (a secrets agent
/// library, a test): for a token rotated from outside, use
/// [`FileToken`](super::FileToken). The value read is zeroized once copied into the
/// token.
///
/// ```no_run
/// use laracopilot::tokens::EnvToken;
/// let provider = EnvToken::new(laracopilot::TOKEN_ENV)?;
/// let client = laracopilot::Client::builder().token_provider(provider).build()?;
/// # Ok::<(), laracopilot::Error>(())
/// ```
pub struct EnvToken {
    var: String,
    token: Mutex<Token>,
}

impl EnvToken {
    /// Reads the variable `var` now, so that a missing token fails early.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the variable is missing, not valid unicode, or not a
    /// valid token (the message names the variable, never its value).
    pub fn new(var: impl Into<String>) -> Result<Self> {
        let var = var.into();
        let token = read_env(&var)?;
        Ok(EnvToken {
            var,
            token: Mutex::new(token),
        })
    }

    /// The name of the variable.
    pub fn var(&self) -> &str {
        &self.var
    }

    fn cached(&self) -> Token {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for EnvToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvToken")
            .field("var", &self.var)
            .field("token", &self.cached())
            .finish()
    }
}

impl TokenProvider for EnvToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.cached();
        Box::pin(async move { Ok(token) })
    }

    fn refresh<'a>(&'a self, _rejected: &'a Token) -> TokenFuture<'a> {
        let fresh = read_env(&self.var).inspect(|token| {
            *self.token.lock().unwrap_or_else(PoisonError::into_inner) = token.clone();
        });
        Box::pin(async move { Ok(fresh?) })
    }
}

fn read_env(var: &str) -> Result<Token> {
    match std::env::var(var) {
        Ok(mut value) => {
            let token = Token::from_str_checked(&value);
            value.zeroize();
            token.map_err(|e| in_context(var, e))
        }
        Err(VarError::NotPresent) => Err(Error::config(format!("{var} is not set"))),
        Err(VarError::NotUnicode(value)) => {
            value.into_encoded_bytes().zeroize();
            Err(Error::config(format!("{var} is not valid unicode")))
        }
    }
}

/// Prefixes a token validation error with where the token came from.
pub(super) fn in_context(source: &str, error: Error) -> Error {
    match error {
        Error::Config { message, .. } => Error::config(format!("{source}: {message}")),
        other => other,
    }
}

/// A token from the caller's closure: called for the first request, then again on
/// each refresh (after a 401, or when the token is known to be expired). The token in
/// between is cached, so the closure may be slow (a call to a secrets manager).
///
/// The closure returns a future of `Result<Token, BoxError>`: any error, boxed by `?`
/// (the client reports it as [`Error::TokenProvider`](crate::Error::TokenProvider)).
///
/// ```no_run
/// use laracopilot::tokens::FnToken;
/// use laracopilot::Token;
///
/// # async fn fetch_from_vault() -> std::io::Result<String> { Ok(String::new()) }
/// let provider = FnToken::new(|| async { Ok(Token::new(fetch_from_vault().await?)?) });
/// let client = laracopilot::Client::builder().token_provider(provider).build()?;
/// # Ok::<(), laracopilot::Error>(())
/// ```
pub struct FnToken<F> {
    fetch: F,
    cached: tokio::sync::Mutex<Option<Token>>,
}

impl<F, Fut> FnToken<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Token, BoxError>> + Send + 'static,
{
    /// Wraps `fetch`; it is first called by the first request.
    pub fn new(fetch: F) -> Self {
        FnToken {
            fetch,
            cached: tokio::sync::Mutex::new(None),
        }
    }
}

impl<F> fmt::Debug for FnToken<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("FnToken");
        match self.cached.try_lock() {
            Ok(cached) => debug.field("token", &*cached),
            Err(_) => debug.field("token", &"<being fetched>"),
        };
        debug.finish_non_exhaustive()
    }
}

impl<F, Fut> TokenProvider for FnToken<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Token, BoxError>> + Send + 'static,
{
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            // Held across the first fetch: concurrent first requests call it once.
            let mut cached = self.cached.lock().await;
            if let Some(token) = cached.as_ref() {
                return Ok(token.clone());
            }
            let token = (self.fetch)().await?;
            *cached = Some(token.clone());
            Ok(token)
        })
    }

    fn refresh<'a>(&'a self, _rejected: &'a Token) -> TokenFuture<'a> {
        Box::pin(async move {
            let mut cached = self.cached.lock().await;
            let token = (self.fetch)().await?;
            *cached = Some(token.clone());
            Ok(token)
        })
    }
}
