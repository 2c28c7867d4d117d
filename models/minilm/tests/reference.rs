//! brasa's MiniLM against the independent numpy reference (float64 forward pass of the same
//! safetensors, ids from Python `tokenizers`), on every native backend; padding and masking;
//! bad input.
//!
//! Needs what `cargo xtask setup` makes: `.cache/models/minilm.bpk` (imported from the
//! safetensors) and `.cache/fixtures/minilm-reference.json`. Point `BRASA_CACHE_DIR`
//! elsewhere to use another copy.

use std::path::PathBuf;

use brasa::{BackendKind, ErrorCode, HostTensor, Session, TensorMap, Values};
use brasa_minilm::MiniLm;
use serde::Deserialize;

/// Lowest cosine similarity to the reference accepted per sentence (the bar).
const MIN_COSINE: f64 = 0.9999;

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<String>,
    ids: Vec<Vec<i64>>,
    embeddings: Vec<Vec<f32>>,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("BRASA_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache"))
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

fn reference() -> Reference {
    serde_json::from_slice(&read("fixtures/minilm-reference.json")).unwrap()
}

fn session(kind: BackendKind) -> Session<MiniLm> {
    pollster::block_on(Session::<MiniLm>::load(&read("models/minilm.bpk"), kind)).expect("weights load")
}

/// Feeds of `rows` padded with 0 to the longest, the mask 1 over each row's tokens.
fn feeds(rows: &[&[i64]]) -> TensorMap {
    let seq = rows.iter().map(|r| r.len()).max().unwrap();
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for row in rows {
        ids.extend(row.iter().copied().chain(std::iter::repeat_n(0, seq - row.len())));
        mask.extend((0..seq).map(|k| i64::from(k < row.len())));
    }
    let dims = vec![rows.len(), seq];
    TensorMap::from([
        ("input_ids".to_string(), HostTensor::new(dims.clone(), Values::Int64(ids))),
        ("attention_mask".to_string(), HostTensor::new(dims, Values::Int64(mask))),
    ])
}

fn embeddings(session: &Session<MiniLm>, rows: &[&[i64]]) -> Vec<Vec<f32>> {
    let out = session.run_blocking(feeds(rows)).unwrap();
    let tensor = &out["embeddings"];
    assert_eq!(tensor.dims, vec![rows.len(), 384]);
    match &tensor.values {
        Values::Float32(v) => v.chunks(384).map(<[f32]>::to_vec).collect(),
        other => panic!("embeddings are {:?}", other.dtype()),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Every sentence in one padded batch (the long one is 256 tokens, most are under 20: most of
/// the batch is padding), then each alone: both within the bar, and the same as each other.
fn check_against_reference(kind: BackendKind) {
    let reference = reference();
    let session = session(kind);
    let rows: Vec<&[i64]> = reference.ids.iter().map(Vec::as_slice).collect();
    let batched = embeddings(&session, &rows);
    let mut worst = 1.0f64;
    let mut max_delta = 0.0f32;
    for (k, sentence) in reference.sentences.iter().enumerate() {
        let alone = &embeddings(&session, &[rows[k]])[0];
        for (name, got) in [("batched", &batched[k]), ("alone", alone)] {
            let c = cosine(got, &reference.embeddings[k]);
            assert!(c >= MIN_COSINE, "{kind} {name}: {sentence:?}: cosine {c} to numpy");
            worst = worst.min(c);
            let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{kind} {name}: {sentence:?}: norm {norm}");
        }
        let delta =
            batched[k].iter().zip(&reference.embeddings[k]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        max_delta = max_delta.max(delta);
    }
    eprintln!("{kind}: worst cosine {worst:.7}, max |Δ| {max_delta:.2e} over {} sentences", rows.len());
}

#[test]
fn flex_matches_numpy_reference() {
    check_against_reference(BackendKind::Cpu);
}

#[test]
fn wgpu_matches_numpy_reference() {
    check_against_reference(BackendKind::WebGpu);
}

/// Related sentences are closer than unrelated ones: the embeddings mean something (numpy's
/// own values are what the test above checks; this is the property users rely on).
#[test]
fn related_sentences_are_closer() {
    let reference = reference();
    let session = session(BackendKind::Cpu);
    let find = |s: &str| reference.sentences.iter().position(|x| x == s).unwrap();
    let rows: Vec<&[i64]> =
        ["A man is eating food.", "A man is eating a piece of bread.", "A monkey is playing drums."]
            .iter()
            .map(|s| reference.ids[find(s)].as_slice())
            .collect();
    let e = embeddings(&session, &rows);
    assert!(cosine(&e[0], &e[1]) > cosine(&e[0], &e[2]) + 0.3);
}

fn run_err(session: &Session<MiniLm>, feeds: TensorMap) -> brasa::BrasaError {
    session.run_blocking(feeds).expect_err("bad input must be refused")
}

/// Out-of-vocabulary ids, masks other than 0/1, ids and mask of different lengths, sequences
/// past 512 positions: refused with `invalid_input` naming the input, and the session still
/// answers afterwards.
#[test]
fn bad_input_is_refused_and_the_session_stays_usable() {
    let session = session(BackendKind::Cpu);
    let good = [101i64, 7592, 102];
    let mut f = feeds(&[&good]);
    f.get_mut("input_ids").unwrap().values = Values::Int64(vec![101, 30522, 102]);
    let err = run_err(&session, f);
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");
    assert!(err.to_string().contains("input_ids"), "{err}");

    let mut f = feeds(&[&good]);
    f.get_mut("attention_mask").unwrap().values = Values::Int64(vec![1, 2, 1]);
    let err = run_err(&session, f);
    assert!(err.to_string().contains("attention_mask"), "{err}");

    let mut f = feeds(&[&good]);
    f.insert("attention_mask".into(), HostTensor::new(vec![1, 2], Values::Int64(vec![1, 1])));
    let err = run_err(&session, f);
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");

    let long = vec![1000i64; 513];
    let err = run_err(&session, feeds(&[&long]));
    assert_eq!(err.code(), ErrorCode::InvalidInput, "{err}");

    assert_eq!(embeddings(&session, &[&good]).len(), 1);
}
