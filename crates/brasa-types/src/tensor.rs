use std::collections::BTreeMap;

use half::f16;

use crate::dtype::DType;

/// The elements of a host tensor, row-major, in their dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// `float32`.
    Float32(Vec<f32>),
    /// `float16`, as IEEE binary16 bit patterns (JS carries them in a `Uint16Array`).
    Float16(Vec<u16>),
    /// `int64`.
    Int64(Vec<i64>),
    /// `int32`.
    Int32(Vec<i32>),
    /// `uint8`.
    Uint8(Vec<u8>),
    /// `bool`.
    Bool(Vec<bool>),
    /// `string`: UTF-8 text, one string per element.
    String(Vec<String>),
}

/// Why bytes are not a `BYTES` tensor in KServe's binary layout (each element a 4-byte
/// little-endian length, then that many bytes), naming the element at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BytesError {
    /// Fewer than 4 bytes left where element `index`'s length should start.
    #[error(
        "element {index}'s 4-byte length prefix starts at byte {offset}, but only {remaining} bytes remain"
    )]
    TruncatedPrefix {
        /// The element.
        index: usize,
        /// Where its prefix starts.
        offset: usize,
        /// Bytes left there.
        remaining: usize,
    },
    /// A length prefix that runs past the end of the data.
    #[error(
        "element {index} says it is {length} bytes long, but only {remaining} bytes follow its length prefix"
    )]
    PastEnd {
        /// The element.
        index: usize,
        /// Its stated length.
        length: usize,
        /// Bytes left after its prefix.
        remaining: usize,
    },
    /// An element that is not valid UTF-8.
    #[error("element {index} is not valid UTF-8 (byte {at} of it)")]
    NotUtf8 {
        /// The element.
        index: usize,
        /// The first invalid byte, counted from the element's start.
        at: usize,
    },
}

/// Decode KServe's binary `BYTES` layout into strings: the one definition of it (the KServe
/// layer's binary requests use it). Every element must be UTF-8 text.
pub fn strings_from_bytes(mut bytes: &[u8]) -> Result<Vec<String>, BytesError> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while !bytes.is_empty() {
        let index = out.len();
        let Some((prefix, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(BytesError::TruncatedPrefix { index, offset, remaining: bytes.len() });
        };
        let length = u32::from_le_bytes(*prefix) as usize;
        let Some((text, rest)) = rest.split_at_checked(length) else {
            return Err(BytesError::PastEnd { index, length, remaining: rest.len() });
        };
        let text =
            std::str::from_utf8(text).map_err(|e| BytesError::NotUtf8 { index, at: e.valid_up_to() })?;
        out.push(text.to_owned());
        offset += 4 + length;
        bytes = rest;
    }
    Ok(out)
}

impl Values {
    /// The dtype.
    pub fn dtype(&self) -> DType {
        match self {
            Values::Float32(_) => DType::Float32,
            Values::Float16(_) => DType::Float16,
            Values::Int64(_) => DType::Int64,
            Values::Int32(_) => DType::Int32,
            Values::Uint8(_) => DType::Uint8,
            Values::Bool(_) => DType::Bool,
            Values::String(_) => DType::String,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::Float32(v) => v.len(),
            Values::Float16(v) => v.len(),
            Values::Int64(v) => v.len(),
            Values::Int32(v) => v.len(),
            Values::Uint8(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::String(v) => v.len(),
        }
    }

    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f32 (floats exactly, integers rounded where beyond 2^24, booleans
    /// as 0/1, strings that are no number NaN): what a model's float input receives.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Values::Float32(v) => v.clone(),
            Values::Float16(v) => v.iter().map(|&b| f16::from_bits(b).to_f32()).collect(),
            Values::Int64(v) => v.iter().map(|&x| x as f32).collect(),
            Values::Int32(v) => v.iter().map(|&x| x as f32).collect(),
            Values::Uint8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            Values::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
            Values::String(v) => v.iter().map(|s| s.trim().parse().unwrap_or(f32::NAN)).collect(),
        }
    }

    /// The elements as i64 (floats truncated toward zero; strings that are no integer 0).
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            Values::Float32(v) => v.iter().map(|&x| x as i64).collect(),
            Values::Float16(v) => v.iter().map(|&b| f16::from_bits(b).to_f32() as i64).collect(),
            Values::Int64(v) => v.clone(),
            Values::Int32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Values::Uint8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Values::Bool(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Values::String(v) => v.iter().map(|s| s.trim().parse().unwrap_or(0)).collect(),
        }
    }

    /// The elements as booleans (non-zero is true).
    pub fn to_bool(&self) -> Vec<bool> {
        match self {
            Values::Bool(v) => v.clone(),
            other => other.to_f32().into_iter().map(|x| x != 0.0).collect(),
        }
    }

    /// These values converted to `dtype` (floats narrowed or widened, integers cast as
    /// Rust's `as` does; numbers to strings as Rust writes them): how fetches reach the dtype
    /// their spec declares.
    pub fn cast(&self, dtype: DType) -> Values {
        if self.dtype() == dtype {
            return self.clone();
        }
        match dtype {
            DType::Float32 => Values::Float32(self.to_f32()),
            DType::Float16 => {
                Values::Float16(self.to_f32().into_iter().map(|x| f16::from_f32(x).to_bits()).collect())
            }
            DType::Int64 => Values::Int64(self.to_i64()),
            DType::Int32 => Values::Int32(self.to_i64().into_iter().map(|x| x as i32).collect()),
            DType::Uint8 => Values::Uint8(self.to_i64().into_iter().map(|x| x as u8).collect()),
            DType::Bool => Values::Bool(self.to_bool()),
            DType::String => Values::String(self.to_strings()),
        }
    }

    /// The elements as text (numbers as Rust writes them, float16 as its value).
    fn to_strings(&self) -> Vec<String> {
        fn text<T: ToString>(v: &[T]) -> Vec<String> {
            v.iter().map(ToString::to_string).collect()
        }
        match self {
            Values::Float32(v) => text(v),
            Values::Float16(_) => text(&self.to_f32()),
            Values::Int64(v) => text(v),
            Values::Int32(v) => text(v),
            Values::Uint8(v) => text(v),
            Values::Bool(v) => text(v),
            Values::String(v) => v.clone(),
        }
    }

    /// The index and text of the first NaN or infinite element (floats only).
    pub fn first_non_finite(&self) -> Option<(usize, String)> {
        let show = |x: f32| x.to_string();
        match self {
            Values::Float32(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, show(v[i]))),
            Values::Float16(v) => v
                .iter()
                .position(|&b| !f16::from_bits(b).is_finite())
                .map(|i| (i, show(f16::from_bits(v[i]).to_f32()))),
            _ => None,
        }
    }

    /// The index and value of the first element outside `[lo, hi]` (numbers; strings have
    /// none: their bound is a spec's `max_bytes`).
    pub fn first_outside(&self, lo: f64, hi: f64) -> Option<(usize, f64)> {
        let check = |i: usize, x: f64| (!(lo..=hi).contains(&x)).then_some((i, x));
        match self {
            Values::Float32(v) => v.iter().enumerate().find_map(|(i, &x)| check(i, f64::from(x))),
            Values::Float16(v) => {
                v.iter().enumerate().find_map(|(i, &b)| check(i, f64::from(f16::from_bits(b).to_f32())))
            }
            Values::Int64(v) => v.iter().enumerate().find_map(|(i, &x)| check(i, x as f64)),
            Values::Int32(v) => v.iter().enumerate().find_map(|(i, &x)| check(i, f64::from(x))),
            Values::Uint8(v) => v.iter().enumerate().find_map(|(i, &x)| check(i, f64::from(x))),
            Values::Bool(v) => v.iter().enumerate().find_map(|(i, &x)| check(i, f64::from(u8::from(x)))),
            Values::String(_) => None,
        }
    }

    /// Little-endian bytes, as the KServe binary extension carries them (`string`: each
    /// element's UTF-8 length as 4 bytes, then its bytes: `BYTES`).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Values::Float32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Float16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Int32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Uint8(v) => v.clone(),
            Values::Bool(v) => v.iter().map(|&x| u8::from(x)).collect(),
            Values::String(v) => {
                let mut out = Vec::with_capacity(v.iter().map(|s| 4 + s.len()).sum());
                for s in v {
                    // An element past 4 GiB cannot be written; no request or model makes one.
                    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                out
            }
        }
    }

    /// Decode little-endian bytes of `dtype`; `None` when the length is not a whole number
    /// of elements (or a bool byte is neither 0 nor 1, or `string` bytes are not the `BYTES`
    /// layout of UTF-8 text: [`strings_from_bytes`] says why).
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<Values> {
        if dtype == DType::String {
            return strings_from_bytes(bytes).ok().map(Values::String);
        }
        if !bytes.len().is_multiple_of(dtype.byte_size()) {
            return None;
        }
        Some(match dtype {
            DType::Float32 => Values::Float32(
                bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ),
            DType::Float16 => {
                Values::Float16(bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
            }
            DType::Int64 => Values::Int64(
                bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
            ),
            DType::Int32 => Values::Int32(
                bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ),
            DType::Uint8 => Values::Uint8(bytes.to_vec()),
            DType::Bool => {
                if bytes.iter().any(|&b| b > 1) {
                    return None;
                }
                Values::Bool(bytes.iter().map(|&b| b == 1).collect())
            }
            DType::String => return None,
        })
    }
}

/// A tensor in host memory: dims and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Every dimension.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` elements (checked by validation, not by construction).
    pub values: Values,
}

impl HostTensor {
    /// A tensor; see [`crate::Signature::validate_inputs`] for the checks.
    pub fn new(dims: Vec<usize>, values: Values) -> Self {
        HostTensor { dims, values }
    }

    /// Its dtype.
    pub fn dtype(&self) -> DType {
        self.values.dtype()
    }

    /// The product of the dims (`None` on overflow).
    pub fn element_count(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
}

/// Named tensors: a run's feeds or fetches.
pub type TensorMap = BTreeMap<String, HostTensor>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_and_bytes_round_trip() {
        let v = Values::Float32(vec![1.5, -2.0, 65504.0]);
        let h = v.cast(DType::Float16);
        assert_eq!(h.cast(DType::Float32), v);
        assert_eq!(Values::Int64(vec![3, -1]).cast(DType::Int32), Values::Int32(vec![3, -1]));
        for values in [
            v.clone(),
            h,
            Values::Int64(vec![i64::MIN, 7]),
            Values::Int32(vec![-4]),
            Values::Uint8(vec![0, 255]),
            Values::Bool(vec![true, false]),
        ] {
            let bytes = values.to_le_bytes();
            assert_eq!(Values::from_le_bytes(values.dtype(), &bytes), Some(values.clone()));
        }
        assert_eq!(Values::from_le_bytes(DType::Float32, &[0, 0, 0]), None);
        assert_eq!(Values::from_le_bytes(DType::Bool, &[2]), None);
    }

    #[test]
    fn bytes_layout_round_trips_and_refuses_with_the_element() {
        let texts = Values::String(vec!["héllo".into(), String::new(), "日本 🎉".into()]);
        let bytes = texts.to_le_bytes();
        assert_eq!(&bytes[..4], &6u32.to_le_bytes());
        assert_eq!(&bytes[4..10], "héllo".as_bytes());
        assert_eq!(&bytes[10..14], &[0, 0, 0, 0]);
        assert_eq!(Values::from_le_bytes(DType::String, &bytes), Some(texts));
        assert_eq!(strings_from_bytes(&[]), Ok(vec![]));
        assert_eq!(
            strings_from_bytes(&[1, 0, 0, 0, b'a', 9, 0]),
            Err(BytesError::TruncatedPrefix { index: 1, offset: 5, remaining: 2 })
        );
        assert_eq!(
            strings_from_bytes(&[3, 0, 0, 0, b'a']),
            Err(BytesError::PastEnd { index: 0, length: 3, remaining: 1 })
        );
        let err = strings_from_bytes(&[0xff, 0xff, 0xff, 0xff, b'a']).unwrap_err();
        assert!(err.to_string().contains("4294967295 bytes long, but only 1"), "{err}");
        assert_eq!(
            strings_from_bytes(&[0, 0, 0, 0, 2, 0, 0, 0, b'a', 0xc3]),
            Err(BytesError::NotUtf8 { index: 1, at: 1 })
        );
        assert_eq!(Values::from_le_bytes(DType::String, &[2, 0, 0, 0, 0xc3, 0x28]), None);
        // Strings are no numbers, and numbers become text.
        assert_eq!(Values::String(vec!["x".into()]).first_outside(0.0, 1.0), None);
        assert_eq!(
            Values::Int64(vec![3, -1]).cast(DType::String),
            Values::String(vec!["3".into(), "-1".into()])
        );
        assert!(Values::String(vec!["x".into()]).to_f32()[0].is_nan());
    }

    #[test]
    fn finds_non_finite_and_out_of_range() {
        assert_eq!(Values::Float32(vec![0.0, f32::NAN]).first_non_finite(), Some((1, "NaN".into())));
        assert_eq!(Values::Float16(vec![0x7c00]).first_non_finite(), Some((0, "inf".into())));
        assert_eq!(Values::Int64(vec![1, 2]).first_non_finite(), None);
        assert_eq!(Values::Int64(vec![1, 99]).first_outside(0.0, 10.0), Some((1, 99.0)));
    }
}
