//! `brasa build`: a Burn crate that implements `brasa::Model` becomes a model package — the
//! CPU and WebGPU wasm builds of that model alone, their JS glue, `model.json` (name,
//! signature, metadata), `index.js` (the package `loadModel` takes) and TypeScript types
//! naming its tensors. The folder is an npm package as it is.
//!
//! How: a small generated `cdylib` (the *shim*) depends on the model crate and on
//! `brasa-wasm`, and names the model with `brasa_wasm::export_model!`. It is built for
//! `wasm32-unknown-unknown` in brasa's shared target dir with brasa's `Cargo.lock` as its
//! starting lock file, so every model build reuses one compiled burn. Outputs are cached by
//! a hash of (model sources, brasa sources, lock file, backends, options): an unchanged
//! model builds in seconds. The output folder is written next to its destination and renamed
//! into place: never half a package.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The builds `brasa build --backend` makes, all from the same model code: the CPU build
/// (wasm `simd128`, one thread), its relaxed-SIMD, threaded and threaded relaxed-SIMD
/// variants, and the WebGPU build. The default is all of them; a package carries any subset
/// and the loader picks the best one the platform runs. One list with the npm package's
/// (generated from `brasa_types`).
pub const BUILDS: [&str; 5] = brasa_types::BUILD_NAMES;

/// How one build is compiled.
struct Recipe {
    /// The shim's cargo features.
    feature: &'static str,
    /// `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS`.
    rustflags: String,
    /// Wasm threads: the standard library rebuilt with atomics (`-Z build-std`).
    threads: bool,
    /// Relaxed SIMD (`+relaxed-simd`) for brasa, brasa-wasm, the model crate and the shim: the
    /// crates with brasa's kernels and what inlines them. The dependencies keep the flags of
    /// the build without relaxed SIMD, so they are that build's, already compiled: none of them
    /// uses relaxed SIMD (see `build_fresh`), and LLVM does not fuse a multiply and an add by
    /// itself.
    relaxed: bool,
    /// Its own subfolder of the target dir, or `None` for the shared one: other flags (and
    /// another standard library) would otherwise rebuild every dependency at each switch. A
    /// relaxed-SIMD build shares its dependencies with the build without (see `relaxed`).
    target_subdir: Option<&'static str>,
    /// wasm-opt's `--enable-…` flags beyond [`WASM_FEATURES`].
    opt_features: &'static [&'static str],
}

/// The largest linear memory a threaded build may grow to (shared memory must declare one):
/// wasm32's 4 GiB, as onnxruntime-web's threaded build.
const THREADS_MAX_MEMORY: u64 = 4 << 30;

fn recipe(build: &str) -> Recipe {
    let relaxed = build.ends_with("-relaxed");
    let threads = build.starts_with("cpu-threads");
    // `+relaxed-simd` is added per crate, by `rustc_wrapper` (see `build_fresh`).
    let features = "+simd128";
    let rustflags = if threads {
        // Every link-arg is needed: without them wasm-bindgen silently emits a module without
        // threads, fails naming the missing export, or runs out of memory at start-up.
        let mut flags = format!(
            "-C target-feature=+atomics,+bulk-memory,+mutable-globals,{features} \
             -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory={THREADS_MAX_MEMORY}"
        );
        for symbol in ["__wasm_init_tls", "__tls_size", "__tls_align", "__tls_base"] {
            flags.push_str(&format!(" -C link-arg=--export={symbol}"));
        }
        flags
    } else {
        // The flags brasa's workspace sets for wasm32: the same flags, the same compiled
        // dependencies (the `cpu` and `webgpu` builds share the target dir).
        format!("-C target-feature={features}")
    };
    let opt_features: &[&str] = match (threads, relaxed) {
        (true, true) => &["--enable-threads", "--enable-relaxed-simd"],
        (true, false) => &["--enable-threads"],
        (false, true) => &["--enable-relaxed-simd"],
        (false, false) => &[],
    };
    Recipe {
        feature: match build {
            "webgpu" => "webgpu",
            "cpu-threads-relaxed" => "threads,relaxed",
            "cpu-threads" => "threads",
            "cpu-relaxed" => "cpu,relaxed",
            _ => "cpu",
        },
        rustflags,
        threads,
        relaxed,
        target_subdir: if threads { Some("cpu-threads") } else { None },
        opt_features,
    }
}

/// The crates (`--crate-name`) [`rustc_wrapper`] compiles with `+relaxed-simd`.
const RELAXED_CRATES: &str = "BRASA_RELAXED_CRATES";
/// A `RUSTC_WRAPPER` set before `brasa build` (sccache): [`rustc_wrapper`] runs rustc through it.
const NEXT_WRAPPER: &str = "BRASA_NEXT_RUSTC_WRAPPER";

/// This binary as cargo's `RUSTC_WRAPPER` in a relaxed-SIMD build (`BRASA_RELAXED_CRATES` set):
/// run the rustc command it was given, adding `-C target-feature=+relaxed-simd` for the crates
/// named there; `None` when not wrapping.
pub fn rustc_wrapper() -> Option<std::process::ExitCode> {
    let crates = std::env::var(RELAXED_CRATES).ok()?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        return None;
    }
    let name = args.windows(2).find(|w| w[0] == "--crate-name").map(|w| w[1].to_string_lossy().into_owned());
    if name.is_some_and(|n| crates.split(',').any(|c| c == n)) {
        args.extend(["-C".into(), "target-feature=+relaxed-simd".into()]);
    }
    let mut command = match std::env::var_os(NEXT_WRAPPER) {
        Some(next) => {
            let mut c = Command::new(next);
            c.args(&args);
            c
        }
        None => {
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        }
    };
    command.env_remove(RELAXED_CRATES);
    match command.status() {
        Ok(status) => Some(std::process::ExitCode::from(status.code().map_or(1, |c| c as u8))),
        Err(err) => {
            eprintln!("brasa (rustc wrapper): could not run {:?}: {err}", args[0]);
            Some(std::process::ExitCode::FAILURE)
        }
    }
}

/// Whether `build` is a threaded build (its wasm imports a shared memory).
pub fn is_threaded(build: &str) -> bool {
    build.starts_with("cpu-threads")
}

/// What to build.
pub struct BuildOptions {
    /// The model crate (its folder); `None` with `onnx`.
    pub crate_dir: Option<PathBuf>,
    /// An ONNX file to generate the model crate from (`--onnx`), with the model's name.
    pub onnx: Option<(PathBuf, String)>,
    /// Output folder (the package).
    pub out: PathBuf,
    /// Which of [`BUILDS`] to make.
    pub backends: Vec<String>,
    /// Which builds wasm-opt optimises: `none`, `cpu` or `all`.
    pub opt: String,
    /// Cargo profile of the wasm builds: `release` or `test` (see [`shim_manifest`]).
    pub profile: String,
}

impl BuildOptions {
    /// The shim's cargo profile for [`BuildOptions::profile`], and its output folder name.
    fn cargo_profile(&self) -> &'static str {
        if self.profile == "test" { "wasm-test" } else { "release" }
    }
}

/// The shared target dir and cache: `BRASA_CACHE_HOME` (default `~/.cache/brasa`).
fn cache_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("BRASA_CACHE_HOME") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("brasa")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| cache_home().join("target"))
}

/// The brasa source tree the shim builds against: `BRASA_SOURCE`, else the tree this CLI was
/// built from.
pub fn brasa_source() -> Result<PathBuf> {
    let root = std::env::var_os("BRASA_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let root =
        root.canonicalize().with_context(|| format!("brasa's source tree {} is missing", root.display()))?;
    if !root.join("crates/brasa-wasm/Cargo.toml").is_file() {
        bail!("{} is not brasa's source tree (set BRASA_SOURCE)", root.display());
    }
    Ok(root)
}

/// One step of a long command: prints what it does, then how long it took.
struct Steps {
    total: usize,
    done: usize,
}

impl Steps {
    fn step<T>(&mut self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.done += 1;
        eprintln!("[{}/{}] {what}", self.done, self.total);
        let t = Instant::now();
        let out = f().with_context(|| format!("{what} failed"))?;
        eprintln!("      {what}: {:.1} s", t.elapsed().as_secs_f64());
        Ok(out)
    }
}

struct CrateInfo {
    package: String,
    /// Its library's crate name (`--crate-name`).
    lib: String,
    version: String,
    model_type: String,
    inputs: Vec<PathBuf>,
}

fn read_crate(dir: &Path) -> Result<CrateInfo> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml: `brasa build` takes a Burn crate's folder (or --onnx FILE)",
            dir.display()
        );
    }
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--no-deps", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed for {}:\n{}", manifest.display(), String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let wanted = manifest.canonicalize()?;
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| {
            ps.iter().find(|p| {
                p["manifest_path"].as_str().and_then(|m| Path::new(m).canonicalize().ok()).as_deref()
                    == Some(wanted.as_path())
            })
        })
        .with_context(|| format!("{} defines no package", manifest.display()))?;
    let name = package["name"].as_str().unwrap_or_default().to_string();
    let lib = package["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "lib"))))
        .and_then(|t| t["name"].as_str())
        .with_context(|| format!("crate `{name}` has no library target"))?
        .replace('-', "_");
    let brasa = &package["metadata"]["brasa"];
    let model_type = brasa["model"].as_str().with_context(|| {
        format!(
            "crate `{name}` does not say which type to serve: add\n\n[package.metadata.brasa]\nmodel = \"{lib}::YourModel\"\n\nto {} (the type implements brasa::Model)",
            manifest.display()
        )
    })?;
    let inputs = brasa["inputs"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).map(|p| dir.join(p)).collect())
        .unwrap_or_default();
    Ok(CrateInfo {
        lib: lib.clone(),
        package: name,
        version: package["version"].as_str().unwrap_or("0.0.0").to_string(),
        model_type: model_type.to_string(),
        inputs,
    })
}

/// Every file under `dir` that can change a build (sources, manifests), sorted; skips
/// `target/`, hidden folders and `node_modules`.
fn source_files(dir: &Path, out: &mut BTreeSet<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // A model crate's own lock file plays no part: the build uses brasa's.
        if name.starts_with('.') || name == "target" || name == "node_modules" || name == "Cargo.lock" {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            source_files(&path, out)?;
        } else {
            out.insert(path);
        }
    }
    Ok(())
}

/// Hash files by path (relative to `base`) and content, with `brasa`'s absolute path in the
/// content replaced: a generated crate names brasa by path, and the same sources in another
/// clone must give the same key.
fn hash_files(hasher: &mut Sha256, files: &BTreeSet<PathBuf>, base: &Path, brasa: &Path) -> Result<()> {
    let root = brasa.to_string_lossy().into_owned();
    for file in files {
        let rel = file.strip_prefix(base).unwrap_or(file);
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        match String::from_utf8(bytes) {
            Ok(text) => hasher.update(text.replace(&root, "<brasa>").as_bytes()),
            Err(raw) => hasher.update(raw.as_bytes()),
        }
        hasher.update([0]);
    }
    Ok(())
}

/// The cache key of a build. The CLI's own sources are not hashed (but for the JS it puts into
/// builds): bump the tag whenever what it writes into a package changes (3: `index.js` imports
/// the glue statically; 4: the CPU variants, threaded builds' glue by URL; 5: their snippets
/// inlined).
fn build_key(info: &CrateInfo, crate_dir: &Path, brasa: &Path, options: &BuildOptions) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "brasa-build-5 {} {:?} {} {}\n",
        env!("CARGO_PKG_VERSION"),
        options.backends,
        options.opt,
        options.profile
    ));
    hasher.update(POOL_HELPER.as_bytes());
    let mut files = BTreeSet::new();
    source_files(crate_dir, &mut files)?;
    hash_files(&mut hasher, &files, crate_dir, brasa)?;
    for input in &info.inputs {
        // By the name the crate gives it (it may lie outside the crate): the key must not
        // depend on where the crate lies.
        let name = input.strip_prefix(crate_dir).unwrap_or(input).to_string_lossy().into_owned();
        let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(&bytes);
        hasher.update([0]);
    }
    let mut runtime = BTreeSet::new();
    for krate in ["brasa-types", "brasa", "brasa-wasm", "brasa-registry", "brasa-serving"] {
        source_files(&brasa.join("crates").join(krate), &mut runtime)?;
    }
    runtime.insert(brasa.join("Cargo.lock"));
    runtime.insert(brasa.join("Cargo.toml"));
    hash_files(&mut hasher, &runtime, brasa, brasa)?;
    Ok(hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect())
}

/// The shim crate's manifest: the model crate, brasa-wasm, and the workspace's release
/// profile (so compiled dependencies are shared with every other build).
fn shim_manifest(info: &CrateInfo, crate_dir: &Path, brasa: &Path, shim_lib: &str) -> String {
    let path = |p: &Path| p.to_string_lossy().replace('\\', "/");
    format!(
        r#"# Generated by `brasa build`; do not edit.
[package]
name = "{shim_lib}"
version = "{version}"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]
path = "lib.rs"

[features]
cpu = ["brasa-wasm/cpu"]
threads = ["brasa-wasm/threads"]
relaxed = ["brasa-wasm/relaxed-simd"]
webgpu = ["brasa-wasm/webgpu"]

[dependencies]
model = {{ package = "{package}", path = "{crate_dir}" }}
brasa-wasm = {{ path = "{brasa}/crates/brasa-wasm", default-features = false }}

[target.'cfg(target_arch = "wasm32")'.dependencies]
getrandom = {{ version = "0.4", features = ["wasm_js"] }}

[workspace]

[profile.release]
opt-level = 3
lto = "thin"
codegen-units = 16
panic = "abort"
debug = false
strip = true

# `brasa build --profile test`: the same code without LTO. Re-linking after a change to
# brasa or the model takes seconds instead of minutes (thin LTO re-optimises all of burn and
# wgpu per link); the wasm is larger, the numerics the same.
[profile.wasm-test]
inherits = "release"
lto = false
"#,
        version = info.version,
        package = info.package,
        crate_dir = path(crate_dir),
        brasa = path(brasa),
    )
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Replace `out` with `staged` in two renames; the old package survives a failure.
fn swap_into_place(staged: &Path, out: &Path) -> Result<()> {
    let old = out.with_extension(format!("brasa-old-{}", std::process::id()));
    if out.exists() {
        std::fs::rename(out, &old).with_context(|| format!("moving the old {} aside", out.display()))?;
    }
    if let Err(err) = std::fs::rename(staged, out) {
        if old.exists() {
            let _ = std::fs::rename(&old, out);
        }
        return Err(err).with_context(|| format!("moving the new package into {}", out.display()));
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Build the package of the model crate in `options.crate_dir` into `options.out`.
pub fn build(options: &BuildOptions) -> Result<()> {
    let started = Instant::now();
    for b in &options.backends {
        if !BUILDS.contains(&b.as_str()) {
            bail!("unknown build `{b}`; use any of {}", BUILDS.join(", "));
        }
    }
    if options.backends.is_empty() {
        bail!("no build asked for; use any of {}", BUILDS.join(", "));
    }
    if options.backends.iter().any(|b| is_threaded(b)) && !options.backends.iter().any(|b| b == "cpu") {
        // The loader falls back to `cpu` where threads cannot run (no cross-origin isolation,
        // Cloudflare Workers), and reads the model card from a single-threaded build.
        bail!("a threaded build needs the `cpu` build beside it: add cpu to --backend");
    }
    if !["none", "cpu", "all"].contains(&options.opt.as_str()) {
        bail!("--opt takes none, cpu or all");
    }
    if !["release", "test"].contains(&options.profile.as_str()) {
        bail!("--profile takes release or test");
    }
    let brasa = brasa_source()?;
    let mut steps =
        Steps { total: 3 + options.backends.len() + usize::from(options.onnx.is_some()), done: 0 };
    let crate_dir = match (&options.crate_dir, &options.onnx) {
        (Some(dir), None) => {
            dir.canonicalize().with_context(|| format!("{} does not exist", dir.display()))?
        }
        (None, Some((onnx, name))) => {
            let onnx = onnx.canonicalize().with_context(|| format!("{} does not exist", onnx.display()))?;
            let dir = cache_home().join("builds").join(format!("onnx-{name}")).join("crate");
            steps.step("generating the model crate from ONNX (burn-onnx)", || {
                crate::onnx_crate::generate(&onnx, name, &dir, &brasa)
            })?
        }
        _ => bail!("give a model crate's folder, or --onnx FILE --name NAME"),
    };
    let info = steps.step("reading the model crate", || read_crate(&crate_dir))?;
    let key = build_key(&info, &crate_dir, &brasa, options)?;
    let name_dir = cache_home().join("builds").join(&info.package);
    let cached = name_dir.join(&key);
    let out = absolute(&options.out)?;
    let staged = staging_path(&out)?;
    if cached.join(".complete").is_file() {
        steps.total = steps.done + 1;
        steps.step("up to date: copying the cached package", || {
            copy_dir(&cached, &staged)?;
            std::fs::remove_file(staged.join(".complete"))?;
            swap_into_place(&staged, &out)
        })?;
        eprintln!(
            "built {} (cached, key {key}) in {:.1} s -> {}",
            info.package,
            started.elapsed().as_secs_f64(),
            out.display()
        );
        return Ok(());
    }
    let result = build_fresh(options, &brasa, &crate_dir, &info, &name_dir, &staged, &mut steps);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    result?;
    // Cache a copy, then publish the package.
    let _ = std::fs::remove_dir_all(&cached);
    copy_dir(&staged, &cached)?;
    std::fs::write(cached.join(".complete"), key.as_bytes())?;
    prune_cache(&name_dir, &key);
    swap_into_place(&staged, &out)?;
    eprintln!(
        "built {} (key {key}) in {:.1} s -> {}",
        info.package,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) })
}

fn staging_path(out: &Path) -> Result<PathBuf> {
    let parent = out.parent().context("the output folder has no parent")?;
    std::fs::create_dir_all(parent)?;
    let name = out.file_name().context("the output folder has no name")?.to_string_lossy();
    let staged = parent.join(format!(".{name}.brasa-tmp-{}", std::process::id()));
    if staged.exists() {
        std::fs::remove_dir_all(&staged)?;
    }
    Ok(staged)
}

/// Keep the three newest cached builds of a model.
fn prune_cache(name_dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(name_dir) else { return };
    let mut builds: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().join(".complete").is_file() && e.file_name() != keep)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    builds.sort();
    while builds.len() > 2 {
        let (_, path) = builds.remove(0);
        let _ = std::fs::remove_dir_all(path);
    }
}

#[allow(clippy::too_many_arguments)]
fn build_fresh(
    options: &BuildOptions,
    brasa: &Path,
    crate_dir: &Path,
    info: &CrateInfo,
    name_dir: &Path,
    staged: &Path,
    steps: &mut Steps,
) -> Result<()> {
    // One artefact name per model: builds of several models share the target dir.
    let shim_lib = format!("brasa_model_{}", info.package.replace('-', "_"));
    let shim = name_dir.join("shim");
    steps.step("generating the build crate", || {
        std::fs::create_dir_all(&shim)?;
        std::fs::write(shim.join("Cargo.toml"), shim_manifest(info, crate_dir, brasa, &shim_lib))?;
        let source = format!(
            "//! Generated by `brasa build`: the wasm build of `{}`.\nbrasa_wasm::export_model!(model::{});\n",
            info.package,
            info.model_type.split_once("::").map_or(info.model_type.as_str(), |(_, rest)| rest)
        );
        std::fs::write(shim.join("lib.rs"), source)?;
        // Start from brasa's lock file: the same versions, so the same compiled dependencies.
        std::fs::copy(brasa.join("Cargo.lock"), shim.join("Cargo.lock"))?;
        std::fs::create_dir_all(staged)?;
        Ok(())
    })?;
    for backend in &options.backends {
        let recipe = recipe(backend);
        let target = match recipe.target_subdir {
            Some(sub) => target_dir().join("variants").join(sub),
            None => target_dir(),
        };
        let optimise = options.opt == "all" || (options.opt == "cpu" && backend.starts_with("cpu"));
        steps.step(
            &format!(
                "building the {backend} wasm (cargo{})",
                if optimise { ", wasm-bindgen, wasm-opt" } else { ", wasm-bindgen" }
            ),
            || {
                let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
                cargo
                    .args([
                        "build",
                        "--profile",
                        options.cargo_profile(),
                        "--target",
                        "wasm32-unknown-unknown",
                        "--no-default-features",
                        "--features",
                        recipe.feature,
                    ])
                    .arg("--manifest-path")
                    .arg(shim.join("Cargo.toml"))
                    .env("CARGO_TARGET_DIR", &target)
                    .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", &recipe.rustflags);
                if recipe.threads {
                    // The standard library prebuilt for wasm32 has no atomics: rebuild it (stable
                    // cargo allows `-Z` with RUSTC_BOOTSTRAP; needs `rustup component add rust-src`).
                    cargo.args(["-Z", "build-std=panic_abort,std"]).env("RUSTC_BOOTSTRAP", "1");
                }
                if recipe.relaxed {
                    // `+relaxed-simd` for brasa's crates, the model and the shim alone: this
                    // binary wraps rustc (`rustc_wrapper`) and adds it for those. Their
                    // `relaxed-simd` feature gives them their own artefacts, so the
                    // dependencies are the plain build's, already compiled: a relaxed-SIMD
                    // build recompiles four crates, not burn. (None of the dependencies uses
                    // relaxed SIMD: gemm has no relaxed kernel for wasm, and macerator 0.5.2's,
                    // burn-flex's element-wise SIMD, does not compile: its relaxed
                    // `run_vectorized` is safe where the trait's is `unsafe`.)
                    let crates = ["brasa", "brasa_wasm", info.lib.as_str(), shim_lib.as_str()].join(",");
                    cargo.env(RELAXED_CRATES, crates).env("RUSTC_WRAPPER", std::env::current_exe()?);
                    if let Some(next) = std::env::var_os("RUSTC_WRAPPER") {
                        cargo.env(NEXT_WRAPPER, next);
                    }
                }
                run(&mut cargo)?;
                let artefact = target
                    .join("wasm32-unknown-unknown")
                    .join(options.cargo_profile())
                    .join(format!("{shim_lib}.wasm"));
                let dir = staged.join(backend);
                // `__wbg_reset_state`: after a trap (burn aborting on a shape the graph cannot
                // compute) the loader re-instantiates the module instead of losing it for good.
                run(Command::new("wasm-bindgen")
                    .args([
                        "--target",
                        "web",
                        "--experimental-reset-state-function",
                        "--out-name",
                        "model",
                        "--out-dir",
                    ])
                    .arg(&dir)
                    .arg(&artefact))?;
                if recipe.threads {
                    inline_snippets(&dir)?;
                }
                if optimise {
                    wasm_opt(brasa, &dir.join("model_bg.wasm"), recipe.opt_features)?;
                }
                Ok(())
            },
        )?;
    }
    steps.step("writing model.json, index.js, index.d.ts, package.json", || {
        write_package(staged, info, brasa, &options.backends)?;
        // An ONNX import's weights travel with the package (not in its npm `files`).
        let weights = crate_dir.join("weights.bpk");
        if weights.is_file() {
            std::fs::copy(&weights, staged.join("weights.bpk"))?;
        }
        Ok(())
    })
}

/// brasa's replacement for wasm-bindgen-rayon's worker helper (same contract), which also reports
/// a pool Worker that cannot start and a pool thread that traps (see the file).
const POOL_HELPER: &str = include_str!("js/pool-helper.js");

/// Put the JS snippets a build's glue imports (wasm-bindgen-rayon's worker helper, replaced by
/// [`POOL_HELPER`]) into the glue itself: one self-contained module, which bundlers can emit as
/// an asset and brasa can import by URL from anywhere (a copy of the glue alone would miss its
/// `snippets/`). The helper starts the pool's Workers from its own module's source and has them
/// import the glue: inlined, both are the glue, which then also serves as the Workers' script.
fn inline_snippets(dir: &Path) -> Result<()> {
    let glue_path = dir.join("model.js");
    let glue = std::fs::read_to_string(&glue_path)?;
    let mut out = String::with_capacity(glue.len() + 4096);
    for line in glue.lines() {
        let snippet = line
            .strip_prefix("import { ")
            .and_then(|rest| rest.split_once(" } from './snippets/"))
            .and_then(|(names, path)| Some((names, path.strip_suffix("';")?)));
        let Some((names, path)) = snippet else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let code =
            if path.starts_with("wasm-bindgen-rayon-") && path.ends_with("/workerHelpers.no-bundler.js") {
                POOL_HELPER.to_owned()
            } else {
                std::fs::read_to_string(dir.join("snippets").join(path))
                    .with_context(|| format!("reading the glue's snippet {path}"))?
            };
        for name in names.split(',').map(str::trim) {
            if !code.contains(&format!("export async function {name}("))
                && !code.contains(&format!("export function {name}("))
            {
                bail!(
                    "the snippet {path} does not export `{name}` as a function: another wasm-bindgen-rayon?"
                );
            }
        }
        out.push_str(&format!("// Inlined by `brasa build` from snippets/{path}.\n"));
        for code_line in code.lines() {
            out.push_str(code_line.strip_prefix("export ").unwrap_or(code_line));
            out.push('\n');
        }
    }
    if out.contains("./snippets/") {
        bail!("{} still imports a snippet after inlining", glue_path.display());
    }
    std::fs::write(&glue_path, out)?;
    std::fs::remove_dir_all(dir.join("snippets"))?;
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

fn wasm_opt(brasa: &Path, wasm: &Path, extra_features: &[&str]) -> Result<()> {
    // Debian's binaryen (108) emits broken modules; the npm package's wasm-opt is current.
    let local = brasa.join("node_modules/.bin/wasm-opt");
    let program = if local.exists() { local } else { PathBuf::from("wasm-opt") };
    let tmp = wasm.with_extension("opt.wasm");
    run(Command::new(program)
        .args(["-O3", "--strip-debug", "--strip-producers"])
        .args(WASM_FEATURES)
        .args(extra_features)
        .arg(wasm)
        .arg("-o")
        .arg(&tmp))?;
    std::fs::rename(&tmp, wasm)?;
    Ok(())
}

/// Ask the built CPU (or only) wasm for its model card, under Node.
fn model_card(staged: &Path, backend: &str) -> Result<serde_json::Value> {
    const SCRIPT: &str = r#"
const [dir] = process.argv.slice(1);
const fs = await import('node:fs');
const { pathToFileURL } = await import('node:url');
const glue = await import(pathToFileURL(`${dir}/model.js`).href);
glue.initSync({ module: fs.readFileSync(`${dir}/model_bg.wasm`) });
process.stdout.write(JSON.stringify(glue.modelCard()));
"#;
    let out = Command::new("node")
        .args(["--input-type=module", "-e", SCRIPT])
        .arg(staged.join(backend))
        .output()
        .context("running node (needed to read the model's signature from its build)")?;
    if !out.status.success() {
        bail!("reading the model card failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn ts_name(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_default()
}

fn write_package(staged: &Path, info: &CrateInfo, brasa: &Path, backends: &[String]) -> Result<()> {
    // The WebGPU build cannot start under Node (no GPU), nor a threaded one as it is (no
    // `Worker`), and Node 20 validates no relaxed SIMD: read the card from the plain CPU
    // build, else the first single-threaded one.
    let probe = ["cpu", "cpu-relaxed", "webgpu"]
        .into_iter()
        .find(|b| backends.iter().any(|x| x == b))
        .context("no single-threaded build to read the model card from")?;
    // The glue is an ES module: say so before Node loads it, or a `"type": "commonjs"`
    // package.json above the output folder (what `npm init -y` writes) makes it a script.
    // The package's own package.json replaces this one below.
    std::fs::write(staged.join("package.json"), "{ \"type\": \"module\" }\n")?;
    let card = model_card(staged, probe)?;
    let name = card["name"].as_str().context("the model card has no name")?.to_string();
    let signature = &card["signature"];
    let mut builds = serde_json::Map::new();
    for backend in backends {
        let wasm = staged.join(backend).join("model_bg.wasm");
        let bytes = std::fs::read(&wasm)?;
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let mut entry = serde_json::json!({ "glue": format!("{backend}/model.js"), "wasm": format!("{backend}/model_bg.wasm"), "size": bytes.len(), "sha256": sha });
        if is_threaded(backend) {
            entry["threads"] = true.into();
        }
        builds.insert(backend.clone(), entry);
        // wasm-bindgen's own package.json and .gitignore would make each folder a package.
        for extra in ["package.json", ".gitignore"] {
            let _ = std::fs::remove_file(staged.join(backend).join(extra));
        }
    }
    // The card (what `index.js` exports besides its builds); `model.json` adds the builds.
    let package_card = serde_json::json!({
        "format": "brasa-model@1",
        "name": name,
        "version": info.version,
        "brasa": card["brasaVersion"],
        "signature": signature,
        "signatureHash": card["signatureHash"],
        "metadata": card["metadata"],
    });
    let mut model_json = package_card.clone();
    model_json["builds"] = serde_json::Value::Object(builds);
    std::fs::write(staged.join("model.json"), serde_json::to_string_pretty(&model_json)?)?;

    let mut js = String::from("// Generated by `brasa build`. The model package `loadModel` takes.\n");
    // The glue modules are imported statically: service workers refuse `import()` (HTML
    // spec). They are small JS that fetches nothing when imported; only the chosen build's
    // wasm is fetched, by `loadModel`. A threaded build's glue is not: it starts Web Workers
    // (wasm-bindgen-rayon), which Node and Cloudflare Workers cannot load and a Worker bundle
    // must not hold; brasa imports it by URL, in a Worker of its own.
    let ident = |backend: &str| format!("{}Glue", backend.replace('-', "_"));
    for backend in backends.iter().filter(|b| !is_threaded(b)) {
        js.push_str(&format!("import * as {} from './{backend}/model.js';\n", ident(backend)));
    }
    js.push_str(&format!("\nconst card = {};\n\n", serde_json::to_string(&package_card)?));
    js.push_str("export default {\n  ...card,\n  builds: {\n");
    for backend in backends {
        // Getters: workerd gives bundled modules no usable `import.meta.url`, and bundlers
        // still see (and emit) the `new URL(…, import.meta.url)` asset.
        let glue = if is_threaded(backend) {
            format!(
                "      threads: true,\n      get glueUrl() {{ return new URL('./{backend}/model.js', import.meta.url); }},\n"
            )
        } else {
            format!("      glue: async () => {},\n", ident(backend))
        };
        js.push_str(&format!(
            "    '{backend}': {{\n{glue}      get wasm() {{ return new URL('./{backend}/model_bg.wasm', import.meta.url); }},\n    }},\n"
        ));
    }
    js.push_str("  },\n};\n");
    std::fs::write(staged.join("index.js"), js)?;

    let dtypes = |list: &serde_json::Value| -> String {
        let entries: Vec<String> = list
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        format!(
                            "{}: {}",
                            ts_name(t["name"].as_str().unwrap_or("")),
                            ts_name(t["dtype"].as_str().unwrap_or(""))
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        format!("{{ {} }}", entries.join("; "))
    };
    let dts = format!(
        "// Generated by `brasa build`.\nimport type {{ ModelPackage }} from 'brasa';\n\n/** {name}: inputs {inputs}, outputs {outputs}. */\ndeclare const model: ModelPackage<{inputs}, {outputs}>;\nexport default model;\n",
        inputs = dtypes(&signature["inputs"]),
        outputs = dtypes(&signature["outputs"]),
    );
    std::fs::write(staged.join("index.d.ts"), dts)?;

    let brasa_version: String = {
        let pkg: serde_json::Value = serde_json::from_slice(&std::fs::read(brasa.join("npm/package.json"))?)?;
        pkg["version"].as_str().unwrap_or("0.1.0").to_string()
    };
    let mut files = vec!["index.js".to_string(), "index.d.ts".into(), "model.json".into()];
    let mut exports = serde_json::Map::new();
    exports.insert(".".into(), serde_json::json!({ "types": "./index.d.ts", "default": "./index.js" }));
    exports.insert("./model.json".into(), serde_json::json!("./model.json"));
    for backend in backends {
        files.push(format!("{backend}/"));
        exports.insert(format!("./{backend}.wasm"), serde_json::json!(format!("./{backend}/model_bg.wasm")));
        exports.insert(format!("./{backend}/*"), serde_json::json!(format!("./{backend}/*")));
    }
    let package = serde_json::json!({
        "name": name,
        "version": info.version,
        "description": format!("{name}, compiled for brasa ({})", backends.join(", ")),
        "type": "module",
        "sideEffects": false,
        "main": "./index.js",
        "types": "./index.d.ts",
        "exports": exports,
        "files": files,
        "peerDependencies": { "brasa": format!("^{brasa_version}") },
    });
    std::fs::write(staged.join("package.json"), serde_json::to_string_pretty(&package)?)?;
    Ok(())
}
