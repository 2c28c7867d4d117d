use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::paths;
use crate::util::{self, cargo, copy_dir, in_root};

/// The wasm builds of `brasa-wasm` clippy checks (its features; the threaded build's `threads`
/// needs atomics, which only `brasa build`'s own recipe turns on).
pub const WASM_BUILDS: [&str; 2] = ["cpu", "webgpu"];

/// The CPU variants (relaxed SIMD, threads), built for a few packages only: the threaded builds
/// compile burn again (with atomics, and the standard library with them), a relaxed-SIMD
/// build recompiles brasa's crates. The three benchmark models (MNIST, SqueezeNet, PP-OCRv4
/// det) and SqueezeNet from ONNX carry them in every flavour, for the tests and the
/// benchmarks; once the dependencies are compiled, each variant of a package links in seconds.
const VARIANTS: &str = "cpu-relaxed,cpu-threads,cpu-threads-relaxed";

/// The model packages the demo, tests and benchmarks use: package name, model crate and
/// builds.
pub const MODELS: [(&str, &str, &str); 4] = [
    ("mnist", "models/mnist", "cpu,webgpu,+"),
    ("squeezenet", "models/squeezenet", "cpu,webgpu,+"),
    ("minilm", "models/minilm", "cpu,webgpu"),
    ("two-heads", "tests/fixtures/two-heads", "cpu,webgpu"),
];

/// Packages `brasa build --onnx` makes straight from an ONNX file: package name, graph
/// (relative to the clone's `.cache/`) and builds. SqueezeNet's WebGPU build is the crate's.
/// (`+`: and [`VARIANTS`].)
pub const ONNX_MODELS: [(&str, &str, &str); 3] = [
    ("squeezenet-onnx", "models/squeezenet/squeezenet.onnx", "cpu,+"),
    ("ocr-det", "models/ocr-det.onnx", "cpu,webgpu,+"),
    ("silero-vad", "models/silero-vad.onnx", "cpu,webgpu"),
];

/// `--backend` of a package: its builds, `+` standing for [`VARIANTS`].
fn backends(list: &str) -> String {
    list.replace('+', VARIANTS)
}

/// How the model packages are built.
#[derive(Clone, Copy)]
pub struct Flavour {
    /// Which builds wasm-opt optimises: `none` (semantics are the same; it saves about a
    /// minute per model), `cpu` (the demo, benchmarks) or `all` (as shipped).
    pub opt: &'static str,
    /// `brasa build --profile`: `test` (no LTO: a change to brasa re-links every package in
    /// seconds rather than minutes) or `release` (as shipped).
    pub profile: &'static str,
}

impl Flavour {
    /// What the test suites run: same numerics, built fast.
    pub const TEST: Flavour = Flavour { opt: "none", profile: "test" };
    /// The demo: release builds, the CPU one optimised.
    pub const DEMO: Flavour = Flavour { opt: "cpu", profile: "release" };
    /// As shipped: every build optimised.
    pub const SHIPPED: Flavour = Flavour { opt: "all", profile: "release" };
}

/// Native CLI, the model packages (`brasa build`, into `.cache/packages`), then the npm
/// package. `brasa build` caches each flavour's packages by key, so switching between the
/// demo and the tests copies folders and rebuilds nothing.
pub fn all(flavour: Flavour) -> Result<()> {
    util::run(cargo().args(["build", "-p", "brasa-cli"]))?;
    let cli = paths::target_dir().join("debug/brasa");
    let brasa_build = |out: &str| {
        let mut cmd = Command::new(&cli);
        cmd.arg("build")
            .args(["--opt", flavour.opt, "--profile", flavour.profile, "--out"])
            .arg(paths::packages().join(out))
            .env("BRASA_SOURCE", paths::root())
            .env("CARGO_TARGET_DIR", paths::target_dir());
        cmd
    };
    for (name, dir, builds) in MODELS {
        util::run(brasa_build(name).arg(paths::root().join(dir)).args(["--backend", &backends(builds)]))?;
    }
    for (name, onnx, builds) in ONNX_MODELS {
        util::run(brasa_build(name).arg("--onnx").arg(paths::local_cache().join(onnx)).args([
            "--name",
            name,
            "--backend",
            &backends(builds),
        ]))?;
    }
    util::run(in_root("node").args(["node_modules/typescript/bin/tsc", "-p", "npm/tsconfig.json"]))?;
    vendor()?;
    core()
}

/// Copy `wasm-feature-detect` (pinned in package.json) beside the package's modules, which
/// import it by a relative URL: pages without a bundler or an import map load it as they are.
fn vendor() -> Result<()> {
    let dir = paths::root().join("npm/dist/vendor");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(
        paths::root().join("node_modules/wasm-feature-detect/dist/esm/index.js"),
        dir.join("wasm-feature-detect.js"),
    )
    .context("wasm-feature-detect missing: run `cargo xtask setup` (npm install)")?;
    Ok(())
}

/// The npm package's core module (`npm/dist/core/`): the registry logic alone, which a client
/// without a bundled build uses to find and load a model's code in a registry.
fn core() -> Result<()> {
    util::run(cargo().args([
        "rustc",
        "-p",
        "brasa-wasm-core",
        "--target",
        "wasm32-unknown-unknown",
        "--release",
        "--crate-type",
        "cdylib",
    ]))?;
    let wasm = paths::target_dir().join("wasm32-unknown-unknown/release/brasa_wasm_core.wasm");
    util::run(
        Command::new("wasm-bindgen")
            .args(["--target", "web", "--out-name", "brasa_core", "--out-dir"])
            .arg(paths::root().join("npm/dist/core"))
            .arg(wasm),
    )
}

/// `cargo <subcommand>` of one wasm build of `brasa-wasm` (the bindings library).
fn wasm_cargo(subcommand: &str, features: &str) -> std::process::Command {
    let mut cmd = cargo();
    cmd.args([subcommand, "-p", "brasa-wasm", "--target", "wasm32-unknown-unknown", "--release"]).args([
        "--no-default-features",
        "--features",
        features,
    ]);
    cmd
}

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
    copy_dir(&paths::packages(), &site.join("packages"))
        .context("model packages missing: run `cargo xtask build`")?;
    std::fs::create_dir_all(site.join("models"))?;
    std::fs::copy(paths::mnist_weights(), site.join("models/mnist.bpk"))
        .context("weights missing: run `cargo xtask setup`")?;
    // all-MiniLM-L6-v2: weights, tokenizer, and the tokenizer library the text tasks import
    // (pages map `@huggingface/tokenizers` to it).
    std::fs::copy(paths::local_cache().join("models/minilm.bpk"), site.join("models/minilm.bpk"))
        .context("MiniLM weights missing: run `cargo xtask setup`")?;
    std::fs::create_dir_all(site.join("models/minilm"))?;
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(paths::minilm_dir().join(file), site.join("models/minilm").join(file))?;
    }
    let vendor = site.join("vendor/@huggingface/tokenizers");
    std::fs::create_dir_all(&vendor)?;
    std::fs::copy(
        root.join("node_modules/@huggingface/tokenizers/dist/tokenizers.min.mjs"),
        vendor.join("tokenizers.min.mjs"),
    )
    .context("@huggingface/tokenizers missing: run `cargo xtask setup` (npm install)")?;
    std::fs::create_dir_all(site.join("fixtures"))?;
    for file in ["two-heads.bpk", "two-heads-reference.json", "minilm-reference.json"] {
        std::fs::copy(paths::local_cache().join("fixtures").join(file), site.join("fixtures").join(file))?;
    }
    demo_registry(&site.join("registry"))?;
    Ok(site)
}

/// MNIST: 1.0.0 (ccexam's weights) on `stable`, 1.1.0 (recalibrated) on `canary`; MiniLM:
/// 1.0.0 on `stable`. Each model published once
/// (again when the manifest's schema is older than the CLI's).
fn demo_registry(registry: &Path) -> Result<()> {
    let cli = paths::target_dir().join("debug/brasa");
    let mnist = [
        (
            "1.0.0",
            paths::mnist_weights(),
            paths::mnist_golden("1.0.0"),
            "stable",
            "ccexam MNISTNet, imported from PyTorch",
        ),
        (
            "1.1.0",
            paths::mnist_variant_weights(),
            paths::mnist_golden("1.1.0"),
            "canary",
            "output layer recalibrated (×1.25)",
        ),
    ];
    let minilm = [(
        "1.0.0",
        paths::local_cache().join("models/minilm.bpk"),
        paths::local_cache().join("fixtures/minilm-golden.json"),
        "stable",
        "sentence-transformers all-MiniLM-L6-v2, imported from safetensors",
    )];
    // MiniLM ships its code, tokenizer and q8 weights with the version: the similarity page
    // loads it from the registry alone (no package import), q8 by default (the smallest).
    let tokenizer = paths::minilm_dir().join("tokenizer.json");
    let tokenizer_config = paths::minilm_dir().join("tokenizer_config.json");
    let minilm_extra = [
        "--code".to_string(),
        "--dtype".into(),
        "f32,q8".into(),
        "--asset".into(),
        format!("tokenizer={}", tokenizer.display()),
        "--asset".into(),
        format!("tokenizer_config={}", tokenizer_config.display()),
    ];
    let models: [(&str, &[_], &[String]); 2] =
        [("mnist", &mnist[..], &[]), ("minilm", &minilm[..], &minilm_extra)];
    for (model, versions, extra) in models {
        if let Ok(text) = std::fs::read(registry.join(model).join("manifest.json")) {
            if brasa_registry::Manifest::from_json(&text).is_ok() {
                continue;
            }
            std::fs::remove_dir_all(registry.join(model))?;
        }
        for (version, weights, golden, channel, notes) in versions {
            util::run(
                Command::new(&cli)
                    .args(["registry", "--registry"])
                    .arg(registry)
                    .args(["publish", "--model", model, "--version", version, "--weights"])
                    .arg(weights)
                    .arg("--golden")
                    .arg(golden)
                    .arg("--build")
                    .arg(paths::packages().join(model))
                    .args(["--channel", channel, "--notes", notes])
                    .args(extra),
            )?;
        }
    }
    Ok(())
}

/// Every test suite, in order of cost.
pub fn test() -> Result<()> {
    util::run(cargo().args(["fmt", "--all", "--check"]))?;
    util::run(cargo().args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"]))?;
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
    // Both backends in one check: one compilation of burn for wasm32 instead of two.
    util::run(wasm_cargo("clippy", &WASM_BUILDS.join(",")).args(["--", "-D", "warnings"]))?;
    util::run(cargo().args(["test", "--workspace", "--exclude", "brasa-wasm"]))?;
    // brasa's kernels split across rayon's pool, as the threaded wasm builds run them.
    util::run(cargo().args(["test", "-p", "brasa", "--lib", "--features", "threads"]))?;
    // A short fuzz run: the targets still build, and the seeds and a few seconds of mutations
    // pass every target's checks (the long runs are `cargo xtask fuzz`).
    crate::fuzz::run(&[], crate::fuzz::CI_SECONDS, 2048)?;
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
            .env("BRASA_CLI", paths::target_dir().join("debug/brasa"))
            // The venv's Python (tritonclient, onnx): found wherever BRASA_CACHE_HOME put it.
            .env("BRASA_PYTHON", crate::setup::python());
        cmd
    };
    // The benchmark harness, in smoke mode, so it cannot rot. Timings are never asserted.
    bench(true, &[])?;
    util::run(&mut node_tests("tests/node"))?;
    util::run(&mut node_tests("tests/deno"))?;
    util::run(&mut node_tests("tests/serving"))?;
    util::run(&mut node_tests("tests/browser"))
}

/// The benchmarks: brasa against onnxruntime-web and TF.js (bench/compare.mjs), brasa's
/// CPU build against onnxruntime-web on the ONNX files of `ONNX_MODELS`
/// (bench/onnx-models.mjs), brasa against Transformers.js on all-MiniLM-L6-v2, text in and
/// embeddings out (bench/text.mjs), brasa's own latency and load times on the demo page, then (full
/// runs) the endpoint benchmark, whose harness the endpoint test suite already exercises in CI,
/// and last the soak (`soak`). `only`: just the benchmarks named (see [`BENCH_SCRIPTS`]).
pub fn bench(smoke: bool, only: &[String]) -> Result<()> {
    if let Some(unknown) = only.iter().find(|name| !BENCH_SCRIPTS.contains(&name.as_str())) {
        anyhow::bail!("no benchmark `{unknown}`; there are {}", BENCH_SCRIPTS.join(", "));
    }
    // All of them but the endpoint benchmark in smoke runs, or those named.
    let chosen = |name: &str| {
        if only.is_empty() { !(smoke && name == "serving") } else { only.iter().any(|o| o == name) }
    };
    if chosen("compare") {
        // Native latency comes from the model crates' examples, for the wasm/native ratio. Built
        // with the package selection of the workspace's tests, so cargo unifies the same features
        // and reuses their build: `-p brasa-squeezenet --example …` alone compiled burn, cubecl and
        // wgpu natively a second time (seven minutes of a cold CI run).
        util::run(cargo().args(["build", "--workspace", "--exclude", "brasa-wasm", "--examples"]))?;
    }
    for name in BENCH_SCRIPTS.into_iter().filter(|name| chosen(name)) {
        if name == "soak" {
            soak(smoke)?;
        } else {
            bench_script(&format!("bench/{name}.mjs"), smoke)?;
        }
    }
    Ok(())
}

/// The benchmarks (`bench/<name>.mjs`) in the order `cargo xtask bench` runs them; `--only`
/// names some of them.
pub const BENCH_SCRIPTS: [&str; 6] = ["compare", "onnx-models", "text", "browser-latency", "serving", "soak"];

/// The soak (bench/soak.mjs): 100,000 runs with model swaps, update checks and bad inputs,
/// then the Node endpoint under load for 10 minutes; memory curves in bench/soak-results.md.
/// `smoke`: 200 runs and 10 s of load (results in bench/out/ only), so it cannot rot.
pub fn soak(smoke: bool) -> Result<()> {
    bench_script("bench/soak.mjs", smoke)
}

fn bench_script(script: &str, smoke: bool) -> Result<()> {
    let mut cmd = in_root("node");
    cmd.arg(script)
        .env("BRASA_CACHE_DIR", paths::local_cache())
        .env("BRASA_CLI", paths::target_dir().join("debug/brasa"))
        .env("BRASA_SQUEEZENET_BENCH", paths::target_dir().join("debug/examples/squeezenet_latency"))
        .env("BRASA_MNIST_BENCH", paths::target_dir().join("debug/examples/mnist_latency"));
    if smoke {
        cmd.arg("--smoke");
    }
    util::run(&mut cmd)
}
