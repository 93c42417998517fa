//! The answer of the token check: whether the server accepts the token.

use std::fmt;

/// The project id the check asks for. It cannot be a real project: the API's ids are
/// short opaque strings, and this one names the SDK.
pub(crate) const PROBE_PROJECT_ID: &str = "laracopilot-sdk-token-probe";

/// The answer of [`Client::verify_token`](crate::Client::verify_token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenCheck {
    /// The server accepted the token.
    Accepted,
    /// The token has expired: the server answered 401 "API token has expired.", or
    /// (`locally`) the token's [`TokenInfo`](super::TokenInfo) says so and nothing was
    /// sent.
    #[non_exhaustive]
    Expired {
        /// `true` when the SDK knew it and sent nothing.
        locally: bool,
    },
    /// The server rejected the token as invalid or revoked (401 "Unauthorized.").
    #[non_exhaustive]
    Unauthorized {
        /// The message of the error body, when the server gave one.
        message: Option<String>,
    },
}

impl TokenCheck {
    /// Whether the server accepted the token.
    pub fn is_accepted(&self) -> bool {
        matches!(self, TokenCheck::Accepted)
    }
}

impl fmt::Display for TokenCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenCheck::Accepted => "the API token is accepted",
            TokenCheck::Expired { .. } => "the API token has expired",
            TokenCheck::Unauthorized { .. } => "the API token is invalid or revoked",
        })
    }
}
