//! Lenient reading of the API's JSON, shared by events and the status answer: a field
//! of an unexpected type is `None`, a key given twice takes its last value (as PHP and
//! JavaScript read it), a number out of range is not a number, an integer id keeps
//! its digits whatever its size.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::ProjectId;

/// A project id: a string, or an integer kept as its digits (of any size).
pub(crate) fn id(raw: &RawValue) -> Option<ProjectId> {
    let text = raw.get();
    if text.starts_with('"') {
        return serde_json::from_str::<Cow<'_, str>>(text)
            .ok()
            .map(|id| ProjectId::from(&*id));
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| ProjectId::from(text))
}

/// A string, or `None` for a value of any other type.
pub(crate) fn text(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// A finite number, or a string holding one (`"55%"` too); `None` otherwise.
pub(crate) fn number(raw: &RawValue) -> Option<f64> {
    let text = raw.get();
    let number = if text.starts_with('"') {
        let inner: Cow<'_, str> = serde_json::from_str(text).ok()?;
        inner
            .trim()
            .trim_end_matches('%')
            .trim()
            .parse::<f64>()
            .ok()?
    } else {
        // A JSON number; out of the f64 range it parses as infinite.
        text.parse::<f64>().ok()?
    };
    number.is_finite().then_some(number)
}

/// The values of the keys `K` of one JSON object, as raw JSON text; a key given
/// twice keeps its last value, other keys are skipped.
pub(crate) struct Fields<'a, const N: usize> {
    values: [Option<&'a RawValue>; N],
}

impl<'a, const N: usize> Fields<'a, N> {
    /// Reads `json`, which must be one JSON object.
    pub(crate) fn read(json: &'a str, keys: &[&str; N]) -> Result<Self, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let values = deserializer.deserialize_map(FieldsVisitor { keys })?;
        deserializer.end()?;
        Ok(Fields { values })
    }

    /// The raw value of key number `index` of the keys given to [`Fields::read`].
    pub(crate) fn get(&self, index: usize) -> Option<&'a RawValue> {
        self.values.get(index).copied().flatten()
    }
}

struct FieldsVisitor<'k, const N: usize> {
    keys: &'k [&'k str; N],
}

impl<'de, const N: usize> Visitor<'de> for FieldsVisitor<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = [None; N];
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.keys.iter().position(|k| *k == key) {
                Some(index) => {
                    let value = map.next_value::<&'de RawValue>()?;
                    if let Some(slot) = values.get_mut(index) {
                        *slot = Some(value);
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(values)
    }
}

/// A field of any JSON type, read in the same pass as its object: a string is kept,
/// anything else is noted and skipped, so an unexpected shape never fails the object.
pub(crate) enum Lenient {
    Text(String),
    Other,
}

impl Lenient {
    /// The value when it is a string.
    pub(crate) fn text(self) -> Option<String> {
        match self {
            Lenient::Text(text) => Some(text),
            Lenient::Other => None,
        }
    }
}

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                Ok(Lenient::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Lenient, E> {
                Ok(Lenient::Text(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn ids_are_strings_or_integers_of_any_size() {
        assert_eq!(id(&raw(r#""ab\u0063""#)), Some(ProjectId::from("abc")));
        assert_eq!(id(&raw("42")), Some(ProjectId::from("42")));
        let big = "123456789012345678901234567890";
        assert_eq!(id(&raw(big)), Some(ProjectId::from(big)));
        for other in ["1.5", "1e3", "true", "null", "[1]", "{}"] {
            assert_eq!(id(&raw(other)), None, "{other}");
        }
    }

    #[test]
    fn numbers_are_finite_or_none() {
        assert_eq!(number(&raw("40")), Some(40.0));
        assert_eq!(number(&raw(r#"" 55 % ""#)), Some(55.0));
        for other in ["1e999", "-1e999", r#""NaN""#, r#""inf""#, "true", "[]"] {
            assert_eq!(number(&raw(other)), None, "{other}");
        }
    }

    #[test]
    fn fields_keep_the_last_value_of_a_key_and_skip_the_rest() {
        let keys = ["a", "b"];
        let fields = Fields::read(r#"{"a":1,"x":[1e999],"a":"two","b":{"c":1}}"#, &keys).unwrap();
        assert_eq!(fields.get(0).map(RawValue::get), Some(r#""two""#));
        assert_eq!(fields.get(1).map(RawValue::get), Some(r#"{"c":1}"#));
        assert!(Fields::read("[1]", &keys).is_err());
        assert!(Fields::read(r#"{"a":1} trailing"#, &keys).is_err());
        assert_eq!(text(&raw("1")), None);
    }
}
