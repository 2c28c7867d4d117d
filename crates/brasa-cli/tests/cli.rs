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
    assert!(String::from_utf8_lossy(&backend.stderr).contains("unknown build `tpu`"));
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

/// A fresh scratch folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("brasa-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `publish --build` checks what it publishes before it writes anything: the weights load in
/// the package's CPU build (weights of another model are `invalid_weights`), the golden check
/// passes on them (judged by the registry's own golden logic), its outputs fit the signature,
/// and its tolerance is sane.
#[test]
fn publish_with_build_checks_the_weights_and_the_golden() {
    let dir = scratch("publish-checks");
    let reg = dir.join("registry");
    let r = reg.to_str().unwrap();
    let package = cache().join("packages/mnist");
    assert!(package.join("cpu/model.js").exists(), "{} missing: run `cargo xtask build`", package.display());
    let mnist = cache().join("models/mnist.bpk");
    let recalibrated = cache().join("models/mnist-recalibrated.bpk");
    let two_heads = cache().join("fixtures/two-heads.bpk");
    let golden_path = cache().join("fixtures/mnist-golden-1.0.0.json");
    let numpy: serde_json::Value = serde_json::from_slice(&std::fs::read(&golden_path).unwrap()).unwrap();
    let write = |name: &str, golden: serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(&path, golden.to_string()).unwrap();
        path
    };
    let publish =
        |version: &str, weights: &std::path::Path, golden: Option<&std::path::Path>, extra: &[&str]| {
            let mut args =
                vec!["registry", "--registry", r, "publish", "--model", "mnist", "--version", version];
            args.extend(["--weights", weights.to_str().unwrap(), "--build", package.to_str().unwrap()]);
            if let Some(golden) = golden {
                args.extend(["--golden", golden.to_str().unwrap()]);
            }
            args.extend_from_slice(extra);
            brasa(&args)
        };
    let refused = |out: Output, what: &[&str]| {
        let why = stderr(&out);
        assert!(!out.status.success(), "published although {what:?} should refuse it: {why}");
        for w in what {
            assert!(why.contains(w), "`{w}` not in: {why}");
        }
        assert!(!reg.join("mnist/manifest.json").exists(), "a refused publish wrote a manifest");
    };

    // Weights of another model (the two-heads fixture) are refused by the model itself.
    refused(publish("1.0.0", &two_heads, Some(&golden_path), &[]), &["invalid_weights", "CPU build"]);
    refused(publish("1.0.0", &two_heads, None, &["--no-golden"]), &["invalid_weights"]);
    // Valid MNIST weights that fail the golden check given (1.0.0's, on 1.1.0's weights): by
    // how much, and where.
    refused(
        publish("1.0.0", &recalibrated, Some(&golden_path), &[]),
        &["golden check", "output `logits` element", "tolerance 1e-3"],
    );
    // Output dims that do not fit the signature (11 logits).
    let mut eleven = numpy.clone();
    eleven["outputs"][0]["dims"] = serde_json::json!([1, 11]);
    eleven["outputs"][0]["data"].as_array_mut().unwrap().push(serde_json::json!(0.0));
    refused(publish("1.0.0", &mnist, Some(&write("eleven.json", eleven)), &[]), &["`logits`", "[1, 11]"]);
    // Absurd tolerances: infinite (1e39 overflows f32), negative, or loose enough to accept
    // anything; only the last can be forced.
    for (name, tolerance) in [("inf", serde_json::json!(1e39)), ("negative", serde_json::json!(-1))] {
        let mut bad = numpy.clone();
        bad["tolerance"] = tolerance;
        let path = write(&format!("{name}.json"), bad);
        refused(publish("1.0.0", &mnist, Some(&path), &[]), &["tolerance"]);
        refused(publish("1.0.0", &mnist, Some(&path), &["--allow-loose-tolerance"]), &["tolerance"]);
    }
    let mut loose = numpy.clone();
    loose["tolerance"] = serde_json::json!(1e9);
    let loose = write("loose.json", loose);
    refused(publish("1.0.0", &mnist, Some(&loose), &[]), &["tolerance 1e9", "--allow-loose-tolerance"]);
    // --golden and --no-golden contradict each other.
    refused(
        publish("1.0.0", &mnist, Some(&golden_path), &["--no-golden"]),
        &["--no-golden", "cannot be used with"],
    );

    // What passes is published.
    let ok = publish("1.0.0", &mnist, Some(&golden_path), &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let forced = publish("1.0.1", &mnist, Some(&loose), &["--allow-loose-tolerance"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(stderr(&forced).contains("warning"), "{}", stderr(&forced));
    // Without --build nothing is checked, and the publisher is told so.
    let mut args = vec!["registry", "--registry", r, "publish", "--model", "mnist", "--version", "1.0.2"];
    args.extend(["--weights", two_heads.to_str().unwrap(), "--no-golden"]);
    let unchecked = brasa(&args);
    assert!(unchecked.status.success(), "{}", stderr(&unchecked));
    assert!(stderr(&unchecked).contains("warning: nothing checked"), "{}", stderr(&unchecked));
    // A version that exists is refused as such, before anything is run.
    let again = publish("1.0.0", &mnist, Some(&golden_path), &[]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("mnist 1.0.0 is already published"), "{}", stderr(&again));
    std::fs::remove_dir_all(dir).ok();
}

/// `verify` reports every broken model and goes on to the others; a registry that does not
/// exist, or holds no model, is an error that says so.
#[test]
fn verify_reports_every_problem_and_goes_on() {
    let dir = scratch("verify");
    let reg = dir.join("registry");
    let r = reg.to_str().unwrap();
    let weights = cache().join("models/mnist.bpk");
    let published = brasa(&[
        "registry",
        "--registry",
        r,
        "publish",
        "--model",
        "mnist",
        "--version",
        "1.0.0",
        "--weights",
        weights.to_str().unwrap(),
        "--no-golden",
    ]);
    assert!(published.status.success(), "{}", stderr(&published));
    // A model whose manifest is garbage, sorted before `mnist`.
    std::fs::create_dir_all(reg.join("broken")).unwrap();
    std::fs::write(reg.join("broken/manifest.json"), "not json{").unwrap();
    // A manifest that describes another model than its folder.
    std::fs::create_dir_all(reg.join("copy/files")).unwrap();
    let manifest = std::fs::read_to_string(reg.join("mnist/manifest.json")).unwrap();
    std::fs::write(reg.join("copy/manifest.json"), &manifest).unwrap();
    for file in std::fs::read_dir(reg.join("mnist/files")).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), reg.join("copy/files").join(file.file_name())).unwrap();
    }

    let verify = brasa(&["registry", "--registry", r, "verify"]);
    let (out, err) = (String::from_utf8_lossy(&verify.stdout), stderr(&verify));
    assert!(!verify.status.success(), "{out}{err}");
    assert!(err.contains(&format!("FAIL {}", reg.join("broken/manifest.json").display())), "{err}");
    assert!(err.contains("describes `mnist`, but its folder is `copy`"), "{err}");
    // The good model was still checked.
    assert!(out.contains("mnist: 1 file"), "{out}");
    assert!(err.contains("2 of 3 manifests"), "{err}");

    let missing = dir.join("nonexistent");
    let verify = brasa(&["registry", "--registry", missing.to_str().unwrap(), "verify"]);
    assert!(!verify.status.success());
    assert!(stderr(&verify).contains(&missing.display().to_string()), "{}", stderr(&verify));

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let verify = brasa(&["registry", "--registry", empty.to_str().unwrap(), "verify"]);
    assert!(!verify.status.success());
    assert!(stderr(&verify).contains("no models"), "{}", stderr(&verify));
    std::fs::remove_dir_all(dir).ok();
}

/// `brasa serve --dir` must name a folder: a file is an error that names it.
#[test]
fn serve_refuses_a_file_as_its_root() {
    let dir = scratch("serve-file");
    let file = dir.join("page.html");
    std::fs::write(&file, "<p>hi</p>").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_brasa"))
        .args(["serve", "--dir", file.to_str().unwrap(), "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It exits at once; should it serve instead, end it after a while so the test fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "served a file as a folder");
    assert!(
        stderr(&out).contains(&file.display().to_string()) && stderr(&out).contains("not a folder"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(dir).ok();
}

/// `publish --code --asset` lists the package's builds and the named files, content-addressed;
/// `verify` checks them like the weights and reports a damaged build with its path.
#[test]
fn publish_code_and_assets_and_verify_them() {
    let dir = scratch("code");
    let r = dir.to_str().unwrap();
    let package = cache().join("packages/mnist");
    let weights = cache().join("models/mnist.bpk");
    let golden = cache().join("fixtures/mnist-golden-1.0.0.json");
    let asset = dir.join("labels.json");
    std::fs::write(&asset, r#"["0","1","2","3","4","5","6","7","8","9"]"#).unwrap();
    let out = brasa(&[
        "registry",
        "--registry",
        r,
        "publish",
        "--model",
        "mnist",
        "--version",
        "1.0.0",
        "--weights",
        weights.to_str().unwrap(),
        "--golden",
        golden.to_str().unwrap(),
        "--build",
        package.to_str().unwrap(),
        "--code",
        "--asset",
        &format!("labels={}", asset.display()),
        "--channel",
        "stable",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("mnist/manifest.json")).unwrap()).unwrap();
    let version = &manifest["versions"]["1.0.0"];
    assert_eq!(version["package"]["name"], "mnist");
    assert_eq!(version["files"][1]["name"], "labels");
    let wasm = version["builds"]["cpu"]["wasm"]["path"].as_str().unwrap().to_string();
    assert!(wasm.starts_with("files/sha256-") && wasm.ends_with(".wasm"), "{wasm}");
    assert!(version["builds"]["webgpu"]["glue"]["path"].as_str().unwrap().ends_with(".js"));
    let verify = brasa(&["registry", "--registry", r, "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    // Weights, asset, and two builds of glue + wasm.
    assert!(String::from_utf8_lossy(&verify.stdout).contains("6 files in 1 version, intact"));
    let path = dir.join("mnist").join(&wasm);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let verify = brasa(&["registry", "--registry", r, "verify"]);
    assert!(!verify.status.success());
    assert!(stderr(&verify).contains(&wasm), "{}", stderr(&verify));
    // --code needs the package it publishes the builds of.
    let no_build = brasa(&[
        "registry",
        "--registry",
        r,
        "publish",
        "--model",
        "mnist",
        "--version",
        "1.1.0",
        "--weights",
        weights.to_str().unwrap(),
        "--no-golden",
        "--code",
    ]);
    assert!(!no_build.status.success());
}
