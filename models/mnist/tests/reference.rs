//! brasa's MNIST model against the independent numpy reference, on every native backend,
//! and its handling of bad weights and bad input.
//!
//! Needs the artefacts `cargo xtask setup` makes: `.cache/models/mnist.bpk` (imported from
//! ccexam's state dict) and `.cache/fixtures/mnist-reference.json` (numpy). Point
//! `BRASA_CACHE_DIR` elsewhere to use another copy.

use std::path::PathBuf;

use brasa::burn::module::Module;
use brasa::burn::nn::LinearConfig;
use brasa::burn::tensor::Device;
use brasa::{BackendKind, BrasaError, DType, ErrorCode, HostTensor, Session, TensorMap, Values};
use brasa_mnist::MnistNet as Mnist;
use serde::Deserialize;

const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Reference {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    name: String,
    label: Option<u32>,
    pixels: Vec<f32>,
    logits: Vec<f32>,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("BRASA_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../.cache"))
}

fn read(rel: &str) -> Vec<u8> {
    let path = cache_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask setup` to import the weights and build the reference",
            path.display()
        )
    })
}

fn weights() -> Vec<u8> {
    read("models/mnist.bpk")
}

fn reference() -> Reference {
    let reference: Reference = serde_json::from_slice(&read("fixtures/mnist-reference.json")).unwrap();
    assert!(reference.items.len() >= 16, "the reference holds too few inputs");
    reference
}

fn session(kind: BackendKind) -> Session<Mnist> {
    pollster::block_on(Session::<Mnist>::load(&weights(), kind)).expect("weights load")
}

/// Feeds of `pixels` (784 values per image).
fn feeds(pixels: &[f32]) -> TensorMap {
    let batch = pixels.len() / 784;
    let tensor = HostTensor::new(vec![batch, 1, 28, 28], Values::Float32(pixels.to_vec()));
    TensorMap::from([("pixels".to_string(), tensor)])
}

/// The logits of one run, flat.
fn logits(session: &Session<Mnist>, pixels: &[f32]) -> Vec<f32> {
    let out = session.run_blocking(feeds(pixels)).unwrap();
    match &out["logits"].values {
        Values::Float32(v) => v.clone(),
        other => panic!("logits are {:?}", other.dtype()),
    }
}

fn argmax(row: &[f32]) -> u32 {
    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
        as u32
}

fn check_against_reference(kind: BackendKind) {
    let session = session(kind);
    let reference = reference();
    // One item at a time, then all together: batching must not change any row.
    let batch: Vec<f32> = reference.items.iter().flat_map(|i| i.pixels.clone()).collect();
    let run = |pixels: &[f32]| {
        let out = pollster::block_on(session.run(feeds(pixels))).unwrap();
        assert_eq!(out["logits"].dtype(), DType::Float32);
        out["logits"].values.to_f32()
    };
    let batched = run(&batch);
    let mut worst = 0.0f32;
    for (row, item) in reference.items.iter().enumerate() {
        let single = run(&item.pixels);
        for (k, expected) in item.logits.iter().enumerate() {
            for got in [single[k], batched[row * 10 + k]] {
                let diff = (got - expected).abs();
                worst = worst.max(diff);
                assert!(diff <= TOLERANCE, "{kind}: {} logit {k}: got {got}, numpy {expected}", item.name);
            }
        }
        if let Some(label) = item.label {
            assert_eq!(argmax(&single), label, "{kind}: {} misclassified", item.name);
        }
    }
    eprintln!("{kind}: {} items, worst |logit - numpy| = {worst:e}", reference.items.len());
}

#[test]
fn flex_matches_numpy_reference() {
    check_against_reference(BackendKind::Cpu);
}

#[test]
fn wgpu_matches_numpy_reference() {
    check_against_reference(BackendKind::WebGpu);
}

fn assert_invalid_weights(bytes: &[u8], what: &str) {
    match Session::<Mnist>::load_on(bytes, Device::flex(), BackendKind::Cpu) {
        Ok(_) => panic!("{what}: loaded"),
        Err(err) => assert_eq!(err.code(), ErrorCode::InvalidWeights, "{what}: {err}"),
    }
}

#[test]
fn truncated_weights_are_rejected_without_panicking() {
    let good = weights();
    for cut in [0, 1, 7, 8, 16, 64, 200, 1000, good.len() / 2, good.len() - 4, good.len() - 1] {
        assert_invalid_weights(&good[..cut], &format!("truncated to {cut} bytes"));
    }
}

#[test]
fn corrupt_headers_and_garbage_are_rejected() {
    let good = weights();
    assert_invalid_weights(b"definitely not a burnpack file", "text");
    assert_invalid_weights(&vec![0u8; 4096], "zeros");
    for pos in 0..64.min(good.len()) {
        let mut bad = good.clone();
        bad[pos] ^= 0xff;
        // A flipped header byte must give an error or (if it hit padding) a valid model, never a panic.
        let _ = Session::<Mnist>::load_on(&bad, Device::flex(), BackendKind::Cpu);
    }
}

#[test]
fn non_finite_weights_are_rejected() {
    let mut bad = weights();
    // The last four bytes are the final value of the last tensor's data; make it NaN.
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let err = Session::<Mnist>::load_on(&bad, Device::flex(), BackendKind::Cpu).unwrap_err();
    assert!(matches!(err, BrasaError::NonFiniteWeights { .. }), "{err}");
}

#[test]
fn weights_of_another_architecture_are_rejected() {
    let device = Device::flex();
    let other = LinearConfig::new(784, 10).init(&device);
    let bytes = other.into_record().into_bytes().unwrap();
    let err = Session::<Mnist>::load_on(&bytes[..], device, BackendKind::Cpu).unwrap_err();
    assert!(matches!(err, BrasaError::ArchitectureMismatch { .. }), "{err}");
    assert!(err.to_string().contains("mnist"), "{err}");
}

/// Same parameter names as MnistNet, other shapes: a checkpoint of a wider variant.
#[derive(brasa::burn::module::Module, Debug)]
struct WiderMnist {
    conv1: brasa::burn::nn::conv::Conv2d,
    conv2: brasa::burn::nn::conv::Conv2d,
    fc1: brasa::burn::nn::Linear,
    fc2: brasa::burn::nn::Linear,
}

#[test]
fn same_names_with_other_shapes_are_rejected() {
    use brasa::burn::nn::conv::Conv2dConfig;
    let device = Device::flex();
    let wider = WiderMnist {
        conv1: Conv2dConfig::new([1, 16], [3, 3]).init(&device),
        conv2: Conv2dConfig::new([16, 64], [3, 3]).init(&device),
        fc1: LinearConfig::new(3136, 256).init(&device),
        fc2: LinearConfig::new(256, 10).init(&device),
    };
    let bytes = wider.into_record().into_bytes().unwrap();
    let err = Session::<Mnist>::load_on(&bytes[..], device, BackendKind::Cpu).unwrap_err();
    assert!(matches!(err, BrasaError::ArchitectureMismatch { .. }), "{err}");
}

#[test]
fn a_session_keeps_working_after_bad_weights_and_bad_input() {
    let mut session = session(BackendKind::Cpu);
    let item = &reference().items[0];
    let before = logits(&session, &item.pixels);

    let good = weights();
    assert!(session.reload(&good[..good.len() / 3]).is_err());
    let bad = |t: HostTensor| session.run_blocking(TensorMap::from([("pixels".to_string(), t)])).unwrap_err();
    for (what, err) in [
        ("empty", bad(HostTensor::new(vec![0, 1, 28, 28], Values::Float32(vec![])))),
        ("short", bad(HostTensor::new(vec![1, 1, 28, 28], Values::Float32(vec![0.5; 783])))),
        ("infinite", bad(HostTensor::new(vec![1, 1, 28, 28], Values::Float32(vec![f32::INFINITY; 784])))),
        ("huge", bad(HostTensor::new(vec![1, 1, 28, 28], Values::Float32(vec![3e38; 784])))),
        ("nhwc", bad(HostTensor::new(vec![1, 28, 28, 1], Values::Float32(vec![0.5; 784])))),
        ("bytes", bad(HostTensor::new(vec![1, 1, 28, 28], Values::Uint8(vec![1; 784])))),
    ] {
        assert_eq!(err.code(), ErrorCode::InvalidInput, "{what}: {err}");
        assert!(err.to_string().contains("pixels"), "{what}: {err}");
    }
    assert!(
        session.run_blocking(TensorMap::new()).unwrap_err().to_string().contains("missing input `pixels`")
    );

    assert_eq!(logits(&session, &item.pixels), before);
    session = session.reload(&good).unwrap();
    assert_eq!(logits(&session, &item.pixels), before);
}

/// This crate's folder. Cargo sets `CARGO_MANIFEST_DIR` at run time too; prefer it to the
/// compile-time value, which is stale when a build cache shared by several clones is reused.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
