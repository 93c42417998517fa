//! The API token: a secret that never prints.

use std::fmt;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::{Error, Result};

/// A LaraCopilot team API token.
///
/// The value is kept in a [`secrecy`] box, zeroized when dropped, and never printed:
/// `Debug` shows only the dashboard's mask (the last four characters, see
/// [`Token::masked`]). The one place that exposes the value builds the
/// `Authorization` header, which is marked sensitive.
///
/// ```
/// let token = laracopilot::Token::new("lcp_0123456789abcdef")?;
/// assert_eq!(format!("{token:?}"), "Token(\"****cdef\")");
/// # Ok::<(), laracopilot::Error>(())
/// ```
#[derive(Clone)]
pub struct Token {
    secret: SecretString,
}

/// Tokens shorter than this are masked completely: showing four characters of a
/// short value would give away too much of it.
const MIN_LEN_FOR_VISIBLE_TAIL: usize = 12;

impl Token {
    /// Wraps a token value.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the value is empty, or contains whitespace or control
    /// characters (a copy-paste accident, such as a trailing newline). The message
    /// never repeats the value.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value: String = value.into();
        if value.is_empty() {
            return Err(Error::Config("the API token is empty".into()));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Config(
                "the API token contains whitespace or control characters".into(),
            ));
        }
        Ok(Token {
            secret: SecretString::from(value),
        })
    }

    /// The token as the dashboard shows it: `****` followed by the last four
    /// characters, or only `****` for a token shorter than 12 characters.
    pub fn masked(&self) -> String {
        let value = self.secret.expose_secret();
        if value.chars().count() < MIN_LEN_FOR_VISIBLE_TAIL {
            return "****".to_owned();
        }
        let tail_start = value.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
        format!("****{}", &value[tail_start..])
    }

    /// `Authorization: Bearer <token>`, marked sensitive so that HTTP layers never
    /// log it. This is the only place in the crate that exposes the secret.
    pub(crate) fn authorization(&self) -> HeaderValue {
        let mut value = HeaderValue::try_from(format!("Bearer {}", self.secret.expose_secret()))
            // Token::new admits only non-control, non-whitespace characters; the
            // header rejects only control characters, so this cannot fail.
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        value
    }

    /// Compares two tokens without exposing either.
    pub(crate) fn same_as(&self, other: &Token) -> bool {
        self.secret.expose_secret() == other.secret.expose_secret()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Token").field(&self.masked()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_whitespace_and_control_characters_without_echoing() {
        for bad in [
            "",
            "abc def-secret-value",
            "secret-value\n",
            "sec\u{7}ret-value",
        ] {
            let err = Token::new(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)));
            if !bad.is_empty() {
                assert!(!format!("{err} {err:?}").contains(bad.trim()));
            }
        }
    }

    #[test]
    fn masks_all_but_the_last_four_characters() {
        let token = Token::new("lcp_live_9f8e7d6c5b4a").unwrap();
        assert_eq!(token.masked(), "****5b4a");
        assert_eq!(Token::new("short").unwrap().masked(), "****");
        assert_eq!(Token::new("ééééééééééééé").unwrap().masked(), "****éééé");
    }

    #[test]
    fn authorization_header_is_sensitive() {
        let header = Token::new("lcp_live_9f8e7d6c5b4a").unwrap().authorization();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Bearer lcp_live_9f8e7d6c5b4a");
        assert!(!format!("{header:?}").contains("9f8e7d6c"));
    }
}
