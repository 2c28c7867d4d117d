//! The `brasa` binary end to end: import ccexam's PyTorch weights with a mapping file,
//! inspect them, and refuse bad files and bad build requests with a non-zero exit.

use std::path::PathBuf;
use std::process::{Command, Output};

fn cache() -> PathBuf {
    std::env::var_os("BRASA_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../.cache"))
}

fn brasa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brasa")).args(args).output().expect("brasa runs")
}

fn pth() -> PathBuf {
    let path = cache().join("ccexam/ccexam/weights/mnist.pth");
    assert!(path.exists(), "{} missing: run `cargo xtask setup`", path.display());
    path
}

#[test]
fn import_with_a_mapping_and_inspect() {
    let dir = std::env::temp_dir().join(format!("brasa-cli-test-{}", std::process::id()));
    let out = dir.join("mnist.bpk");
    let map = manifest_dir().join("../../models/mnist/import.toml");
    let import = brasa(&[
        "import",
        pth().to_str().unwrap(),
        "--map",
        map.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    assert!(String::from_utf8_lossy(&import.stdout).contains("421642 parameters"));

    let inspect = brasa(&["inspect", out.to_str().unwrap()]);
    assert!(inspect.status.success());
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("fc1.weight       [3136, 128]"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn build_refuses_what_is_not_a_model_crate() {
    let dir = std::env::temp_dir().join(format!("brasa-cli-build-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let out = dir.join("pkg");
    let none = brasa(&["build", dir.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no Cargo.toml"));
    // A crate that does not say which type to serve.
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    let plain = brasa(&["build", dir.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!plain.status.success());
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(stderr.contains("[package.metadata.brasa]"), "{stderr}");
    assert!(!out.exists(), "a failed build leaves no package");
    let backend =
        brasa(&["build", dir.to_str().unwrap(), "--out", out.to_str().unwrap(), "--backend", "tpu"]);
    assert!(String::from_utf8_lossy(&backend.stderr).contains("unknown backend `tpu`"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_files_fail_with_a_message_and_a_non_zero_exit() {
    let dir = std::env::temp_dir().join(format!("brasa-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.bpk");
    std::fs::write(&junk, b"not weights at all").unwrap();
    let inspect = brasa(&["inspect", junk.to_str().unwrap()]);
    assert!(!inspect.status.success());
    assert!(String::from_utf8_lossy(&inspect.stderr).contains("could not be decoded"));

    let import = brasa(&["import", junk.to_str().unwrap(), "-o", dir.join("x.bpk").to_str().unwrap()]);
    assert!(!import.status.success());
    assert!(!dir.join("x.bpk").exists(), "a failed import leaves no output");

    let junk_onnx = dir.join("junk.onnx");
    std::fs::write(&junk_onnx, b"not a graph").unwrap();
    let onnx =
        brasa(&["import-onnx", junk_onnx.to_str().unwrap(), "--out", dir.join("gen").to_str().unwrap()]);
    assert!(!onnx.status.success());
    let stderr = String::from_utf8_lossy(&onnx.stderr);
    assert!(stderr.contains("burn-onnx could not import") && stderr.contains("Invalid ONNX"), "{stderr}");
    assert!(!stderr.contains("panicked"), "the panic is reported as an error: {stderr}");
    assert!(!dir.join("gen/junk.rs").exists());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn registry_publish_promote_rollback_verify() {
    let dir = std::env::temp_dir().join(format!("brasa-registry-test-{}", std::process::id()));
    let reg = dir.join("registry");
    let weights = cache().join("models/mnist.bpk");
    let r = reg.to_str().unwrap();
    let w = weights.to_str().unwrap();
    let golden = cache().join("fixtures/mnist-golden-1.0.0.json");
    let g = golden.to_str().unwrap();
    let ok = |args: &[&str]| {
        let out = brasa(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&[
        "registry",
        "--registry",
        r,
        "publish",
        "--model",
        "mnist",
        "--version",
        "1.0.0",
        "--weights",
        w,
        "--golden",
        g,
        "--channel",
        "stable",
    ]);
    ok(&[
        "registry",
        "--registry",
        r,
        "publish",
        "--model",
        "mnist",
        "--version",
        "1.1.0",
        "--weights",
        w,
        "--no-golden",
        "--channel",
        "canary",
    ]);
    ok(&[
        "registry",
        "--registry",
        r,
        "promote",
        "--model",
        "mnist",
        "--channel",
        "stable",
        "--version",
        "1.1.0",
    ]);
    assert!(
        ok(&["registry", "--registry", r, "rollback", "--model", "mnist", "--channel", "stable"])
            .contains("rolled back to 1.0.0")
    );

    let manifest = std::fs::read(reg.join("mnist/manifest.json")).unwrap();
    let manifest = brasa_registry::Manifest::from_json(&manifest).unwrap();
    assert_eq!(manifest.channels["stable"].version.to_string(), "1.0.0");
    assert_eq!(manifest.history.len(), 4);
    let golden = manifest.versions.values().next().unwrap().golden.as_ref().unwrap();
    assert_eq!(golden.inputs[0].name, "pixels");
    assert_eq!(golden.inputs[0].data.len(), 784);
    assert_eq!(golden.outputs[0].data.len(), 10);
    assert!(manifest.versions.values().nth(1).unwrap().golden.is_none());
    // A golden check must come from somewhere: neither --golden nor --no-golden is an error.
    assert!(
        !brasa(&[
            "registry",
            "--registry",
            r,
            "publish",
            "--model",
            "mnist",
            "--version",
            "2.0.0",
            "--weights",
            w
        ])
        .status
        .success()
    );

    // Versions are immutable.
    assert!(
        !brasa(&[
            "registry",
            "--registry",
            r,
            "publish",
            "--model",
            "mnist",
            "--version",
            "1.0.0",
            "--weights",
            w,
            "--no-golden"
        ])
        .status
        .success()
    );
    assert!(ok(&["registry", "--registry", r, "verify"]).contains("verified 2 files"));

    // Tampering is caught, with a non-zero exit.
    let file = reg.join("mnist").join(&manifest.versions.values().next().unwrap().files[0].path);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let verify = brasa(&["registry", "--registry", r, "verify"]);
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stderr).contains("integrity check failed"));
    std::fs::remove_dir_all(dir).ok();
}

/// This crate's folder. Cargo sets `CARGO_MANIFEST_DIR` at run time too; prefer it to the
/// compile-time value, which is stale when a build cache shared by several clones is reused.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A golden check whose outputs do not name an independent reference is refused unless
/// `--self-golden` says so knowingly; with it and no outputs, the package computes them.
#[test]
fn a_golden_from_brasa_itself_needs_self_golden() {
    let dir = std::env::temp_dir().join(format!("brasa-self-golden-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let reg = dir.join("registry");
    let r = reg.to_str().unwrap();
    let weights = cache().join("models/mnist.bpk");
    let package = cache().join("packages/mnist");
    assert!(package.join("cpu/model.js").exists(), "{} missing: run `cargo xtask build`", package.display());
    let numpy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache().join("fixtures/mnist-golden-1.0.0.json")).unwrap())
            .unwrap();
    let write = |name: &str, golden: serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(&path, golden.to_string()).unwrap();
        path
    };
    let unnamed = write(
        "unnamed.json",
        serde_json::json!({ "inputs": numpy["inputs"], "outputs": numpy["outputs"], "tolerance": 1e-4 }),
    );
    let inputs_only = write("inputs.json", serde_json::json!({ "inputs": numpy["inputs"] }));
    let publish = |version: &str, golden: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "registry",
            "--registry",
            r,
            "publish",
            "--model",
            "mnist",
            "--version",
            version,
            "--weights",
            weights.to_str().unwrap(),
            "--build",
            package.to_str().unwrap(),
            "--golden",
            golden.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        brasa(&args)
    };

    let refused = publish("1.0.0", &unnamed, &[]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("independent") && why.contains("--self-golden"), "{why}");
    let refused = publish("1.0.0", &inputs_only, &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("outputs"));

    let computed = publish("1.0.0", &inputs_only, &["--self-golden"]);
    let stderr = String::from_utf8_lossy(&computed.stderr);
    assert!(computed.status.success(), "{stderr}");
    assert!(stderr.contains("warning") && stderr.contains("computed by brasa itself"), "{stderr}");
    let manifest =
        brasa_registry::Manifest::from_json(&std::fs::read(reg.join("mnist/manifest.json")).unwrap())
            .unwrap();
    let golden = manifest.versions.values().next().unwrap().golden.clone().unwrap();
    assert!(golden.source.contains("self-computed"), "{}", golden.source);
    // brasa's own outputs agree with numpy's: the computation is the real one.
    let want: Vec<f64> = serde_json::from_value(numpy["outputs"][0]["data"].clone()).unwrap();
    let got = &golden.outputs[0].data;
    assert_eq!(got.len(), want.len());
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-4), "{got:?} vs {want:?}");
    std::fs::remove_dir_all(dir).ok();
}
