//! The ids: a project's (opaque text from the API, used by every layer of the crate)
//! and a journal entry's (made by the client).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The id of a LaraCopilot project (`"abc123"`).
///
/// Opaque: the API gives it as a string, and a JSON number is accepted too (kept as
/// its decimal text). Cloning is cheap.
///
/// ```
/// use std::collections::HashMap;
/// use laracopilot::ProjectId;
///
/// let id: ProjectId = "abc123".parse().unwrap();
/// assert_eq!(id.as_str(), "abc123");
/// assert_eq!(id, "abc123");
/// assert_eq!(String::from("abc123"), id);
/// let mut apps = HashMap::new();
/// apps.insert(id, "https://abc123.laracopilot.com");
/// assert!(apps.contains_key("abc123"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(Arc<str>);

impl ProjectId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ProjectId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ProjectId {
    fn from(value: &str) -> Self {
        ProjectId(value.into())
    }
}

impl From<String> for ProjectId {
    fn from(value: String) -> Self {
        ProjectId(value.into())
    }
}

impl From<&ProjectId> for ProjectId {
    fn from(value: &ProjectId) -> Self {
        value.clone()
    }
}

impl From<&String> for ProjectId {
    fn from(value: &String) -> Self {
        ProjectId(value.as_str().into())
    }
}

impl std::borrow::Borrow<str> for ProjectId {
    /// A `HashMap<ProjectId, _>` can be looked up with a `&str`.
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ProjectId {
    type Err = std::convert::Infallible;

    /// Any text is an id (the API's are opaque); the calls refuse, before sending,
    /// ids that could address another endpoint.
    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Ok(ProjectId::from(id))
    }
}

/// `ProjectId == str`, `== &str`, `== String`, and the other way round.
macro_rules! eq_text {
    ($($text:ty),*) => {$(
        impl PartialEq<$text> for ProjectId {
            fn eq(&self, other: &$text) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }

        impl PartialEq<ProjectId> for $text {
            fn eq(&self, other: &ProjectId) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}

eq_text!(str, &str, String);

impl Serialize for ProjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = ProjectId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a project id (string or integer)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProjectId, E> {
                Ok(ProjectId::from(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ProjectId, E> {
                Ok(ProjectId::from(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ProjectId, E> {
                Ok(ProjectId::from(v.to_string()))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// The id the client gives each generation in its journal: unique across restarts
/// (time, process, counter, randomness).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalId(Arc<str>);

impl Serialize for LocalId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LocalId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(LocalId(id.as_ref().into()))
    }
}

impl LocalId {
    /// A new id, `lcj-` followed by hex digits.
    pub(crate) fn new() -> LocalId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let random = crate::random::u64();
        LocalId(
            format!(
                "lcj-{millis:x}-{:x}-{count:x}-{:08x}",
                std::process::id(),
                random & 0xffff_ffff
            )
            .into(),
        )
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LocalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for LocalId {
    fn from(id: &str) -> Self {
        LocalId(id.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_id_accepts_a_string_or_a_number() {
        let from_str: ProjectId = serde_json::from_str("\"abc123\"").unwrap();
        let from_num: ProjectId = serde_json::from_str("42").unwrap();
        assert_eq!(from_str, "abc123");
        assert_eq!(from_num, "42");
        assert!(serde_json::from_str::<ProjectId>("{}").is_err());
    }
}
