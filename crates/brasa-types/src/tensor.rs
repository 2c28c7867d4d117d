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
        }
    }

    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f32 (floats exactly, integers rounded where beyond 2^24, booleans
    /// as 0/1): what a model's float input receives.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Values::Float32(v) => v.clone(),
            Values::Float16(v) => v.iter().map(|&b| f16::from_bits(b).to_f32()).collect(),
            Values::Int64(v) => v.iter().map(|&x| x as f32).collect(),
            Values::Int32(v) => v.iter().map(|&x| x as f32).collect(),
            Values::Uint8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            Values::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        }
    }

    /// The elements as i64 (floats truncated toward zero).
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            Values::Float32(v) => v.iter().map(|&x| x as i64).collect(),
            Values::Float16(v) => v.iter().map(|&b| f16::from_bits(b).to_f32() as i64).collect(),
            Values::Int64(v) => v.clone(),
            Values::Int32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Values::Uint8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            Values::Bool(v) => v.iter().map(|&x| i64::from(x)).collect(),
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
    /// Rust's `as` does): how fetches reach the dtype their spec declares.
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

    /// The index and value of the first element outside `[lo, hi]`.
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
        }
    }

    /// Little-endian bytes, as the KServe binary extension carries them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Values::Float32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Float16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Int32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::Uint8(v) => v.clone(),
            Values::Bool(v) => v.iter().map(|&x| u8::from(x)).collect(),
        }
    }

    /// Decode little-endian bytes of `dtype`; `None` when the length is not a whole number
    /// of elements (or a bool byte is neither 0 nor 1).
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<Values> {
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
    fn finds_non_finite_and_out_of_range() {
        assert_eq!(Values::Float32(vec![0.0, f32::NAN]).first_non_finite(), Some((1, "NaN".into())));
        assert_eq!(Values::Float16(vec![0x7c00]).first_non_finite(), Some((0, "inf".into())));
        assert_eq!(Values::Int64(vec![1, 2]).first_non_finite(), None);
        assert_eq!(Values::Int64(vec![1, 99]).first_outside(0.0, 10.0), Some((1, 99.0)));
    }
}
