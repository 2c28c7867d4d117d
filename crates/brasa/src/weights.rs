//! Weight validation. This file and `error.rs` use only burn-pack, brasa-types and std (not
//! burn itself), so the fuzz target `fuzz/fuzz_targets/weights.rs` compiles them as they are
//! without instrumenting all of burn: keep it that way.

use burn_pack::{Bytes, DType};

use crate::error::{BrasaError, Result};

/// What a weights file holds, as found by [`inspect_weights`].
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsSummary {
    /// Each tensor's path and shape, in name order.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// Total number of scalar parameters.
    pub parameters: usize,
    /// Size of the file in bytes.
    pub bytes: usize,
}

/// Decode a burnpack buffer and check every tensor before anything touches a model: the
/// container must parse, each tensor's byte length must match its shape, and every value must
/// be finite (floats). Bit rot or tampering that still parses usually shows up here as NaN,
/// infinity or an absurd shape; content hashes (the registry) catch the rest.
pub fn inspect_weights(bytes: &[u8]) -> Result<WeightsSummary> {
    if bytes.is_empty() {
        return Err(BrasaError::CorruptWeights("the weights buffer is empty".into()));
    }
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| BrasaError::CorruptWeights(e.to_string()))?;
    let tensors = reader.into_tensors().map_err(|e| BrasaError::CorruptWeights(e.to_string()))?;
    if tensors.is_empty() {
        return Err(BrasaError::CorruptWeights("the file holds no tensors".into()));
    }

    let mut summary = WeightsSummary { tensors: Vec::new(), parameters: 0, bytes: bytes.len() };
    for tensor in tensors {
        let name = tensor.name.clone();
        let dtype = tensor.dtype;
        let shape = tensor.shape.clone().to_vec();
        // Parameters are floats; ONNX imports also store integer and boolean constants.
        let supported = matches!(
            dtype,
            DType::F32
                | DType::F16
                | DType::BF16
                | DType::I64
                | DType::I32
                | DType::I16
                | DType::I8
                | DType::U8
                | DType::Bool(_)
        );
        if !supported {
            return Err(BrasaError::UnsupportedDtype { tensor: name, dtype: format!("{dtype:?}") });
        }
        let elements = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
            BrasaError::CorruptWeights(format!("tensor `{name}` has an absurd shape {shape:?}"))
        })?;
        let data =
            tensor.into_bytes().map_err(|e| BrasaError::CorruptWeights(format!("tensor `{name}`: {e}")))?;
        let want = elements.saturating_mul(dtype.size());
        if data.len() != want {
            return Err(BrasaError::CorruptWeights(format!(
                "tensor `{name}` of shape {shape:?} ({dtype:?}) needs {want} bytes but has {}",
                data.len()
            )));
        }
        let non_finite = match dtype {
            DType::F32 => {
                data.chunks_exact(4).any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
            }
            // Infinity or NaN: every exponent bit set (binary16: 5 bits, bfloat16: 8).
            DType::F16 => data.chunks_exact(2).any(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 == 0x7c00),
            DType::BF16 => data.chunks_exact(2).any(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7f80 == 0x7f80),
            _ => false,
        };
        if non_finite {
            return Err(BrasaError::NonFiniteWeights { tensor: name });
        }
        summary.parameters += elements;
        summary.tensors.push((name, shape));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer (`fuzz/`, target `weights`): a bfloat16 tensor holding NaN passed
    /// as valid weights (only float32 and float16 were checked).
    #[test]
    fn non_finite_bfloat16_is_refused() {
        let bytes = include_bytes!("../tests/fuzz/weights-bf16-non-finite.bin");
        let err = inspect_weights(bytes).unwrap_err();
        assert_eq!(err, BrasaError::NonFiniteWeights { tensor: "b.bf16".into() });
        assert_eq!(err.code(), crate::error::ErrorCode::InvalidWeights);
    }
}
