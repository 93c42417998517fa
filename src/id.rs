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
/// let id = laracopilot::ProjectId::from("abc123");
/// assert_eq!(id.as_str(), "abc123");
/// assert_eq!(id.to_string(), "abc123");
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

impl PartialEq<str> for ProjectId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ProjectId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

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
        let random = crate::retry::random_u64();
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
