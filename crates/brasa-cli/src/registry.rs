//! `brasa registry`: a static model registry on disk. The layout is
//! `<registry>/<model>/manifest.json` plus `<registry>/<model>/files/sha256-<hex>.<ext>`.
//! Files are written before the manifest that names them, and every write goes to a
//! temporary file first and is renamed into place, so a reader (or a CDN sync) never sees a
//! manifest pointing at a missing or half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use brasa_registry::{
    FileEntry, GoldenCheck, Manifest, VersionEntry, content_address, sha256_hex, verify_bytes,
};
use clap::Subcommand;
use semver::Version;

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Publish weights as a new immutable version, optionally onto a channel.
    Publish {
        /// Model name.
        #[arg(long)]
        model: String,
        /// Semantic version, e.g. 1.2.0.
        #[arg(long)]
        version: Version,
        /// Burnpack weights (f32).
        #[arg(long)]
        weights: PathBuf,
        /// Which encodings of the weights the version lists, comma-separated: `f32` (the
        /// file as given), `f16`, `q8` (quantised here, as `brasa quantize` does). Clients
        /// load one (`dtype` load option; default the smallest listed). Default `f32`.
        #[arg(long = "dtype", value_delimiter = ',', default_values_t = [brasa::WeightsDtype::F32])]
        dtypes: Vec<brasa::WeightsDtype>,
        /// The golden tolerance of the f16 and q8 files. Default (with `--build`): twice the
        /// largest difference measured on the golden inputs with those weights in the
        /// package's CPU build, and at least the version's tolerance; without `--build` it
        /// must be given.
        #[arg(long, requires = "golden")]
        golden_tolerance: Option<f64>,
        /// Point this channel at the new version.
        #[arg(long)]
        channel: Option<String>,
        /// Why it is published.
        #[arg(long, default_value = "")]
        notes: String,
        /// Golden check: JSON `{ inputs: [{name, dtype, dims, data}], outputs: [...],
        /// tolerance, source }`, the outputs computed by an independent reference
        /// (onnxruntime, PyTorch, numpy) on these weights, which `source` names. Clients run
        /// the inputs and refuse the version unless they get the outputs. With `--build`,
        /// publish runs it first and refuses weights that fail it.
        #[arg(long, required_unless_present = "no_golden", conflicts_with = "no_golden")]
        golden: Option<PathBuf>,
        /// Accept a golden check whose outputs come from brasa itself; when the `--golden`
        /// file has no `outputs`, compute them with the `--build` package's CPU build on these
        /// weights (needs Node). Such a check catches clients that disagree with this build
        /// (another backend, damaged weights), not brasa's own errors: a warning says so.
        #[arg(long, requires = "golden")]
        self_golden: bool,
        /// Accept a golden `tolerance` above 1, with a warning. A tolerance that is negative,
        /// NaN or infinite is refused regardless.
        #[arg(long, requires = "golden")]
        allow_loose_tolerance: bool,
        /// Publish without a golden check (clients then only check integrity).
        #[arg(long)]
        no_golden: bool,
        /// The model package (`brasa build --out DIR`) these weights are for. Publish then
        /// checks, before it writes anything, that the weights load in the package's CPU
        /// build (under Node) and pass the golden check; it records the package's signature,
        /// and the golden check must fit it. Without it nothing of this is checked.
        #[arg(long)]
        build: Option<PathBuf>,
        /// Publish the `--build` package's compiled builds (JS glue and wasm of each backend,
        /// content-addressed) and its model card with the version, so clients without a
        /// bundled build (`loadModel('name@channel', { registry })`) load the code as well.
        #[arg(long, requires = "build")]
        code: bool,
        /// A named file tasks read with the version, `NAME=PATH` (e.g.
        /// `tokenizer=tokenizer.json`), fetched and verified with the weights; repeatable.
        #[arg(long = "asset", value_name = "NAME=PATH")]
        assets: Vec<String>,
    },
    /// Point a channel at a published version.
    Promote {
        #[command(flatten)]
        target: ChannelArgs,
        /// The version to point it at.
        #[arg(long)]
        version: Version,
        /// Why, for the history.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Return a channel to the version it pointed at before its latest move.
    Rollback {
        #[command(flatten)]
        target: ChannelArgs,
        /// Why, for the history.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Roll a version out to a share of a channel's clients (0 ends the rollout).
    Rollout {
        #[command(flatten)]
        target: ChannelArgs,
        /// The version to roll out.
        #[arg(long)]
        version: Version,
        /// Share of the channel's clients, 0-100.
        #[arg(long)]
        percent: f64,
    },
    /// List versions, channels and recent channel moves.
    List {
        #[arg(long)]
        model: String,
    },
    /// Check every manifest and recompute every file's size and sha256; report each problem
    /// and go on; non-zero exit when there was any (or when there is no model to check).
    Verify {
        /// Only this model (default: every model in the registry).
        #[arg(long)]
        model: Option<String>,
    },
}

/// A model's channel.
#[derive(clap::Args)]
pub struct ChannelArgs {
    /// Model name.
    #[arg(long)]
    model: String,
    /// Channel name, e.g. stable or canary.
    #[arg(long)]
    channel: String,
}

pub fn run(registry: &Path, command: RegistryCommand) -> Result<()> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    match command {
        RegistryCommand::Publish {
            model,
            version,
            weights,
            dtypes,
            golden_tolerance,
            channel,
            notes,
            golden,
            self_golden,
            allow_loose_tolerance,
            no_golden: _,
            build,
            code,
            assets,
        } => {
            let dir = registry.join(&model);
            let mut manifest = load_or_new(&dir, &model)?;
            // Refused before any check runs.
            manifest.check_unpublished(&version)?;
            let bytes = std::fs::read(&weights).with_context(|| format!("reading {}", weights.display()))?;
            brasa::inspect_weights(&bytes).with_context(|| format!("checking {}", weights.display()))?;
            let signature = build.as_deref().map(|dir| build_signature(dir, &model)).transpose()?;
            let from = GoldenSource { self_golden, allow_loose_tolerance };
            let golden =
                golden.as_deref().map(|path| read_golden(path, signature.as_ref(), &from)).transpose()?;
            let golden = match build.as_deref() {
                Some(package) => check_with_build(package, &weights, golden)?,
                None => {
                    if let Some(g) = &golden
                        && g.needs_outputs()
                    {
                        bail!(
                            "--self-golden without `outputs` computes them with the package: pass --build DIR"
                        );
                    }
                    eprintln!(
                        "warning: nothing checked that {} loads in `{model}` or passes its golden check: pass --build DIR (the model package) to check before publishing",
                        weights.display()
                    );
                    golden.map(|g| g.finish()).transpose()?
                }
            };
            let mut dtypes = dtypes;
            dtypes.sort();
            dtypes.dedup();
            let mut files = Vec::new();
            let mut written = Vec::new();
            for dtype in dtypes {
                let encoded = if dtype == brasa::WeightsDtype::F32 {
                    if brasa::inspect_weights(&bytes)?.dtype != brasa::WeightsDtype::F32 {
                        bail!(
                            "{} is not f32 weights: publish the f32 weights, with --dtype for f16 or q8",
                            weights.display()
                        );
                    }
                    bytes.clone()
                } else {
                    brasa::encode_weights(&bytes, dtype)
                        .with_context(|| format!("encoding {} as {dtype}", weights.display()))?
                };
                let tolerance = if dtype == brasa::WeightsDtype::F32 {
                    None
                } else {
                    quantised_tolerance(
                        &encoded,
                        dtype,
                        build.as_deref(),
                        golden.as_ref(),
                        golden_tolerance,
                        allow_loose_tolerance,
                    )?
                };
                let name = content_address(&encoded, "bpk");
                files.push(FileEntry {
                    path: format!("files/{name}"),
                    size: encoded.len() as u64,
                    sha256: sha256_hex(&encoded),
                    format: "burnpack".into(),
                    dtype,
                    tolerance,
                    name: None,
                });
                written.push((name, encoded));
            }
            let mut sizes: Vec<String> =
                files.iter().map(|f| format!("{} {} bytes", f.dtype, f.size)).collect();
            for asset in &assets {
                let (name, path) =
                    asset.split_once('=').with_context(|| format!("--asset {asset}: expected NAME=PATH"))?;
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading asset {name} from {path}"))?;
                let ext = if path.ends_with(".json") { "json" } else { "bin" };
                let entry = content_file(&bytes, ext);
                sizes.push(format!("{name} {} bytes", entry.size));
                files.push(FileEntry { name: Some(name.to_string()), ..entry });
                written.push((entry_name(&files[files.len() - 1]), bytes));
            }
            let (builds, package) = match (code, build.as_deref()) {
                (true, Some(dir)) => {
                    let (builds, package, code_files) = package_code(dir)?;
                    for (backend, b) in &builds {
                        sizes.push(format!("{backend} build {} bytes", b.glue.size + b.wasm.size));
                    }
                    written.extend(code_files);
                    (builds, Some(package))
                }
                _ => (Default::default(), None),
            };
            let entry =
                VersionEntry { files, signature, golden, published_at: now.clone(), notes, builds, package };
            manifest.publish(version.clone(), entry, channel.as_deref(), &now)?;
            // Files first, manifest last.
            for (name, encoded) in &written {
                let file = dir.join("files").join(name);
                if !file.exists() {
                    write_atomic(&file, encoded)?;
                }
            }
            write_atomic(&dir.join("manifest.json"), manifest.to_json().as_bytes())?;
            println!(
                "published {model}@{version} ({}){}",
                sizes.join(", "),
                channel.map(|c| format!(" on {c}")).unwrap_or_default()
            );
        }
        RegistryCommand::Promote { target: ChannelArgs { model, channel }, version, reason } => {
            let dir = registry.join(&model);
            let mut manifest = load(&dir)?;
            manifest.promote(&channel, &version, &now, &reason)?;
            write_atomic(&dir.join("manifest.json"), manifest.to_json().as_bytes())?;
            println!("{model}@{channel} -> {version}");
        }
        RegistryCommand::Rollback { target: ChannelArgs { model, channel }, reason } => {
            let dir = registry.join(&model);
            let mut manifest = load(&dir)?;
            let version = manifest.rollback(&channel, &now, &reason)?;
            write_atomic(&dir.join("manifest.json"), manifest.to_json().as_bytes())?;
            println!("{model}@{channel} rolled back to {version}");
        }
        RegistryCommand::Rollout { target: ChannelArgs { model, channel }, version, percent } => {
            let dir = registry.join(&model);
            let mut manifest = load(&dir)?;
            manifest.set_rollout(&channel, &version, percent, &now)?;
            write_atomic(&dir.join("manifest.json"), manifest.to_json().as_bytes())?;
            println!("{model}@{channel}: {version} to {percent}% of clients");
        }
        RegistryCommand::List { model } => {
            let manifest = load(&registry.join(&model))?;
            println!("{model}");
            for (version, entry) in manifest.versions.iter().rev() {
                let size: u64 = entry.files.iter().map(|f| f.size).sum();
                println!("  {version:<12} {:>10} bytes  {}  {}", size, entry.published_at, entry.notes);
            }
            for (name, channel) in &manifest.channels {
                let rollout = channel
                    .rollout
                    .as_ref()
                    .map(|r| format!(" ({} to {}%)", r.version, r.percent))
                    .unwrap_or_default();
                println!("  @{name:<11} -> {}{rollout}", channel.version);
            }
            for m in manifest.history.iter().rev().take(10) {
                let from = m.from.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into());
                println!("  {} {:?} {}: {from} -> {} {}", m.at, m.kind, m.channel, m.to, m.reason);
            }
        }
        RegistryCommand::Verify { model } => verify(registry, model.as_deref())?,
    }
    Ok(())
}

/// `verify`: every model's manifest (valid, and describing the model its folder is named
/// for) and every file it names (size and sha256). Each problem is reported with its path and
/// the check goes on; the exit is non-zero at the end if there was any.
fn verify(registry: &Path, only: Option<&str>) -> Result<()> {
    if !registry.is_dir() {
        bail!("no registry at {}: not a folder (pass --registry DIR)", registry.display());
    }
    let models = match only {
        Some(model) => vec![model.to_string()],
        None => {
            let mut models = Vec::new();
            let entries =
                std::fs::read_dir(registry).with_context(|| format!("reading {}", registry.display()))?;
            for entry in entries {
                let path = entry?.path();
                if !path.is_dir() {
                    continue;
                }
                if path.join("manifest.json").exists() {
                    models.push(path.file_name().unwrap_or_default().to_string_lossy().into_owned());
                } else {
                    eprintln!("note: skipped {}: no manifest.json", path.display());
                }
            }
            models.sort();
            models
        }
    };
    if models.is_empty() {
        bail!("no models in {}: no <model>/manifest.json to verify", registry.display());
    }
    let (mut bad_manifests, mut bad_files, mut files) = (0usize, 0usize, 0usize);
    for model in &models {
        let dir = registry.join(model);
        let path = dir.join("manifest.json");
        let manifest = match read_manifest(&path) {
            Ok(manifest) => manifest,
            Err(err) => {
                bad_manifests += 1;
                eprintln!("FAIL {}: {err:#}", path.display());
                continue;
            }
        };
        if manifest.model != *model {
            // Clients asking for the folder's model refuse a manifest of another one.
            bad_manifests += 1;
            eprintln!(
                "FAIL {}: the manifest describes `{}`, but its folder is `{model}`",
                path.display(),
                manifest.model
            );
        }
        let (mut count, mut failed) = (0usize, 0usize);
        for (version, entry) in &manifest.versions {
            // Weights and assets, then each build's glue and wasm.
            let code = entry.builds.values().flat_map(|b| [&b.glue, &b.wasm]);
            for file in entry.files.iter().chain(code) {
                count += 1;
                let outcome = std::fs::read(dir.join(&file.path))
                    .map_err(anyhow::Error::from)
                    .and_then(|bytes| verify_bytes(file, &bytes).map_err(anyhow::Error::from));
                if let Err(err) = outcome {
                    failed += 1;
                    eprintln!("FAIL {model}@{version} {}: {err}", dir.join(&file.path).display());
                }
            }
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        println!(
            "{model}: {} in {}{}",
            plural(count, "file"),
            plural(manifest.versions.len(), "version"),
            if failed == 0 { ", intact".to_string() } else { format!(", {failed} failed") }
        );
        files += count;
        bad_files += failed;
    }
    if bad_manifests + bad_files > 0 {
        bail!(
            "{bad_manifests} of {} manifests and {bad_files} of {files} files failed verification",
            models.len()
        );
    }
    println!("verified {files} files of {} models", models.len());
    Ok(())
}

/// A `--golden` file as written by hand or by a reference script; `outputs` may be left out
/// only with `--self-golden` (brasa computes them).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GoldenFile {
    inputs: Vec<brasa::types::TensorJson>,
    #[serde(default)]
    outputs: Vec<brasa::types::TensorJson>,
    // f64: a value past f32's range (1e39) must be refused, not read as infinity.
    tolerance: Option<f64>,
    #[serde(default)]
    source: String,
}

/// How `publish` takes a golden check.
struct GoldenSource {
    /// `--self-golden`: brasa's own outputs are accepted (and computed when missing).
    self_golden: bool,
    /// `--allow-loose-tolerance`.
    allow_loose_tolerance: bool,
}

/// The tolerance of a self-computed golden check when the file gives none: brasa's CPU and
/// WebGPU builds agree to about 1e-5 on the models it is tested with.
const SELF_GOLDEN_TOLERANCE: f32 = 1e-4;

/// The largest golden tolerance accepted without `--allow-loose-tolerance`: the check is an
/// absolute difference, and brasa's backends agree with references to ~1e-5 on outputs of
/// order 1-100; a tolerance above 1 hides wrong weights, not rounding.
const MAX_GOLDEN_TOLERANCE: f64 = 1.0;

/// A golden check read from `--golden` and checked on its own and against the signature;
/// its outputs may still have to be computed (`--self-golden` without `outputs`).
struct PendingGolden {
    path: PathBuf,
    check: GoldenCheck,
    /// Its `source` names an independent reference.
    independent: bool,
    self_golden: bool,
    allow_loose_tolerance: bool,
}

impl PendingGolden {
    fn needs_outputs(&self) -> bool {
        self.check.outputs.is_empty()
    }

    /// The check as published, once its outputs are known: present, well-formed, and a
    /// tolerance that is not loose enough to accept anything.
    fn finish(self) -> Result<GoldenCheck> {
        let path = self.path.display();
        let golden = self.check;
        if golden.outputs.is_empty() {
            bail!("{path}: a golden check needs expected outputs");
        }
        brasa::types::TensorJson::to_map(&golden.outputs).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let tolerance = f64::from(golden.tolerance);
        if tolerance > MAX_GOLDEN_TOLERANCE {
            if !self.allow_loose_tolerance {
                bail!(
                    "{path}: tolerance {tolerance:e} is more than {MAX_GOLDEN_TOLERANCE}: such a check hides wrong weights, not rounding (pass --allow-loose-tolerance to publish it anyway)"
                );
            }
            eprintln!(
                "warning: {path}: tolerance {tolerance:e} is more than {MAX_GOLDEN_TOLERANCE} (accepted with --allow-loose-tolerance)"
            );
        }
        // A tolerance at least as large as every expected value passes an output of zeros.
        // Only a warning: a golden input that gives tiny outputs is a weak check, not a wrong one.
        let largest = golden.outputs.iter().flat_map(|t| &t.data).fold(0.0f64, |m, v| m.max(v.abs()));
        if tolerance > 0.0 && tolerance >= largest {
            eprintln!(
                "warning: {path}: tolerance {tolerance:e} is at least every expected value (largest {largest:e}): an output of zeros passes this check; choose golden inputs with larger outputs, or a smaller tolerance"
            );
        }
        if self.self_golden && !self.independent {
            let how = if golden.source.contains("self-computed") {
                "were computed by brasa itself (--self-golden)"
            } else {
                "name no independent `source` and are taken as brasa's own (--self-golden)"
            };
            eprintln!(
                "warning: {path}: the golden outputs {how}; clients that disagree with this build are caught, brasa's own errors are not"
            );
        }
        Ok(golden)
    }
}

/// Read a golden check and check what can be checked without running it: every input fits
/// the signature (when known), each expected output is one of the model's with the dims and
/// dtype it gives, the tolerance is a finite number >= 0, and the outputs come from an
/// independent reference unless `--self-golden` says otherwise.
fn read_golden(
    path: &Path,
    signature: Option<&brasa::Signature>,
    from: &GoldenSource,
) -> Result<PendingGolden> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file: GoldenFile =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a golden check", path.display()))?;
    let independent = !file.source.trim().is_empty() && !file.source.to_lowercase().contains("brasa");
    if let Some(t) = file.tolerance
        && !(t >= 0.0 && (t as f32).is_finite())
    {
        bail!("{}: tolerance {t:e} must be a finite number >= 0", path.display());
    }
    if !from.self_golden {
        if file.outputs.is_empty() || file.tolerance.is_none() {
            bail!(
                "{}: a golden check needs expected `outputs` and a `tolerance` (or --self-golden to compute them with brasa)",
                path.display()
            );
        }
        if !independent {
            let what = if file.source.trim().is_empty() {
                "has no `source`".to_string()
            } else {
                format!("names brasa as its `source` ({:?})", file.source)
            };
            bail!(
                "{}: the golden check {what}: say which independent reference computed the outputs (onnxruntime, PyTorch, numpy); a golden computed by brasa itself cannot catch brasa's own errors (pass --self-golden to publish one knowingly)",
                path.display()
            );
        }
    }
    let mut golden = GoldenCheck {
        inputs: file.inputs,
        outputs: file.outputs,
        tolerance: file.tolerance.map_or(SELF_GOLDEN_TOLERANCE, |t| t as f32),
        source: file.source,
    };
    if from.self_golden && golden.source.trim().is_empty() {
        // The manifest says where the outputs came from, even when the file did not.
        golden.source = "not named (accepted with --self-golden)".into();
    }
    let feeds = golden.feeds().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(sig) = signature {
        let resolved = sig
            .validate_inputs(&feeds, &brasa::Limits::default())
            .with_context(|| format!("the golden inputs of {} do not fit the model", path.display()))?;
        outputs_fit(sig, &golden.outputs, &resolved).map_err(|e| {
            anyhow::anyhow!("the golden outputs of {} do not fit the model: {e}", path.display())
        })?;
    }
    Ok(PendingGolden {
        path: path.to_path_buf(),
        check: golden,
        independent,
        self_golden: from.self_golden,
        allow_loose_tolerance: from.allow_loose_tolerance,
    })
}

/// Whether expected outputs are outputs of the model with the dtype and dims it gives for
/// inputs that resolved to `resolved` (a golden may list some outputs only).
fn outputs_fit(
    sig: &brasa::Signature,
    outputs: &[brasa::types::TensorJson],
    resolved: &brasa::types::Resolved,
) -> std::result::Result<(), String> {
    let specs = outputs
        .iter()
        .map(|o| sig.output(&o.name).cloned().ok_or_else(|| format!("the model has no output `{}`", o.name)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let expected = brasa::types::TensorJson::to_map(outputs)?;
    brasa::Signature::new(sig.inputs.clone(), specs)
        .validate_outputs(&expected, resolved)
        .map_err(|e| e.to_string())
}

/// `publish --build`: load the weights in the package's CPU build and run the golden inputs
/// (when there is a check), then judge the outputs with the registry's own golden logic, as
/// clients do; with `--self-golden` and no outputs, the outputs are the ones computed.
fn check_with_build(
    package: &Path,
    weights: &Path,
    golden: Option<PendingGolden>,
) -> Result<Option<GoldenCheck>> {
    let Some(mut golden) = golden else {
        run_cpu_build(package, weights, None)?;
        return Ok(None);
    };
    let fetches = run_cpu_build(package, weights, Some(&golden.check))?.unwrap_or_default();
    if golden.needs_outputs() {
        golden.check.outputs =
            fetches.iter().map(|(name, t)| brasa::types::TensorJson::from_host(name, t)).collect();
        golden.check.source =
            format!("brasa {} (self-computed with --self-golden)", env!("CARGO_PKG_VERSION"));
    } else {
        let outcome = golden.check.compare(&fetches);
        if !outcome.passed {
            bail!(
                "{}: these weights fail the golden check in {}'s CPU build: {}",
                golden.path.display(),
                package.display(),
                outcome.reason
            );
        }
    }
    golden.finish().map(Some)
}

/// Run the package's CPU build under Node: load `weights`, and run `golden`'s inputs on them
/// when given (their outputs, by name). A `BrasaError` of the model (`invalid_weights` for
/// weights of another architecture) is an error naming its code.
fn run_cpu_build(
    build: &Path,
    weights: &Path,
    golden: Option<&GoldenCheck>,
) -> Result<Option<brasa::TensorMap>> {
    const SCRIPT: &str = r#"
const [dir, weights] = process.argv.slice(1);
const fs = await import('node:fs');
const { pathToFileURL } = await import('node:url');
const glue = await import(pathToFileURL(`${dir}/cpu/model.js`).href);
glue.initSync({ module: fs.readFileSync(`${dir}/cpu/model_bg.wasm`) });
const { golden } = JSON.parse(fs.readFileSync(0, 'utf8'));
const fail = (stage, e) => ({ error: { stage, code: e?.code ?? 'internal', message: String(e?.message ?? e) } });
async function check() {
  let model, fetches;
  try { model = await glue.loadModel(fs.readFileSync(weights), 'cpu'); } catch (e) { return fail('load', e); }
  if (!golden) return { fetches: null };
  try { fetches = await model.run(glue.registryGoldenFeeds(golden)); } catch (e) { return fail('run', e); }
  // Raw little-endian bytes: brasa-types turns them into numbers (float16 included).
  return { fetches: fetches.map(({ name, dtype, dims, data }) => ({
    name, dtype, dims: Array.from(dims),
    bytes: Array.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
  })) };
}
// No process.exit: it would cut a long answer short in the pipe.
process.stdout.write(JSON.stringify(await check()));
"#;
    #[derive(serde::Deserialize)]
    struct Fetch {
        name: String,
        dtype: brasa::DType,
        dims: Vec<usize>,
        bytes: Vec<u8>,
    }
    #[derive(serde::Deserialize)]
    struct Failure {
        stage: String,
        code: String,
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        fetches: Option<Vec<Fetch>>,
        #[serde(default)]
        error: Option<Failure>,
    }
    if !build.join("cpu/model.js").is_file() {
        bail!("{} has no CPU build to check the weights with (build it with --backend cpu)", build.display());
    }
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", SCRIPT])
        .arg(build)
        .arg(weights)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running node (publish --build checks the weights with the package under Node)")?;
    let input = serde_json::to_vec(&serde_json::json!({ "golden": golden }))?;
    child.stdin.take().context("node's stdin")?.write_all(&input)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "running {}'s CPU build under Node failed:\n{}",
            build.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let answer: Answer = serde_json::from_slice(&out.stdout).context("node returned no answer")?;
    if let Some(Failure { stage, code, message }) = answer.error {
        let what = if stage == "load" {
            format!("{} does not load in {}'s CPU build", weights.display(), build.display())
        } else {
            format!(
                "the golden inputs do not run on {} in {}'s CPU build",
                weights.display(),
                build.display()
            )
        };
        bail!("{what} ({code}): {message}");
    }
    let Some(fetches) = answer.fetches else { return Ok(None) };
    fetches
        .into_iter()
        .map(|f| {
            let values = brasa::Values::from_le_bytes(f.dtype, &f.bytes).with_context(|| {
                format!("output `{}`: {} bytes are no {} tensor", f.name, f.bytes.len(), f.dtype)
            })?;
            Ok((f.name, brasa::HostTensor::new(f.dims, values)))
        })
        .collect::<Result<brasa::TensorMap>>()
        .map(Some)
}

/// The golden tolerance of an f16 or q8 file: `--golden-tolerance` when given (the file must
/// pass with it), else twice the largest difference measured with these weights in the
/// package's CPU build, at least the version's tolerance. Without `--build` a quantised file
/// is only checked to decode, and needs `--golden-tolerance` when there is a golden check.
fn quantised_tolerance(
    encoded: &[u8],
    dtype: brasa::WeightsDtype,
    build: Option<&Path>,
    golden: Option<&GoldenCheck>,
    given: Option<f64>,
    allow_loose: bool,
) -> Result<Option<f32>> {
    if let Some(t) = given {
        if !(t >= 0.0 && (t as f32).is_finite()) {
            bail!("--golden-tolerance {t:e} must be a finite number >= 0");
        }
        if t > MAX_GOLDEN_TOLERANCE && !allow_loose {
            bail!(
                "--golden-tolerance {t:e} is more than {MAX_GOLDEN_TOLERANCE}: such a check hides wrong weights, not rounding (pass --allow-loose-tolerance to publish it anyway)"
            );
        }
    }
    let Some(package) = build else {
        if golden.is_some() && given.is_none() {
            bail!(
                "the {dtype} weights need their own golden tolerance: pass --build DIR to measure it, or --golden-tolerance"
            );
        }
        return Ok(given.map(|t| t as f32));
    };
    let tmp = std::env::temp_dir().join(format!("brasa-publish-{}-{dtype}.bpk", std::process::id()));
    std::fs::write(&tmp, encoded).with_context(|| format!("writing {}", tmp.display()))?;
    let fetches = run_cpu_build(package, &tmp, golden);
    let _ = std::fs::remove_file(&tmp);
    let (Some(golden), Some(fetches)) = (golden, fetches?) else { return Ok(given.map(|t| t as f32)) };
    let mut check = golden.clone();
    let measured = check.compare(&fetches).max_abs_diff;
    if !measured.is_finite() {
        bail!(
            "the {dtype} weights give no usable output on the golden inputs: {}",
            check.compare(&fetches).reason
        );
    }
    let tolerance = match given {
        Some(t) => t,
        None => {
            // Two significant digits, rounded up, so the manifest reads cleanly.
            let raw = (2.0 * measured).max(f64::from(golden.tolerance));
            let step = 10f64.powf(raw.log10().floor() - 1.0);
            // Through text, so the manifest says 0.57, not 0.5700000000000001.
            let t: f64 = if raw > 0.0 { format!("{:.1e}", (raw / step).ceil() * step).parse()? } else { 0.0 };
            if t > MAX_GOLDEN_TOLERANCE && !allow_loose {
                bail!(
                    "the {dtype} weights are off the golden outputs by {measured:.3e}: a tolerance of {t:e} hides wrong weights, not rounding (keep these weights f32, or pass --allow-loose-tolerance)"
                );
            }
            t
        }
    };
    check.tolerance = tolerance as f32;
    let outcome = check.compare(&fetches);
    if !outcome.passed {
        bail!("the {dtype} weights fail the golden check with --golden-tolerance: {}", outcome.reason);
    }
    eprintln!("{dtype}: largest golden difference {measured:.3e}, tolerance {}", tolerance as f32);
    Ok(Some(tolerance as f32))
}

/// A content-addressed file entry for `bytes` (`files/sha256-….ext`, format `ext`).
fn content_file(bytes: &[u8], ext: &str) -> FileEntry {
    FileEntry {
        path: format!("files/{}", content_address(bytes, ext)),
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        format: ext.into(),
        dtype: Default::default(),
        tolerance: None,
        name: None,
    }
}

/// The file name of an entry under `files/`.
fn entry_name(entry: &FileEntry) -> String {
    entry.path.trim_start_matches("files/").to_string()
}

/// A model package's builds (each backend's glue and wasm, content-addressed, with the bytes
/// to write) and its model card, from its `model.json`.
#[allow(clippy::type_complexity)]
fn package_code(
    dir: &Path,
) -> Result<(
    std::collections::BTreeMap<String, brasa_registry::BuildFiles>,
    brasa_registry::PackageCard,
    Vec<(String, Vec<u8>)>,
)> {
    let text = std::fs::read(dir.join("model.json"))
        .with_context(|| format!("reading {}/model.json", dir.display()))?;
    let card: serde_json::Value = serde_json::from_slice(&text).context("model.json is not JSON")?;
    let field =
        |k: &str| card[k].as_str().map(str::to_string).with_context(|| format!("model.json has no `{k}`"));
    let package = brasa_registry::PackageCard {
        format: field("format")?,
        name: field("name")?,
        version: field("version")?,
        brasa: field("brasa")?,
        signature_hash: field("signatureHash")?,
        metadata: card["metadata"].clone(),
    };
    let mut builds = std::collections::BTreeMap::new();
    let mut written = Vec::new();
    let listed = card["builds"].as_object().context("model.json lists no builds")?;
    // Manifests name `cpu` and `webgpu` builds (`BUILD_BACKENDS`); the CPU variants stay in
    // packages: a threaded build's Workers import its glue by URL, and code from a registry is
    // imported from its verified bytes instead.
    for (backend, build) in
        listed.iter().filter(|(b, _)| brasa_registry::BUILD_BACKENDS.contains(&b.as_str()))
    {
        let mut read = |key: &str, ext: &str| -> Result<FileEntry> {
            let rel = build[key]
                .as_str()
                .with_context(|| format!("model.json: the {backend} build has no `{key}`"))?;
            let bytes =
                std::fs::read(dir.join(rel)).with_context(|| format!("reading {}/{rel}", dir.display()))?;
            let entry = content_file(&bytes, ext);
            written.push((entry_name(&entry), bytes));
            Ok(entry)
        };
        let glue = read("glue", "js")?;
        let wasm = read("wasm", "wasm")?;
        builds.insert(backend.clone(), brasa_registry::BuildFiles { glue, wasm });
    }
    Ok((builds, package, written))
}

/// The signature in a model package's `model.json`, which must be the model's.
fn build_signature(dir: &Path, model: &str) -> Result<brasa::Signature> {
    let path = dir.join("model.json");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
    if card.get("name").and_then(|n| n.as_str()) != Some(model) {
        bail!("{} is the package of {}, not of `{model}`", dir.display(), card["name"]);
    }
    serde_json::from_value(card["signature"].clone()).context("model.json has no valid signature")
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = std::fs::read(path)?;
    Ok(Manifest::from_json(&bytes)?)
}

fn load(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    read_manifest(&path).with_context(|| path.display().to_string())
}

fn load_or_new(dir: &Path, model: &str) -> Result<Manifest> {
    if dir.join("manifest.json").exists() { load(dir) } else { Ok(Manifest::new(model)) }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent")?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
