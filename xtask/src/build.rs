use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::paths;
use crate::util::{self, cargo, copy_dir, in_root};

/// The two wasm builds: name (also their folder under `npm/wasm/`) and cargo features.
pub const WASM_BUILDS: [(&str, &str); 2] = [("cpu", "cpu"), ("webgpu", "webgpu")];

/// Native CLI, both wasm builds through wasm-bindgen (and wasm-opt), then the npm package.
pub fn all(opt_webgpu: bool) -> Result<()> {
    util::run(cargo().args(["build", "-p", "brasa-cli"]))?;
    for (name, features) in WASM_BUILDS {
        wasm(name, features, name == "cpu" || opt_webgpu)?;
    }
    util::run(in_root("node").args(["node_modules/typescript/bin/tsc", "-p", "npm/tsconfig.json"]))
}

/// `cargo <subcommand>` of one wasm build of `brasa-wasm`.
fn wasm_cargo(subcommand: &str, features: &str) -> std::process::Command {
    let mut cmd = cargo();
    cmd.args([subcommand, "-p", "brasa-wasm", "--target", "wasm32-unknown-unknown", "--release"]).args([
        "--no-default-features",
        "--features",
        features,
    ]);
    cmd
}

fn wasm(name: &str, features: &str, optimise: bool) -> Result<()> {
    util::run(&mut wasm_cargo("build", features))?;
    let artefact = paths::target_dir().join("wasm32-unknown-unknown/release/brasa_wasm.wasm");
    let out = paths::root().join("npm/wasm").join(name);
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    util::run(
        std::process::Command::new("wasm-bindgen")
            .args(["--target", "web", "--out-dir"])
            .arg(&out)
            .arg(&artefact),
    )?;
    if optimise {
        let wasm = out.join("brasa_wasm_bg.wasm");
        let tmp = out.join("brasa_wasm_bg.opt.wasm");
        // Debian's binaryen (108) emits broken modules; the npm package's wasm-opt is current.
        util::run(
            in_root("node_modules/.bin/wasm-opt")
                .args(["-O3", "--strip-debug", "--strip-producers"])
                .args(WASM_FEATURES)
                .arg(&wasm)
                .arg("-o")
                .arg(&tmp),
        )?;
        std::fs::rename(&tmp, &wasm)?;
    }
    Ok(())
}

/// The features rustc's wasm32 target emits (plus simd128, which brasa turns on).
const WASM_FEATURES: [&str; 7] = [
    "--enable-simd",
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// Assemble the demo site: the page, the npm package as the page imports it, the weights,
/// and a registry the page follows. The registry survives rebuilds, so channel moves made
/// with `brasa registry --registry .cache/site/registry …` stay.
pub fn site() -> Result<PathBuf> {
    let root = paths::root();
    let site = paths::local_cache().join("site");
    if site.exists() {
        for entry in std::fs::read_dir(&site)? {
            let path = entry?.path();
            if path.file_name() == Some("registry".as_ref()) {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    copy_dir(&root.join("web"), &site)?;
    copy_dir(&root.join("npm/dist"), &site.join("brasa/dist"))?;
    copy_dir(&root.join("npm/wasm"), &site.join("brasa/wasm"))?;
    std::fs::create_dir_all(site.join("models"))?;
    std::fs::copy(paths::mnist_weights(), site.join("models/mnist.bpk"))
        .context("weights missing: run `cargo xtask setup`")?;
    demo_registry(&site.join("registry"))?;
    Ok(site)
}

/// 1.0.0 (ccexam's weights) on `stable`, 1.1.0 (recalibrated) on `canary`, published once.
fn demo_registry(registry: &Path) -> Result<()> {
    if registry.join("mnist/manifest.json").exists() {
        return Ok(());
    }
    let cli = paths::target_dir().join("debug/brasa");
    let versions = [
        ("1.0.0", paths::mnist_weights(), "stable", "ccexam MNISTNet, imported from PyTorch"),
        ("1.1.0", paths::mnist_variant_weights(), "canary", "output layer recalibrated (×1.25)"),
    ];
    for (version, weights, channel, notes) in versions {
        util::run(
            Command::new(&cli)
                .args(["registry", "--registry"])
                .arg(registry)
                .args(["publish", "--version", version, "--weights"])
                .arg(weights)
                .args(["--channel", channel, "--notes", notes]),
        )?;
    }
    Ok(())
}

/// Every test suite, in order of cost.
pub fn test() -> Result<()> {
    util::run(cargo().args(["fmt", "--all", "--check"]))?;
    util::run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "brasa-wasm",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    for (_, features) in WASM_BUILDS {
        util::run(wasm_cargo("clippy", features).args(["--", "-D", "warnings"]))?;
    }
    util::run(cargo().args(["test", "--workspace", "--exclude", "brasa-wasm"]))?;
    let node_tests = |dir: &str| {
        let mut cmd = in_root("node");
        cmd.args(["--test", "--test-concurrency=1"]);
        for entry in std::fs::read_dir(paths::root().join(dir)).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.to_string_lossy().ends_with(".test.mjs") {
                cmd.arg(path);
            }
        }
        cmd.env("BRASA_CACHE_DIR", paths::local_cache())
            .env("BRASA_CLI", paths::target_dir().join("debug/brasa"));
        cmd
    };
    // The benchmark harness, in smoke mode, so it cannot rot. Timings are never asserted.
    bench(true)?;
    util::run(&mut node_tests("tests/node"))?;
    util::run(&mut node_tests("tests/deno"))?;
    util::run(&mut node_tests("tests/serving"))?;
    util::run(&mut node_tests("tests/browser"))
}

/// The benchmarks: brasa against onnxruntime-web and TF.js (bench/compare.mjs), brasa's
/// own latency and load times on the demo page, then (full runs) the endpoint benchmark,
/// whose harness the endpoint test suite already exercises in CI.
pub fn bench(smoke: bool) -> Result<()> {
    // SqueezeNet's native latency comes from an example (the CLI cannot depend on the crate).
    util::run(cargo().args(["build", "-p", "brasa-squeezenet", "--example", "squeezenet_latency"]))?;
    let mut scripts = vec!["bench/compare.mjs", "bench/browser-latency.mjs"];
    if !smoke {
        scripts.push("bench/serving.mjs");
    }
    for script in scripts {
        let mut cmd = in_root("node");
        cmd.arg(script)
            .env("BRASA_CACHE_DIR", paths::local_cache())
            .env("BRASA_CLI", paths::target_dir().join("debug/brasa"))
            .env("BRASA_SQUEEZENET_BENCH", paths::target_dir().join("debug/examples/squeezenet_latency"));
        if smoke {
            cmd.arg("--smoke");
        }
        util::run(&mut cmd)?;
    }
    Ok(())
}
