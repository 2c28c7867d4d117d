use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// One dimension of a [`crate::TensorSpec`].
///
/// JSON (`model.json`, manifests): a number for a fixed size, `"batch"` for the batch
/// dimension, any other string for a named dynamic dimension, or
/// `{ "name": "height", "min": 32, "max": 4096 }` for a bounded one. Dimensions of one
/// name must agree across every tensor of a call (`seq` of `input_ids` and
/// `attention_mask`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// Always this size.
    Fixed(usize),
    /// The batch: the same size in every tensor that has it, bounded by the session's
    /// [`crate::Limits::max_batch`]. Usually the first axis; a recurrent state may hold it
    /// elsewhere (`[layers, batch, hidden]`). Servers concatenate concurrent requests along it
    /// only when it is the first axis of every tensor.
    Batch,
    /// Any size within `[min, max]` (inclusive; unbounded where `None`), the same for every
    /// tensor that names it.
    Dynamic {
        /// Its name (`seq`, `height`).
        name: String,
        /// Smallest size accepted.
        min: Option<usize>,
        /// Largest size accepted.
        max: Option<usize>,
    },
}

impl Dim {
    /// A dynamic dimension without bounds.
    pub fn dynamic(name: impl Into<String>) -> Dim {
        Dim::Dynamic { name: name.into(), min: None, max: None }
    }

    /// A dynamic dimension within `[min, max]`.
    pub fn bounded(name: impl Into<String>, min: usize, max: usize) -> Dim {
        Dim::Dynamic { name: name.into(), min: Some(min), max: Some(max) }
    }

    /// The fixed size, if any.
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(*n),
            _ => None,
        }
    }

    /// The name of a batch or dynamic dimension.
    pub fn name(&self) -> Option<&str> {
        match self {
            Dim::Fixed(_) => None,
            Dim::Batch => Some("batch"),
            Dim::Dynamic { name, .. } => Some(name),
        }
    }

    /// KServe's shape entry: the size, or -1 where it varies.
    pub fn kserve(&self) -> i64 {
        self.fixed().map_or(-1, |n| n as i64)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Batch => f.write_str("batch"),
            Dim::Dynamic { name, min: None, max: None } => f.write_str(name),
            Dim::Dynamic { name, min, max } => write!(
                f,
                "{name} in [{}, {}]",
                min.map_or("0".into(), |m| m.to_string()),
                max.map_or("∞".into(), |m| m.to_string())
            ),
        }
    }
}

impl Serialize for Dim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dim::Fixed(n) => s.serialize_u64(*n as u64),
            Dim::Batch => s.serialize_str("batch"),
            Dim::Dynamic { name, min: None, max: None } => s.serialize_str(name),
            Dim::Dynamic { name, min, max } => {
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("name", name)?;
                if let Some(min) = min {
                    map.serialize_entry("min", min)?;
                }
                if let Some(max) = max {
                    map.serialize_entry("max", max)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Dim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dim, D::Error> {
        struct DimVisitor;
        impl<'de> Visitor<'de> for DimVisitor {
            type Value = Dim;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size, \"batch\", a dimension name, or { name, min?, max? }")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dim, E> {
                usize::try_from(v).map(Dim::Fixed).map_err(|_| E::custom("dimension too large"))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dim, E> {
                u64::try_from(v)
                    .map_err(|_| {
                        E::custom(format!("dimension {v} is negative; use a name for a dynamic one"))
                    })
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dim, E> {
                match v {
                    "batch" => Ok(Dim::Batch),
                    "" => Err(E::custom("a dimension name cannot be empty")),
                    name => Ok(Dim::dynamic(name)),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dim, A::Error> {
                let (mut name, mut min, mut max) = (None::<String>, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "min" => min = Some(map.next_value::<usize>()?),
                        "max" => max = Some(map.next_value::<usize>()?),
                        other => return Err(de::Error::unknown_field(other, &["name", "min", "max"])),
                    }
                }
                let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
                if name.is_empty() || name == "batch" {
                    return Err(de::Error::custom("a bounded dimension needs a name other than `batch`"));
                }
                if let (Some(lo), Some(hi)) = (min, max)
                    && lo > hi
                {
                    return Err(de::Error::custom(format!("dimension `{name}`: min {lo} > max {hi}")));
                }
                Ok(Dim::Dynamic { name, min, max })
            }
        }
        d.deserialize_any(DimVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms_round_trip() {
        for (text, dim) in [
            ("28", Dim::Fixed(28)),
            ("\"batch\"", Dim::Batch),
            ("\"seq\"", Dim::dynamic("seq")),
            (r#"{"name":"height","min":32,"max":4096}"#, Dim::bounded("height", 32, 4096)),
        ] {
            assert_eq!(serde_json::from_str::<Dim>(text).unwrap(), dim, "{text}");
            assert_eq!(serde_json::to_string(&dim).unwrap(), text);
        }
    }

    #[test]
    fn refuses_nonsense() {
        for text in [
            "-1",
            "\"\"",
            r#"{"name":"h","min":5,"max":4}"#,
            r#"{"min":1}"#,
            r#"{"name":"h","step":2}"#,
            "1.5",
        ] {
            assert!(serde_json::from_str::<Dim>(text).is_err(), "{text}");
        }
    }
}
