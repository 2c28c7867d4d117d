//! Weight validation, and the f16 and q8 encodings of weights (`brasa quantize`). This file
//! and `error.rs` use only burn-pack, burn-std, brasa-types and std (not burn itself), so the
//! fuzz target `fuzz/fuzz_targets/weights.rs` compiles them as they are without instrumenting
//! all of burn: keep it that way.
//!
//! q8 is burn's own quantised storage, so a q8 file is a burnpack burn itself reads: a tensor
//! of dtype `QFloat` with scheme `Q8S` (symmetric int8 in [-127, 127]), `Native` store (one
//! byte a value), and one f32 scale per block of at most 64 values. burn's block sizes are a
//! `u8` per dimension, so a whole output channel (3,136 inputs for MNIST's first linear layer)
//! cannot be one block; blocks of up to 64 values are also what GGML's Q8_0 and burn's own
//! examples use. brasa's builds compute in f32, so f16 and q8 tensors are widened to f32
//! before the module sees them ([`widen_to_f32`]), on both backends.

use brasa_types::WeightsDtype;
use burn_pack::{Bytes, DType};
use burn_std::quantization::{BlockSize, QuantMode, QuantScheme, QuantStore, QuantValue, ScaleDtype};
use burn_std::{bf16, f16};

use crate::error::{BrasaError, Result};

/// Float tensors of fewer elements than this stay f32 in a q8 file: biases, norms and small
/// kernels are a sliver of the bytes and the most sensitive to rounding.
pub const Q8_MIN_ELEMENTS: usize = 1024;
/// The most values one q8 scale covers.
pub const Q8_MAX_BLOCK: usize = 64;
/// The fewest: a tensor whose shape admits no block of this many values stays f32 (a scale
/// per few bytes would cost more than it saves).
pub const Q8_MIN_BLOCK: usize = 16;
/// The largest magnitude of a q8 value (`Q8S` is symmetric: -128 is never written).
const Q8_RANGE: f32 = 127.0;

/// What a weights file holds, as found by [`inspect_weights`].
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsSummary {
    /// Each tensor's path and shape, in name order.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// Total number of scalar parameters.
    pub parameters: usize,
    /// Size of the file in bytes.
    pub bytes: usize,
    /// How its float tensors are stored: `q8` when any is quantised, else `f16` when any is
    /// half precision, else `f32`.
    pub dtype: WeightsDtype,
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

    let mut summary =
        WeightsSummary { tensors: Vec::new(), parameters: 0, bytes: bytes.len(), dtype: WeightsDtype::F32 };
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
                | DType::QFloat(_)
        );
        if !supported {
            return Err(BrasaError::UnsupportedDtype { tensor: name, dtype: format!("{dtype:?}") });
        }
        let elements = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
            BrasaError::CorruptWeights(format!("tensor `{name}` has an absurd shape {shape:?}"))
        })?;
        let data =
            tensor.into_bytes().map_err(|e| BrasaError::CorruptWeights(format!("tensor `{name}`: {e}")))?;
        if let DType::QFloat(scheme) = dtype {
            decode_q8(&name, &scheme, &shape, &data)?;
            summary.dtype = WeightsDtype::Q8;
        } else {
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
                DType::F16 => {
                    data.chunks_exact(2).any(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 == 0x7c00)
                }
                DType::BF16 => {
                    data.chunks_exact(2).any(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7f80 == 0x7f80)
                }
                _ => false,
            };
            if non_finite {
                return Err(BrasaError::NonFiniteWeights { tensor: name });
            }
            if matches!(dtype, DType::F16 | DType::BF16) && summary.dtype == WeightsDtype::F32 {
                summary.dtype = WeightsDtype::F16;
            }
        }
        summary.parameters += elements;
        summary.tensors.push((name, shape));
    }
    Ok(summary)
}

/// A q8 tensor's values and scales, checked: the only quantised layout brasa reads is the one
/// it writes (see the module docs); any other scheme is `UnsupportedDtype`, and bytes that do
/// not fit the layout, scales that are not finite and positive, or a value of -128 (outside
/// `Q8S`'s range) are refused naming the tensor.
struct Q8<'a> {
    values: &'a [u8],
    scales: Vec<f32>,
    /// Per dimension, the block's extent (leading 1s filled in).
    block: Vec<usize>,
}

fn decode_q8<'a>(name: &str, scheme: &QuantScheme, shape: &[usize], data: &'a [u8]) -> Result<Q8<'a>> {
    // A file's scheme is deserialised as it stands, and a block that claims more dimensions
    // than cubecl's `BlockSize` holds makes its `as_slice` (and so its `Debug`) panic: check
    // the claimed length, read through serde, before anything reads the block.
    if let Some(size) = scheme.block_size()
        && !block_size_fits(&size)
    {
        return Err(BrasaError::CorruptWeights(format!(
            "q8 tensor `{name}` of shape {shape:?}: its block has more than {} dimensions",
            BlockSize::MAX_DIMS
        )));
    }
    let unsupported =
        || BrasaError::UnsupportedDtype { tensor: name.into(), dtype: format!("QFloat({scheme:?})") };
    if scheme.value != QuantValue::Q8S
        || scheme.store != QuantStore::Native
        || scheme.mode != QuantMode::Symmetric
        || scheme.num_levels() != 1
        || scheme.scale_dtype() != ScaleDtype::F32
    {
        return Err(unsupported());
    }
    let corrupt =
        |what: String| BrasaError::CorruptWeights(format!("q8 tensor `{name}` of shape {shape:?}: {what}"));
    let block: Vec<usize> = match scheme.block_size() {
        None => shape.to_vec(),
        Some(size) => {
            let extents = size.as_slice();
            if extents.len() > shape.len() {
                return Err(corrupt(format!("its block {extents:?} has more dimensions than the tensor")));
            }
            let mut block = vec![1; shape.len() - extents.len()];
            block.extend(extents.iter().map(|&e| usize::from(e)));
            block
        }
    };
    if block.iter().zip(shape).any(|(&b, &d)| b == 0 || d % b != 0) {
        return Err(corrupt(format!("its block {block:?} does not tile it")));
    }
    let elements: usize = shape.iter().product();
    let blocks: usize = shape.iter().zip(&block).map(|(d, b)| d / b).product();
    // burn's layout: one byte a value, padding to 4 bytes, then the f32 scales.
    let scales_at = elements.checked_next_multiple_of(4).unwrap_or(usize::MAX);
    let want = scales_at.checked_add(blocks.saturating_mul(4));
    if want != Some(data.len()) {
        return Err(corrupt(format!(
            "{elements} int8 values and {blocks} f32 scales need {} bytes but it has {}",
            want.map_or_else(|| "more than addressable".into(), |w| w.to_string()),
            data.len()
        )));
    }
    let scales: Vec<f32> =
        data[scales_at..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    for (i, &scale) in scales.iter().enumerate() {
        if !(scale * Q8_RANGE).is_finite() {
            return Err(BrasaError::NonFiniteWeights { tensor: name.into() });
        }
        if scale <= 0.0 {
            return Err(corrupt(format!("scale {i} is {scale}; scales must be positive")));
        }
    }
    let values = &data[..elements];
    if let Some(i) = values.iter().position(|&v| v == 0x80) {
        return Err(corrupt(format!("value {i} is -128, outside the symmetric int8 range [-127, 127]")));
    }
    Ok(Q8 { values, scales, block })
}

impl Q8<'_> {
    /// The f32 values, row-major.
    fn dequantize(&self, shape: &[usize]) -> Vec<f32> {
        let grid: Vec<usize> = shape.iter().zip(&self.block).map(|(d, b)| d / b).collect();
        let mut out = Vec::with_capacity(self.values.len());
        let mut index = vec![0usize; shape.len()];
        for &v in self.values {
            let mut block = 0;
            for (axis, &i) in index.iter().enumerate() {
                block = block * grid[axis] + i / self.block[axis];
            }
            out.push(f32::from(v as i8) * self.scales[block]);
            // Advance the row-major index.
            for axis in (0..shape.len()).rev() {
                index[axis] += 1;
                if index[axis] < shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        out
    }
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// A burnpack's metadata, key and value.
type Metadata = Vec<(String, String)>;

fn read_tensors(bytes: &[u8]) -> Result<(Vec<burn_pack::Tensor>, Metadata)> {
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| BrasaError::CorruptWeights(e.to_string()))?;
    let metadata = reader.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let tensors = reader.into_tensors().map_err(|e| BrasaError::CorruptWeights(e.to_string()))?;
    Ok((tensors, metadata))
}

fn write_tensors(tensors: Vec<burn_pack::Tensor>, metadata: &[(String, String)]) -> Result<Vec<u8>> {
    let writer = metadata.iter().fold(burn_pack::Writer::new(tensors), |w, (k, v)| w.with_metadata(k, v));
    let bytes = writer.into_bytes().map_err(|e| BrasaError::CorruptWeights(format!("re-encoding: {e}")))?;
    Ok(bytes.to_vec())
}

/// The same weights with every f16, bf16 and q8 tensor widened to f32, for a module that
/// computes in f32; `None` when there is nothing to widen. Validates first ([`inspect_weights`]).
pub fn widen_to_f32(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    if inspect_weights(bytes)?.dtype == WeightsDtype::F32 {
        return Ok(None);
    }
    let (tensors, metadata) = read_tensors(bytes)?;
    let mut out = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let (name, dtype, shape, param_id, data) =
            tensor.into_parts().map_err(|e| BrasaError::CorruptWeights(e.to_string()))?;
        let dims = shape.to_vec();
        let widened = match dtype {
            DType::F16 => f32_bytes(data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
            DType::BF16 => {
                f32_bytes(data.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()))
            }
            DType::QFloat(scheme) => f32_bytes(decode_q8(&name, &scheme, &dims, &data)?.dequantize(&dims)),
            _ => {
                out.push(burn_pack::Tensor::new(name, dtype, shape, param_id, data));
                continue;
            }
        };
        out.push(burn_pack::Tensor::new(name, DType::F32, shape, param_id, Bytes::from_bytes_vec(widened)));
    }
    write_tensors(out, &metadata).map(Some)
}

/// The q8 block for a tensor of `shape`: from the last dimension inwards, the largest divisor
/// of each that keeps the block at most [`Q8_MAX_BLOCK`] values, stopping at the first
/// dimension not taken whole; `None` when that gives fewer than [`Q8_MIN_BLOCK`] values.
/// Conv kernels `[out, in, 3, 3]` get `[4, 3, 3]` (36 values of one output channel), burn's
/// linear weights `[in, out]` with `out` of 64 or more get runs of 64 along a row.
pub fn q8_block(shape: &[usize]) -> Option<Vec<usize>> {
    let mut block = Vec::new();
    let mut values = 1;
    for &dim in shape.iter().rev() {
        let take = (1..=dim.min(Q8_MAX_BLOCK / values)).rev().find(|k| dim % k == 0).unwrap_or(1);
        block.push(take);
        values *= take;
        if take < dim {
            break;
        }
    }
    // Leading 1s say nothing (burn's `BlockSize` drops them too).
    block.reverse();
    let first = block.iter().position(|&b| b != 1).unwrap_or(block.len());
    (values >= Q8_MIN_BLOCK).then(|| block[first..].to_vec())
}

/// Whether a q8 file quantises a float tensor of `shape`: 2-D or more, at least
/// [`Q8_MIN_ELEMENTS`] elements, and a block by [`q8_block`]; the rest stays f32.
pub fn q8_quantises(shape: &[usize]) -> bool {
    shape.len() >= 2 && shape.iter().product::<usize>() >= Q8_MIN_ELEMENTS && q8_block(shape).is_some()
}

/// Re-encode f32 weights as `dtype` (what `brasa quantize` and `registry publish --dtype`
/// do): `f16` stores every f32 tensor as binary16, except one holding a value beyond f16's
/// range (±65504), which stays f32 (PP-OCR's BatchNorm running variances reach 1e7); `q8`
/// quantises the tensors [`q8_quantises`] picks, each block to
/// `round(x / s)` with `s = max|x| / 127`, and keeps the rest. Integer and boolean tensors,
/// names, parameter ids and metadata are kept. The input must be f32 weights.
pub fn encode_weights(bytes: &[u8], dtype: WeightsDtype) -> Result<Vec<u8>> {
    let summary = inspect_weights(bytes)?;
    if summary.dtype != WeightsDtype::F32 {
        return Err(BrasaError::CorruptWeights(format!(
            "these weights are {} already: quantise the f32 weights they came from",
            summary.dtype
        )));
    }
    let (tensors, metadata) = read_tensors(bytes)?;
    if dtype == WeightsDtype::F32 {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let (name, tdtype, shape, param_id, data) =
            tensor.into_parts().map_err(|e| BrasaError::CorruptWeights(e.to_string()))?;
        let dims = shape.to_vec();
        let fits_f16 = |data: &[u8]| {
            data.chunks_exact(4)
                .all(|c| f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).is_finite())
        };
        let keep = match dtype {
            WeightsDtype::Q8 => !q8_quantises(&dims),
            _ => !fits_f16(&data),
        };
        if tdtype != DType::F32 || keep {
            out.push(burn_pack::Tensor::new(name, tdtype, shape, param_id, data));
            continue;
        }
        let values: Vec<f32> =
            data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let (new_dtype, encoded) = match dtype {
            WeightsDtype::F16 => {
                (DType::F16, values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect())
            }
            _ => {
                let block = q8_block(&dims).expect("q8_quantises checked the block");
                let (scheme, encoded) = quantize_q8(&values, &dims, &block);
                (DType::QFloat(scheme), encoded)
            }
        };
        out.push(burn_pack::Tensor::new(name, new_dtype, shape, param_id, Bytes::from_bytes_vec(encoded)));
    }
    let metadata: Vec<(String, String)> = metadata
        .into_iter()
        .filter(|(k, _)| k != "brasa.dtype")
        .chain([("brasa.dtype".to_string(), dtype.to_string())])
        .collect();
    write_tensors(out, &metadata)
}

/// Symmetric int8 per block, in burn's `Q8S`/`Native`/f32-scale layout.
fn quantize_q8(values: &[f32], shape: &[usize], trailing: &[usize]) -> (QuantScheme, Vec<u8>) {
    let mut block = vec![1; shape.len() - trailing.len()];
    block.extend(trailing);
    let grid: Vec<usize> = shape.iter().zip(&block).map(|(d, b)| d / b).collect();
    let blocks: usize = grid.iter().product();
    let block_of = |flat: usize| {
        let (mut rest, mut id, mut stride) = (flat, 0, 1);
        for axis in (0..shape.len()).rev() {
            id += (rest % shape[axis]) / block[axis] * stride;
            rest /= shape[axis];
            stride *= grid[axis];
        }
        id
    };
    let mut max_abs = vec![0.0f32; blocks];
    for (i, v) in values.iter().enumerate() {
        let b = block_of(i);
        max_abs[b] = max_abs[b].max(v.abs());
    }
    // An all-zero block still needs a positive scale (its values are all 0).
    let scales: Vec<f32> = max_abs.iter().map(|&m| if m > 0.0 { m / Q8_RANGE } else { 1.0 }).collect();
    let mut out = Vec::with_capacity(values.len().next_multiple_of(4) + blocks * 4);
    out.extend(values.iter().enumerate().map(|(i, v)| {
        let q = (v / scales[block_of(i)]).round().clamp(-Q8_RANGE, Q8_RANGE);
        (q as i8) as u8
    }));
    out.resize(values.len().next_multiple_of(4), 0);
    out.extend(scales.iter().flat_map(|s| s.to_le_bytes()));
    let extents: Vec<u8> = block.iter().map(|&b| b as u8).collect();
    let scheme = QuantScheme::default()
        .with_value(QuantValue::Q8S)
        .with_store(QuantStore::Native)
        .with_mode(QuantMode::Symmetric)
        .per_block(BlockSize::new(extents).as_slice(), ScaleDtype::F32);
    (scheme, out)
}

/// Whether `size` holds no more dimensions than a `BlockSize` can (its length field, as
/// serialised, is no more than [`BlockSize::MAX_DIMS`]).
fn block_size_fits(size: &BlockSize) -> bool {
    serde_json::to_value(size)
        .ok()
        .and_then(|v| v.get("len")?.as_u64())
        .is_some_and(|len| usize::try_from(len).is_ok_and(|len| len <= BlockSize::MAX_DIMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer (`fuzz/`, target `weights`): a q8 tensor whose block claims 7
    /// dimensions (cubecl's `BlockSize` holds 5) made decoding panic, which in wasm aborts
    /// the instance. It is corrupt weights.
    #[test]
    fn q8_block_of_too_many_dimensions_is_refused() {
        let bytes = include_bytes!("../tests/fuzz/weights-q8-block-rank.bin");
        let err = inspect_weights(bytes).unwrap_err();
        assert!(
            matches!(&err, BrasaError::CorruptWeights(m) if m.contains("more than 5 dimensions")),
            "{err:?}"
        );
        assert_eq!(err.code(), crate::error::ErrorCode::InvalidWeights);
        assert!(block_size_fits(&BlockSize::new([1, 32])));
    }

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
