//! Where `doctor` and `watch-token` read the token: a file (`--token-file`, or
//! `LARACOPILOT_TOKEN_FILE`), read again whenever it changes, or the environment
//! (`LARACOPILOT_API_TOKEN`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use laracopilot::tokens::{EnvToken, FileToken, TokenProvider};

/// The variable naming a token file, when `--token-file` is not given.
pub const TOKEN_FILE_ENV: &str = "LARACOPILOT_TOKEN_FILE";

/// Where the token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file given with `--token-file`.
    FileFlag(PathBuf),
    /// A file named by `LARACOPILOT_TOKEN_FILE`.
    FileEnv(PathBuf),
    /// `LARACOPILOT_API_TOKEN`.
    Env,
}

impl Source {
    /// The token's source: `--token-file`, else `LARACOPILOT_TOKEN_FILE`, else
    /// `LARACOPILOT_API_TOKEN`; `None` when none is set.
    pub fn find(flag: Option<&PathBuf>) -> Option<Source> {
        if let Some(path) = flag {
            return Some(Source::FileFlag(path.clone()));
        }
        if let Some(path) = std::env::var_os(TOKEN_FILE_ENV).filter(|v| !v.is_empty()) {
            return Some(Source::FileEnv(PathBuf::from(path)));
        }
        std::env::var_os(laracopilot::TOKEN_ENV).map(|_| Source::Env)
    }

    /// The source's name in a report: `--token-file`, `LARACOPILOT_TOKEN_FILE`,
    /// `LARACOPILOT_API_TOKEN`.
    pub fn name(&self) -> &'static str {
        match self {
            Source::FileFlag(_) => "--token-file",
            Source::FileEnv(_) => TOKEN_FILE_ENV,
            Source::Env => laracopilot::TOKEN_ENV,
        }
    }

    /// The file, for a file source.
    pub fn file(&self) -> Option<&PathBuf> {
        match self {
            Source::FileFlag(path) | Source::FileEnv(path) => Some(path),
            Source::Env => None,
        }
    }

    /// A provider reading the token from this source now (and a file again whenever
    /// it changes).
    ///
    /// # Errors
    ///
    /// The SDK's `Error::Config` when the token cannot be read or is not valid (the
    /// message names the file or variable, never the value).
    pub fn provider(&self) -> laracopilot::Result<Arc<dyn TokenProvider>> {
        Ok(match self.file() {
            Some(path) => Arc::new(FileToken::new(path)?),
            None => Arc::new(EnvToken::new(laracopilot::TOKEN_ENV)?),
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.file() {
            Some(path) => write!(f, "{} {}", self.name(), path.display()),
            None => f.write_str(self.name()),
        }
    }
}
