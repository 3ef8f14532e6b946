//! One field of a JSON record, found without building the document: the key a record is
//! partitioned by (`key_by: {field: …}`), read on every record of a keyed edge. The
//! parser walks the text, skips every member off the field's path, and keeps only the
//! scalar it is looking for.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::partition::KeyError;

/// Field `path` of a parsed JSON document: the member of that name, or else, when the
/// name has dots (`bid.auction`), the member path they separate.
pub fn json_path<'a>(doc: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    doc.get(path).or_else(|| {
        if !path.contains('.') {
            return None;
        }
        path.split('.').try_fold(doc, |v, name| v.get(name))
    })
}

/// What was found at the end of the path.
enum Found {
    /// A string's text, or another scalar's JSON.
    Scalar(Vec<u8>),
    /// `null`.
    Null,
    /// An object or an array.
    Composite,
}

/// The key bytes of JSON field `field` of `value` (a dotted path reaches into objects,
/// see [`json_path`]): a string's text, or another scalar's JSON.
pub fn field_key(value: &[u8], field: &str) -> Result<Vec<u8>, KeyError> {
    let mut de = serde_json::Deserializer::from_slice(value);
    let found = Lookup { path: field }.deserialize(&mut de).map_err(|e| KeyError::NotJson(e.to_string()))?;
    de.end().map_err(|e| KeyError::NotJson(e.to_string()))?;
    match found {
        Some(Found::Scalar(k)) => Ok(k),
        Some(Found::Null) | None => Err(KeyError::Missing),
        Some(Found::Composite) => Err(KeyError::NotScalar),
    }
}

/// Looks for `path` in the value it is given: the member named `path` itself, else the
/// first dot-separated part, then the rest inside it.
struct Lookup<'p> {
    path: &'p str,
}

impl<'de> DeserializeSeed<'de> for Lookup<'_> {
    type Value = Option<Found>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lookup<'_> {
    type Value = Option<Found>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object with field '{}'", self.path)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let head = self.path.split_once('.');
        let (mut exact, mut nested) = (None, None);
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name == self.path {
                exact = Some(map.next_value_seed(Take)?);
            } else if let Some((first, rest)) = head
                && name == first
                && nested.is_none()
            {
                nested = map.next_value_seed(Lookup { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        // A member named with the dots wins over the path, as in `json_path`.
        Ok(exact.or(nested))
    }

    // Anything but an object has no fields.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Takes the value at the end of the path.
struct Take;

impl<'de> DeserializeSeed<'de> for Take {
    type Value = Found;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Take {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Found, E> {
        Ok(Found::Scalar(if v { b"true".to_vec() } else { b"false".to_vec() }))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Found, E> {
        Ok(Found::Scalar(v.to_string().into_bytes()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Found, E> {
        Ok(Found::Scalar(v.to_string().into_bytes()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Found, E> {
        // As a parsed document would print it.
        Ok(Found::Scalar(serde_json::Value::from(v).to_string().into_bytes()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Found, E> {
        Ok(Found::Scalar(v.as_bytes().to_vec()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Found, E> {
        Ok(Found::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Found::Composite)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Found::Composite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streaming lookup agrees with looking in the parsed document.
    fn via_document(value: &[u8], field: &str) -> Result<Vec<u8>, KeyError> {
        let doc: serde_json::Value = serde_json::from_slice(value).map_err(|e| KeyError::NotJson(e.to_string()))?;
        match json_path(&doc, field) {
            Some(serde_json::Value::String(s)) => Ok(s.as_bytes().to_vec()),
            Some(serde_json::Value::Null) | None => Err(KeyError::Missing),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string().into_bytes()),
            Some(_) => Err(KeyError::NotScalar),
        }
    }

    #[test]
    fn streaming_lookup_matches_the_document() {
        let docs: [&[u8]; 8] = [
            br#"{"a":"x","b":3,"c":{"d":[1,2],"e":-4.5,"f":null,"g":true}}"#,
            br#"{"bid":{"auction":1007,"price":3},"ts":5}"#,
            br#"{"a.b":1,"a":{"b":2}}"#,
            br#"{"a":{"b":2},"a.b":1}"#,
            br#"{"s":"with \"quotes\" and \u00e9"}"#,
            br#"[1,2]"#,
            br#"{"a":{"b":{"c":"deep"}}}"#,
            br#"{"k":18446744073709551615,"n":-9223372036854775808,"z":1.5e300}"#,
        ];
        let fields = ["a", "b", "c", "c.d", "c.e", "c.f", "c.g", "c.x", "bid.auction", "ts", "a.b", "s", "a.b.c", "k", "n", "z", "missing"];
        for d in docs {
            for f in fields {
                let want = via_document(d, f);
                let got = field_key(d, f);
                match (&want, &got) {
                    (Err(KeyError::NotJson(_)), Err(KeyError::NotJson(_))) => {}
                    _ => assert_eq!(got, want, "{} / {f}", String::from_utf8_lossy(d)),
                }
            }
        }
        assert!(matches!(field_key(b"{oops", "a"), Err(KeyError::NotJson(_))));
        assert!(matches!(field_key(br#"{"a":1} trailing"#, "a"), Err(KeyError::NotJson(_))));
    }
}
