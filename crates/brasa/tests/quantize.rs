//! f16 and q8 weights (`brasa quantize`): encoded by brasa, read back by burn itself (an
//! independent decoder of burn's quantised layout), and every kind of tampering refused with
//! `invalid_weights` naming the tensor.

use brasa::burn::tensor::{Device, Tensor, TensorData};
use brasa::{BrasaError, ErrorCode, WeightsDtype, encode_weights, inspect_weights, q8_block, widen_to_f32};
use burn_pack::{Bytes, DType, Reader, Writer};

/// A deterministic pseudo-random f32 tensor (xorshift), values in about [-2, 2].
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn tensor(name: &str, shape: &[usize], data: &[f32]) -> burn_pack::Tensor {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    burn_pack::Tensor::new(name.into(), DType::F32, shape.to_vec(), None, Bytes::from_bytes_vec(bytes))
}

/// Each f32 tensor's name, shape and values.
type Originals = Vec<(String, Vec<usize>, Vec<f32>)>;

/// A conv kernel, a linear weight, a bias and an int tensor.
fn f32_pack() -> (Vec<u8>, Originals) {
    let specs: [(&str, &[usize]); 4] = [
        ("conv.weight", &[64, 32, 3, 3]),
        ("fc.weight", &[3136, 128]),
        ("fc.bias", &[128]),
        ("small", &[8, 8]),
    ];
    let mut tensors = Vec::new();
    let mut kept = Vec::new();
    for (i, (name, shape)) in specs.iter().enumerate() {
        let data = values(shape.iter().product(), i as u64 + 7);
        tensors.push(tensor(name, shape, &data));
        kept.push((name.to_string(), shape.to_vec(), data));
    }
    let ids = burn_pack::Tensor::new(
        "ids".into(),
        DType::I64,
        vec![3],
        None,
        Bytes::from_bytes_vec([1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect()),
    );
    tensors.push(ids);
    (Writer::new(tensors).into_bytes().unwrap().to_vec(), kept)
}

fn tensors_of(bytes: &[u8]) -> Vec<burn_pack::Tensor> {
    Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).unwrap().into_tensors().unwrap()
}

fn f32s(t: burn_pack::Tensor) -> Vec<f32> {
    t.into_bytes().unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn block_rule() {
    assert_eq!(q8_block(&[64, 32, 3, 3]), Some(vec![4, 3, 3]));
    assert_eq!(q8_block(&[3136, 128]), Some(vec![64]));
    assert_eq!(q8_block(&[128, 10]), Some(vec![4, 10]));
    assert_eq!(q8_block(&[512, 64, 1, 1]), Some(vec![64, 1, 1]));
    assert_eq!(q8_block(&[30522, 384]), Some(vec![64]));
    // A prime trailing dimension over 64 leaves blocks of one value: kept f32.
    assert_eq!(q8_block(&[100, 127]), None);
}

#[test]
fn q8_is_burns_layout_and_round_trips() {
    let (f32_bytes, originals) = f32_pack();
    let q8 = encode_weights(&f32_bytes, WeightsDtype::Q8).unwrap();
    let summary = inspect_weights(&q8).unwrap();
    assert_eq!(summary.dtype, WeightsDtype::Q8);
    assert!(q8.len() * 3 < f32_bytes.len(), "{} vs {}", q8.len(), f32_bytes.len());
    let quantised: Vec<_> =
        tensors_of(&q8).into_iter().filter(|t| matches!(t.dtype, DType::QFloat(_))).collect();
    let names: Vec<&str> = quantised.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["conv.weight", "fc.weight"], "biases, small tensors and ints stay as they were");

    // burn itself decodes brasa's q8 tensors (flex's dequantize): the same values as
    // brasa's own widening, and within half a quantisation step of the f32 originals.
    let widened = tensors_of(&widen_to_f32(&q8).unwrap().unwrap());
    for t in quantised {
        let shape: Vec<usize> = t.shape.to_vec();
        let (name, dtype) = (t.name.clone(), t.dtype);
        let data = TensorData::from_bytes_vec(t.into_bytes().unwrap().to_vec(), shape.clone(), dtype);
        let by_burn: Vec<f32> = if shape.len() == 2 {
            Tensor::<2>::from_data(data, &Device::flex()).dequantize().into_data().try_to_vec().unwrap()
        } else {
            Tensor::<4>::from_data(data, &Device::flex()).dequantize().into_data().try_to_vec().unwrap()
        };
        let by_brasa = f32s(widened.iter().find(|w| w.name == name).unwrap().clone());
        assert_eq!(by_burn, by_brasa, "{name}: burn and brasa disagree on the q8 values");
        let original = &originals.iter().find(|(n, ..)| *n == name).unwrap().2;
        let max_abs = original.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (o, d) in original.iter().zip(&by_brasa) {
            assert!((o - d).abs() <= max_abs / 127.0 / 2.0 * 1.0001, "{name}: {o} became {d}");
        }
    }
    for w in &widened {
        assert!(matches!(w.dtype, DType::F32 | DType::I64), "{}: {:?}", w.name, w.dtype);
    }
}

#[test]
fn f16_round_trips_and_keeps_what_it_cannot_hold_f32() {
    let (f32_bytes, originals) = f32_pack();
    let f16 = encode_weights(&f32_bytes, WeightsDtype::F16).unwrap();
    assert_eq!(inspect_weights(&f16).unwrap().dtype, WeightsDtype::F16);
    let widened = tensors_of(&widen_to_f32(&f16).unwrap().unwrap());
    for (name, _, original) in &originals {
        let back = f32s(widened.iter().find(|w| &w.name == name).unwrap().clone());
        for (o, b) in original.iter().zip(&back) {
            assert!((o - b).abs() <= o.abs() * 2f32.powi(-11), "{name}: {o} became {b}");
        }
    }
    // Already-quantised weights are not quantised again.
    let err = encode_weights(&f16, WeightsDtype::Q8).unwrap_err();
    assert!(err.to_string().contains("f16 already"), "{err}");
    // A tensor beyond f16's range (±65504) stays f32; the others become f16.
    let big = Writer::new(vec![tensor("huge", &[2], &[1.0, 1e6]), tensor("w", &[2], &[0.5, -2.0])])
        .into_bytes()
        .unwrap()
        .to_vec();
    let encoded = tensors_of(&encode_weights(&big, WeightsDtype::F16).unwrap());
    let dtypes: Vec<_> = encoded.iter().map(|t| (t.name.as_str(), t.dtype)).collect();
    assert_eq!(dtypes, [("huge", DType::F32), ("w", DType::F16)]);
    // f32 weights widen to nothing.
    assert_eq!(widen_to_f32(&f32_bytes).unwrap(), None);
}

/// The q8 file with `conv.weight`'s bytes changed by `tamper`.
fn tampered(tamper: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let (f32_bytes, _) = f32_pack();
    let q8 = encode_weights(&f32_bytes, WeightsDtype::Q8).unwrap();
    let tensors = tensors_of(&q8)
        .into_iter()
        .map(|t| {
            if t.name != "conv.weight" {
                return t;
            }
            let (name, dtype, shape, id, bytes) = t.into_parts().unwrap();
            let mut bytes = bytes.to_vec();
            tamper(&mut bytes);
            burn_pack::Tensor::new(name, dtype, shape, id, Bytes::from_bytes_vec(bytes))
        })
        .collect();
    Writer::new(tensors).into_bytes().unwrap().to_vec()
}

fn refused(bytes: &[u8]) -> BrasaError {
    let err = inspect_weights(bytes).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidWeights, "{err}");
    // Loading widens through the same checks.
    assert_eq!(widen_to_f32(bytes).unwrap_err(), err);
    err
}

#[test]
fn tampered_q8_is_refused_naming_the_tensor() {
    let values = 64 * 32 * 9;
    // A NaN scale (the first, right after the values).
    let err = refused(&tampered(|b| b[values..values + 4].copy_from_slice(&f32::NAN.to_le_bytes())));
    assert_eq!(err, BrasaError::NonFiniteWeights { tensor: "conv.weight".into() });
    // A scale so large its values overflow f32.
    let err = refused(&tampered(|b| b[values..values + 4].copy_from_slice(&1e38f32.to_le_bytes())));
    assert_eq!(err, BrasaError::NonFiniteWeights { tensor: "conv.weight".into() });
    // A negative scale.
    let err = refused(&tampered(|b| b[values + 8..values + 12].copy_from_slice(&(-0.5f32).to_le_bytes())));
    assert!(
        err.to_string().contains("`conv.weight`") && err.to_string().contains("scale 2 is -0.5"),
        "{err}"
    );
    // int8 data one byte short, and one scale missing.
    for cut in [1, 4] {
        let err = refused(&tampered(|b| b.truncate(b.len() - cut)));
        assert!(
            err.to_string().contains("`conv.weight`") && err.to_string().contains("bytes but it has"),
            "{err}"
        );
    }
    let err = refused(&tampered(|b| b.extend([0; 4])));
    assert!(err.to_string().contains("`conv.weight`"), "{err}");
    // -128 is outside Q8S.
    let err = refused(&tampered(|b| b[5] = 0x80));
    assert!(err.to_string().contains("value 5 is -128"), "{err}");
}

#[test]
fn other_quantisation_schemes_are_unsupported_not_misread() {
    use burn_std::quantization::{QuantScheme, QuantValue};
    // burn's default scheme (Q8F, packed into u32, per tensor): valid for burn, not what
    // brasa writes; refused as an unsupported dtype naming the tensor.
    let scheme = QuantScheme::default().with_value(QuantValue::Q8F);
    let t = burn_pack::Tensor::new(
        "w".into(),
        DType::QFloat(scheme),
        vec![4, 4],
        None,
        Bytes::from_bytes_vec(vec![0; 20]),
    );
    let bytes = Writer::new(vec![t]).into_bytes().unwrap().to_vec();
    let err = inspect_weights(&bytes).unwrap_err();
    assert!(matches!(&err, BrasaError::UnsupportedDtype { tensor, .. } if tensor == "w"), "{err:?}");
    assert_eq!(err.code(), ErrorCode::InvalidWeights);
}

/// The fuzz target `weights` starts from these (`fuzz/corpus/weights/q8`, `…/f16`): a small
/// f32 file (a 32×32 matrix, a bias, an int tensor) as brasa encodes it, so the fuzzer
/// mutates the q8 layout from a valid one. `BRASA_BLESS=1` rewrites them.
#[test]
fn fuzz_seeds_are_current() {
    let tensors = vec![
        tensor("w", &[32, 32], &values(1024, 3)),
        tensor("b", &[32], &values(32, 4)),
        burn_pack::Tensor::new(
            "n".into(),
            DType::I32,
            vec![2],
            None,
            Bytes::from_bytes_vec(vec![1, 0, 0, 0, 2, 0, 0, 0]),
        ),
    ];
    let f32_bytes = Writer::new(tensors).into_bytes().unwrap().to_vec();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/weights");
    for dtype in [WeightsDtype::F16, WeightsDtype::Q8] {
        let want = encode_weights(&f32_bytes, dtype).unwrap();
        assert_eq!(inspect_weights(&want).unwrap().dtype, dtype);
        let path = dir.join(dtype.as_str());
        if std::env::var_os("BRASA_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `BRASA_BLESS=1 cargo test -p brasa --test quantize`",
            path.display()
        );
    }
}
