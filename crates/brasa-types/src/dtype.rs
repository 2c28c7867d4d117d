use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Element type of a tensor at brasa's boundary (JS, HTTP, files).
///
/// Names are ONNX Runtime Web's (`float32`, `int64`, …); [`DType::kserve`] gives the Open
/// Inference Protocol's (`FP32`, `INT64`, …). Inside a model, floats are the backend's float
/// (f32) and integers the backend's int: `float16` data is converted at the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE 754 binary32.
    Float32,
    /// IEEE 754 binary16; JS carries it as the bits in a `Uint16Array` (as onnxruntime-web
    /// does). Accepted and converted to the model's float.
    Float16,
    /// Signed 64-bit integers (`BigInt64Array` in JS): token ids, indices, ONNX's int.
    Int64,
    /// Signed 32-bit integers.
    Int32,
    /// Unsigned bytes: 8-bit images, raw data.
    Uint8,
    /// Booleans (`Uint8Array` of 0/1 in JS, JSON `true`/`false` over KServe).
    Bool,
    /// UTF-8 strings, one per element (an `Array` of strings in JS; KServe's `BYTES`, ONNX's
    /// `string`, Triton's `TYPE_STRING`). No burn tensor holds them: a model receives strings
    /// only through an input it declares `string` (read with `Inputs::take_host`); what
    /// serves text declares them (the KServe endpoint's `text` input, tokenised in JS).
    String,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 7] = [
        DType::Float32,
        DType::Float16,
        DType::Int64,
        DType::Int32,
        DType::Uint8,
        DType::Bool,
        DType::String,
    ];

    /// The name JS and `model.json` use.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float16 => "float16",
            DType::Int64 => "int64",
            DType::Int32 => "int32",
            DType::Uint8 => "uint8",
            DType::Bool => "bool",
            DType::String => "string",
        }
    }

    /// The Open Inference Protocol (KServe v2) datatype.
    pub fn kserve(self) -> &'static str {
        match self {
            DType::Float32 => "FP32",
            DType::Float16 => "FP16",
            DType::Int64 => "INT64",
            DType::Int32 => "INT32",
            DType::Uint8 => "UINT8",
            DType::Bool => "BOOL",
            DType::String => "BYTES",
        }
    }

    /// Triton's model-configuration data type (`DataType` in its `model_config.proto`,
    /// what `GET /v2/models/{name}/config` states): `TYPE_` and the KServe name (strings:
    /// `TYPE_STRING`, Triton's name for `BYTES`).
    pub fn triton(self) -> &'static str {
        match self {
            DType::Float32 => "TYPE_FP32",
            DType::Float16 => "TYPE_FP16",
            DType::Int64 => "TYPE_INT64",
            DType::Int32 => "TYPE_INT32",
            DType::Uint8 => "TYPE_UINT8",
            DType::Bool => "TYPE_BOOL",
            DType::String => "TYPE_STRING",
        }
    }

    /// The dtype of a KServe datatype name, if brasa has one.
    pub fn from_kserve(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.kserve() == name)
    }

    /// The JS typed array that carries it.
    pub fn typed_array(self) -> &'static str {
        match self {
            DType::Float32 => "Float32Array",
            DType::Float16 => "Uint16Array",
            DType::Int64 => "BigInt64Array",
            DType::Int32 => "Int32Array",
            DType::Uint8 | DType::Bool => "Uint8Array",
            DType::String => "string[]",
        }
    }

    /// Bytes per element in the KServe binary extension and in typed arrays; 0 for
    /// `string`, whose elements vary (in KServe's binary `BYTES` layout each is a 4-byte
    /// little-endian length and its UTF-8 bytes: see [`crate::Values::to_le_bytes`]).
    pub fn byte_size(self) -> usize {
        match self {
            DType::Float32 | DType::Int32 => 4,
            DType::Float16 => 2,
            DType::Int64 => 8,
            DType::Uint8 | DType::Bool => 1,
            DType::String => 0,
        }
    }

    /// `float32` or `float16`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::Float32 | DType::Float16)
    }

    /// Whether data of dtype `given` is accepted for a tensor declared `self`: the same
    /// dtype, or the other float width (converted).
    pub fn accepts(self, given: DType) -> bool {
        self == given || (self.is_float() && given.is_float())
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        DType::ALL.into_iter().find(|d| d.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = DType::ALL.iter().map(|d| d.as_str()).collect();
            format!("unknown dtype `{s}`; brasa knows {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.as_str().parse::<DType>(), Ok(d));
            assert_eq!(DType::from_kserve(d.kserve()), Some(d));
            if d != DType::String {
                assert_eq!(d.triton(), format!("TYPE_{}", d.kserve()));
            }
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        }
        assert!("float64".parse::<DType>().unwrap_err().contains("float32"));
        assert_eq!(DType::from_kserve("FP64"), None);
        assert_eq!(DType::from_kserve("BYTES"), Some(DType::String));
        assert_eq!(DType::String.triton(), "TYPE_STRING");
    }

    #[test]
    fn floats_accept_each_other_only() {
        assert!(DType::Float32.accepts(DType::Float16));
        assert!(DType::Float16.accepts(DType::Float32));
        assert!(!DType::Float32.accepts(DType::Int32));
        assert!(!DType::Int64.accepts(DType::Int32));
        assert!(!DType::String.accepts(DType::Uint8) && !DType::Uint8.accepts(DType::String));
    }
}
