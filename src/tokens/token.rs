//! The API token: a secret that never prints.

use std::fmt;
use std::sync::{Arc, OnceLock};

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use zeroize::Zeroize;

use super::info::TokenInfo;
use crate::redact::Redactor;
use crate::{Error, Result};

/// A LaraCopilot team API token.
///
/// The value is kept in a [`secrecy`] box and never printed: `Debug` shows only the
/// dashboard's mask (the last four characters, see [`Token::masked`]), and the crate
/// exposes the value in exactly one place, the `Authorization` header, which is
/// marked sensitive. The memory holding the value is overwritten with zeros when the
/// last clone of the token is dropped (secrecy's `SecretString` zeroizes on drop), and
/// [`Token::new`] zeroizes the `String` it was given, as do the providers of
/// [`tokens`](crate::tokens) with what they read from files and the environment. The
/// header value handed to the HTTP stack for each request is that stack's copy, and
/// is not zeroized.
///
/// A token may carry what the dashboard says about it ([`TokenInfo`]: name, created
/// date, expiry). A client whose token is then known to be expired fails with
/// [`Error::TokenExpired`] without sending anything, and can warn before that (see
/// [`ClientBuilder::on_token_expiring`](crate::ClientBuilder::on_token_expiring)).
///
/// ```
/// let token = laracopilot::Token::new("lcp_0123456789abcdef")?;
/// assert_eq!(format!("{token:?}"), "Token(\"****cdef\")");
/// # Ok::<(), laracopilot::Error>(())
/// ```
#[derive(Clone)]
pub struct Token {
    /// Shared by clones: one copy of the value in memory, zeroized when the last
    /// clone goes.
    secret: Arc<Secret>,
    info: Option<Arc<TokenInfo>>,
}

/// The value, and the redactor that finds it in text (built on first use).
struct Secret {
    value: SecretString,
    redactor: OnceLock<Redactor>,
}

/// Tokens shorter than this are masked completely: showing four characters of a
/// short value would give away too much of it.
const MIN_LEN_FOR_VISIBLE_TAIL: usize = 12;

impl Token {
    /// Wraps a token value. The `String` passed in is zeroized, accepted or not.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the value is empty, or contains whitespace, control or
    /// invisible format characters (the Unicode `Cf` category: zero-width spaces and
    /// joiners, bidirectional marks, the byte order mark, soft hyphens, ...), which
    /// only a copy-paste accident puts into a token. The message never repeats the
    /// value.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let mut value: String = value.into();
        let token = Token::from_str_checked(&value);
        value.zeroize();
        token
    }

    /// Validates `value` and copies it into a new secret, leaving the caller's buffer
    /// to the caller (who zeroizes it). The secret is allocated at its exact size, so
    /// no reallocation leaves a stray copy behind.
    pub(crate) fn from_str_checked(value: &str) -> Result<Self> {
        if value.is_empty() {
            return Err(Error::config("the API token is empty"));
        }
        if value.chars().any(is_forbidden) {
            return Err(Error::config(
                "the API token contains whitespace, control or invisible characters",
            ));
        }
        Ok(Token {
            secret: Arc::new(Secret {
                value: SecretString::from(Box::<str>::from(value)),
                redactor: OnceLock::new(),
            }),
            info: None,
        })
    }

    /// Attaches what the dashboard shows about this token (name, created date,
    /// expiry), so that the client can refuse it locally once expired and warn before.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use laracopilot::tokens::{Expiration, TokenInfo};
    ///
    /// let info = TokenInfo::new("CI Pipeline", SystemTime::now(), Expiration::Days30);
    /// let token = laracopilot::Token::new("lcp_0123456789abcdef")?.with_info(info);
    /// assert_eq!(token.info().map(|i| i.name()), Some("CI Pipeline"));
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    pub fn with_info(mut self, info: TokenInfo) -> Self {
        self.info = Some(Arc::new(info));
        self
    }

    /// What is known about this token, if [`with_info`](Token::with_info) was used.
    pub fn info(&self) -> Option<&TokenInfo> {
        self.info.as_deref()
    }

    /// The token as the dashboard shows it: `****` followed by the last four
    /// characters, or only `****` for a token shorter than 12 characters.
    pub fn masked(&self) -> String {
        let value = self.secret.value.expose_secret();
        if value.chars().count() < MIN_LEN_FOR_VISIBLE_TAIL {
            return "****".to_owned();
        }
        let tail_start = value.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
        format!("****{}", &value[tail_start..])
    }

    /// `Authorization: Bearer <token>`, marked sensitive so that HTTP layers never
    /// log it. This is the only place in the crate that exposes the secret.
    pub(crate) fn authorization(&self) -> HeaderValue {
        let mut header = format!("Bearer {}", self.secret.value.expose_secret());
        let mut value = HeaderValue::from_str(&header)
            // Token::new admits only non-control, non-whitespace characters; the
            // header rejects only control characters, so this cannot fail.
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        header.zeroize();
        value.set_sensitive(true);
        value
    }

    /// Masks every spelling of the secret in `text` that the SDK promises to mask
    /// (see [`crate::redact`]): a text that came from the server (an error body that
    /// echoes the request's headers, say) before it is kept anywhere.
    pub(crate) fn redact(&self, text: &mut String) {
        self.redactor().redact(text);
    }

    /// The redactor of this token, made on first use and shared by its clones.
    pub(crate) fn redactor(&self) -> &Redactor {
        self.secret.redactor.get_or_init(|| {
            // The header is the one place where the crate exposes the token; the
            // redactor needs its value to find it, and keeps it only in zeroized
            // buffers.
            let header = self.authorization();
            let value = header.as_bytes();
            let value = value.strip_prefix(b"Bearer ").unwrap_or(value);
            Redactor::new(value, self.masked())
        })
    }

    /// Compares two token values without exposing either.
    pub(crate) fn same_as(&self, other: &Token) -> bool {
        self.secret.value.expose_secret() == other.secret.value.expose_secret()
    }
}

/// Characters that cannot be part of a token: whitespace, control characters and the
/// invisible format characters that copy-paste brings along (Unicode category `Cf`).
fn is_forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c.general_category() == GeneralCategory::Format
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tuple = f.debug_tuple("Token");
        tuple.field(&self.masked());
        if let Some(info) = &self.info {
            tuple.field(info);
        }
        tuple.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Expiration;

    #[test]
    fn rejects_empty_whitespace_control_and_invisible_characters_without_echoing() {
        for bad in [
            "",
            "abc def-secret-value",
            "secret-value\n",
            "sec\u{7}ret-value",
            "secret\u{200B}value",
            "\u{FEFF}secret-value",
            // Format characters that no hand-written list had: a soft hyphen, a
            // left-to-right mark, a bidirectional isolate, an Arabic number sign, the
            // Mongolian vowel separator, a tag character.
            "secret\u{AD}value",
            "secret\u{200E}value",
            "secret\u{2066}value",
            "secret\u{600}value",
            "secret\u{180E}value",
            "secret\u{E0041}value",
            "secret\u{2028}value",
        ] {
            let err = Token::new(bad).unwrap_err();
            assert!(matches!(err, Error::Config { .. }));
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn masks_all_but_the_last_four_characters() {
        let token = Token::new("lcp_live_9f8e7d6c5b4a").unwrap();
        assert_eq!(token.masked(), "****5b4a");
        assert_eq!(Token::new("short").unwrap().masked(), "****");
        assert_eq!(Token::new("elevenchars").unwrap().masked(), "****");
        assert_eq!(Token::new("twelve_chars").unwrap().masked(), "****hars");
        assert_eq!(Token::new("ééééééééééééé").unwrap().masked(), "****éééé");
    }

    #[test]
    fn authorization_header_is_sensitive() {
        let header = Token::new("lcp_live_9f8e7d6c5b4a").unwrap().authorization();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Bearer lcp_live_9f8e7d6c5b4a");
        assert!(!format!("{header:?}").contains("9f8e7d6c"));
    }

    #[test]
    fn debug_shows_the_mask_and_the_info_but_never_the_value() {
        let info = TokenInfo::new(
            "Production",
            std::time::SystemTime::UNIX_EPOCH,
            Expiration::Days30,
        );
        let token = Token::new("lcp_live_9f8e7d6c5b4a").unwrap().with_info(info);
        let shown = format!("{token:?}");
        assert!(
            shown.starts_with("Token(\"****5b4a\", TokenInfo {"),
            "{shown}"
        );
        assert!(shown.contains("Production"), "{shown}");
        assert!(!shown.contains("9f8e7d6c"), "{shown}");
    }

    #[test]
    fn redaction_finds_the_secret_however_json_escapes_spell_it() {
        let token = Token::new("lcp/live_9f8e\"7d6c5b4a").unwrap();
        let mask = token.masked();
        for (text, want) in [
            ("got lcp/live_9f8e\"7d6c5b4a!", format!("got {mask}!")),
            (
                r#"{"m":"Bearer lcp\/live_9f8e\"7d6c5b4a"}"#,
                format!(r#"{{"m":"Bearer {mask}"}}"#),
            ),
            (r#"lcp\u002flive_\u0039f8e\u00227d6c5b4a"#, mask.clone()),
            // Both spellings in one text; a double backslash is a backslash, not an
            // escape of the slash, so that last one is not the token.
            (
                r#"x lcp/live_9f8e"7d6c5b4a y lcp\/live_9f8e\"7d6c5b4a z lcp\\/live"#,
                format!(r#"x {mask} y {mask} z lcp\\/live"#),
            ),
            (
                r#"nothing \n here \u12"#,
                r#"nothing \n here \u12"#.to_owned(),
            ),
        ] {
            let mut redacted = text.to_owned();
            token.redact(&mut redacted);
            assert_eq!(redacted, want, "{text}");
        }
        let emoji = Token::new("lcp_😀_0123456789").unwrap();
        let mut text = r#"x lcp_\ud83d\ude00_0123456789 y"#.to_owned();
        emoji.redact(&mut text);
        assert_eq!(text, format!("x {} y", emoji.masked()));
    }

    #[test]
    fn same_as_compares_values_not_metadata() {
        let a = Token::new("lcp_live_9f8e7d6c5b4a").unwrap();
        let b = a.clone().with_info(TokenInfo::new(
            "x",
            std::time::SystemTime::UNIX_EPOCH,
            Expiration::Never,
        ));
        assert!(a.same_as(&b));
        assert!(!a.same_as(&Token::new("lcp_live_9f8e7d6c5b4b").unwrap()));
    }
}
