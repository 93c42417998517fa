//! Token lifecycle: where the client gets its token from, and how it gets a new one.
//!
//! The client asks its [`TokenProvider`] for the token before every request. When the
//! server answers 401, the client asks the provider to [`refresh`](TokenProvider::refresh)
//! once; if that yields a different token, the request is sent again once (a 401
//! means the server did no work, so this can never spend credits twice). Otherwise the
//! typed error ([`Error::Unauthorized`](crate::Error::Unauthorized) or
//! [`Error::TokenExpired`](crate::Error::TokenExpired)) reaches the caller.

use std::future::Future;
use std::pin::Pin;

use crate::{Result, Token};

/// A boxed future returned by [`TokenProvider`] methods.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token>> + Send + 'a>>;

/// Where the client gets its API token.
///
/// Implement it to plug in a secrets manager; the crate provides [`StaticToken`].
pub trait TokenProvider: Send + Sync + 'static {
    /// The token to use for the next request.
    fn token(&self) -> TokenFuture<'_>;

    /// Called once after the server rejected `rejected` with 401: return a newer
    /// token if there is one. The default asks [`token`](TokenProvider::token) again.
    fn refresh<'a>(&'a self, rejected: &'a Token) -> TokenFuture<'a> {
        let _ = rejected;
        self.token()
    }
}

/// A token that never changes.
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

/// The client's view of its provider: what `http.rs` asks for a token and for a
/// refresh after a 401.
pub(crate) struct TokenSource {
    provider: std::sync::Arc<dyn TokenProvider>,
}

impl TokenSource {
    pub(crate) fn new(provider: std::sync::Arc<dyn TokenProvider>) -> Self {
        TokenSource { provider }
    }

    /// The token for the next request.
    pub(crate) async fn current(&self) -> Result<Token> {
        self.provider.token().await
    }

    /// A token to retry with after `rejected` got a 401.
    pub(crate) async fn refresh_after_401(&self, rejected: &Token) -> Result<Token> {
        self.provider.refresh(rejected).await
    }
}
