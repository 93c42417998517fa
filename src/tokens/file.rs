//! A token read from a file, such as a mounted secret, and read again when it changes.

use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use zeroize::Zeroize;

use super::providers::in_context;
use super::{TokenFuture, TokenProvider};
use crate::{Error, Result, Token};

/// A token file larger than this is refused: it is not a token.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// A token read from a file (a Kubernetes or Docker secret, a file written by a
/// secrets agent), read again whenever the file changes.
///
/// Before each request the file's metadata is checked (modification time, length
/// and, on Unix, inode: an atomic replace by rename or symlink swap changes it); when
/// it changed, the file is read again. A refresh (after a 401, or when the token is
/// known to be expired) reads it again unconditionally, which also catches a rewrite
/// that kept the same length within the file system's timestamp granularity.
///
/// Leading and trailing whitespace is trimmed (secret files usually end with a
/// newline; a token never contains whitespace). The bytes read are zeroized once
/// copied into the token. Files are read with blocking calls of `std::fs`: a token
/// file is small and local, which makes that a matter of microseconds.
///
/// When the changed file cannot be read or does not hold a valid token (a writer
/// caught halfway), the last good token stays in use and the file is read again as
/// soon as it changes again (with the `tracing` feature, a warning says so, once per
/// bad version); a refresh reads it anyway and reports the error.
///
/// ```no_run
/// use laracopilot::tokens::FileToken;
/// let provider = FileToken::new("/run/secrets/laracopilot-token")?;
/// let client = laracopilot::Client::builder().token_provider(provider).build()?;
/// # Ok::<(), laracopilot::Error>(())
/// ```
pub struct FileToken {
    path: PathBuf,
    state: Mutex<Loaded>,
}

struct Loaded {
    token: Token,
    stamp: Stamp,
    /// Set when the changed file could not be used: the stamp it had then (`None`
    /// when even that failed). The file is read again only once it changes again,
    /// and the failure is logged once.
    rejected: Option<Option<Stamp>>,
}

/// What tells that the file changed without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileToken {
    /// Reads the token from `path` now, so that a missing or invalid file fails early.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the file cannot be read, is larger than 64 KiB, is not
    /// UTF-8, or does not hold a valid token (the message names the file, never its
    /// content).
    pub fn new(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let (token, stamp) = read(&path)?;
        Ok(FileToken {
            path,
            state: Mutex::new(Loaded {
                token,
                stamp,
                rejected: None,
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached token, after reading the file again if it changed.
    fn current(&self) -> Token {
        let mut loaded = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = stamp(&self.path).ok();
        if now.is_some() && (now == Some(loaded.stamp) || Some(now) == loaded.rejected) {
            return loaded.token.clone();
        }
        match read(&self.path) {
            Ok((token, stamp)) => {
                *loaded = Loaded {
                    token,
                    stamp,
                    rejected: None,
                };
            }
            Err(_error) => {
                // Keep the last good token until the file changes again.
                if loaded.rejected != Some(now) {
                    tracing::warn!(error = %_error, "keeping the last good API token");
                }
                loaded.rejected = Some(now);
            }
        }
        loaded.token.clone()
    }

    fn reload(&self) -> Result<Token> {
        let (token, stamp) = read(&self.path)?;
        let mut loaded = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *loaded = Loaded {
            token: token.clone(),
            stamp,
            rejected: None,
        };
        Ok(token)
    }
}

impl fmt::Debug for FileToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .token
            .clone();
        f.debug_struct("FileToken")
            .field("path", &self.path)
            .field("token", &token)
            .finish()
    }
}

impl TokenProvider for FileToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.current();
        Box::pin(async move { Ok(token) })
    }

    fn refresh<'a>(&'a self, _rejected: &'a Token) -> TokenFuture<'a> {
        let fresh = self.reload();
        Box::pin(async move { Ok(fresh?) })
    }
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// Reads and validates the token file; the stamp is taken before reading, so that a
/// change during the read shows on the next check.
fn read(path: &Path) -> Result<(Token, Stamp)> {
    let context = || format!("token file {}", path.display());
    let io_error = |e: std::io::Error| Error::config(format!("cannot read {}: {e}", context()));
    let stamp = stamp(path).map_err(io_error)?;
    if stamp.len > MAX_FILE_LEN {
        return Err(Error::config(format!(
            "{} is larger than {MAX_FILE_LEN} bytes",
            context()
        )));
    }
    // Room for the whole file up front: the buffer never grows, so no reallocation
    // leaves a copy of the secret behind.
    let mut bytes = Vec::with_capacity(MAX_FILE_LEN as usize + 1);
    let read = File::open(path)
        .and_then(|file| file.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes))
        .map_err(io_error);
    let token = read.and_then(|_| {
        if bytes.len() as u64 > MAX_FILE_LEN {
            return Err(Error::config(format!(
                "{} is larger than {MAX_FILE_LEN} bytes",
                context()
            )));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::config(format!("{} is not valid UTF-8", context())))?;
        Token::from_str_checked(text.trim()).map_err(|e| in_context(&context(), e))
    });
    bytes.zeroize();
    Ok((token?, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_file_is_refused_without_echoing_it() {
        let dir =
            std::env::temp_dir().join(format!("laracopilot-filetoken-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("large");
        fs::write(&path, "x".repeat(MAX_FILE_LEN as usize + 1)).unwrap();
        let err = FileToken::new(&path).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("larger than"), "{shown}");
        assert!(!shown.contains("xxxx"), "{shown}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
