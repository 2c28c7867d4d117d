//! The imported graph against onnx's reference evaluator (numpy), natively on burn-flex.

use brasa::{BackendKind, HostTensor, Session, TensorMap, Values};
use brasa_squeezenet::{CHANNELS, CLASSES, IMAGE_SIDE, INPUT, OUTPUT, SqueezeNet as Squeezenet};

#[derive(serde::Deserialize)]
struct Reference {
    inputs: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
    top1: Vec<usize>,
}

fn models_dir() -> std::path::PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from).expect("run by cargo");
    manifest.join("../../.cache/models/squeezenet")
}

#[test]
fn matches_onnx_reference_evaluator() {
    let dir = models_dir();
    let reference: Reference = serde_json::from_slice(
        &std::fs::read(dir.join("squeezenet-reference.json")).expect("run cargo xtask setup"),
    )
    .expect("reference JSON");
    let weights = std::fs::read(dir.join("squeezenet.bpk")).expect("run cargo xtask setup");
    let session = pollster::block_on(Session::<Squeezenet>::load(&weights, BackendKind::Cpu)).expect("loads");
    let batch: Vec<f32> = reference.inputs.concat();
    let n = reference.inputs.len();
    let feeds = TensorMap::from([(
        INPUT.to_string(),
        HostTensor::new(vec![n, CHANNELS, IMAGE_SIDE, IMAGE_SIDE], Values::Float32(batch)),
    )]);
    let out = pollster::block_on(session.run(feeds)).expect("runs");
    assert_eq!(out[OUTPUT].dims, vec![n, CLASSES]);
    let probabilities = out[OUTPUT].values.to_f32();
    let expected = reference.outputs.concat();
    let worst = probabilities.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "largest difference from the reference: {worst}");
    for (row, top1) in reference.top1.iter().enumerate() {
        let scores = &probabilities[row * CLASSES..(row + 1) * CLASSES];
        let best = (0..CLASSES).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        assert_eq!(best, *top1);
    }
}
