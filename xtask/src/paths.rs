//! Where things live. Build outputs and downloads stay out of the clone (and so survive it)
//! in `~/.cache/brasa` unless `BRASA_CACHE_HOME` says otherwise; per-clone artefacts
//! (imported weights, reference data, the assembled site) live in the clone's `.cache/`.

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    manifest_dir().parent().expect("xtask is inside the workspace").to_path_buf()
}

/// Shared cache outside the clone: cargo target dir, venv, downloads.
pub fn home_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("BRASA_CACHE_HOME") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("brasa")
}

/// Cargo's target dir for everything xtask builds.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| home_cache().join("target"))
}

/// The clone's own cache: weights, fixtures, the assembled site.
pub fn local_cache() -> PathBuf {
    root().join(".cache")
}

/// The Python virtual environment for the reference computation.
pub fn venv() -> PathBuf {
    home_cache().join("venv")
}

/// Imported burnpack weights of the default model.
pub fn mnist_weights() -> PathBuf {
    local_cache().join("models").join("mnist.bpk")
}

/// The recalibrated MNIST weights: version 1.1.0 in the registry tests.
pub fn mnist_variant_weights() -> PathBuf {
    local_cache().join("models").join("mnist-recalibrated.bpk")
}

/// The golden check (numpy) of an MNIST registry version.
pub fn mnist_golden(version: &str) -> PathBuf {
    local_cache().join("fixtures").join(format!("mnist-golden-{version}.json"))
}

/// Model packages `brasa build` makes for the tests, demo and benchmarks.
pub fn packages() -> PathBuf {
    local_cache().join("packages")
}

/// The SqueezeNet graph, its generated burn module, weights and reference outputs.
pub fn squeezenet_dir() -> PathBuf {
    local_cache().join("models").join("squeezenet")
}

/// all-MiniLM-L6-v2's files: safetensors, tokenizer.json, configs.
pub fn minilm_dir() -> PathBuf {
    local_cache().join("models").join("minilm")
}

/// The unpacked ccexam wheel.
pub fn ccexam() -> PathBuf {
    local_cache().join("ccexam")
}

/// This crate's folder. Cargo sets `CARGO_MANIFEST_DIR` at run time too; prefer it to the
/// compile-time value, which is stale when a build cache shared by several clones is reused.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
