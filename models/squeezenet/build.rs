//! Points the crate at the burn module `brasa import-onnx` generated from the ONNX graph.
//!
//! `cargo xtask setup` writes the graph (`bench/export_squeezenet.py`) and runs
//! `brasa import-onnx` on it into `.cache/models/squeezenet/`; `BRASA_SQUEEZENET_RS` names
//! another generated file. Generating here instead would make burn-onnx a build dependency,
//! which compiles burn a second time for the host (~10 minutes cold on 2 cores).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=BRASA_SQUEEZENET_RS");
    let source = std::env::var_os("BRASA_SQUEEZENET_RS").map(PathBuf::from).unwrap_or_else(|| {
        let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
        manifest.join("../../.cache/models/squeezenet/squeezenet.rs")
    });
    println!("cargo:rerun-if-changed={}", source.display());
    let source = source.canonicalize().unwrap_or_else(|_| {
        panic!(
            "{} is missing: run `cargo xtask setup` (it generates it with `brasa import-onnx`)",
            source.display()
        )
    });
    println!("cargo:rustc-env=BRASA_SQUEEZENET_RS={}", source.display());
}
