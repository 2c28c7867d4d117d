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
        /// Burnpack weights.
        #[arg(long)]
        weights: PathBuf,
        /// Point this channel at the new version.
        #[arg(long)]
        channel: Option<String>,
        /// Why it is published.
        #[arg(long, default_value = "")]
        notes: String,
        /// Golden check: JSON `{ inputs: [{name, dtype, dims, data}], outputs: [...],
        /// tolerance, source }`, the outputs computed by an independent reference
        /// (onnxruntime, PyTorch, numpy) on these weights, which `source` names. Clients run
        /// the inputs and refuse the version unless they get the outputs.
        #[arg(long, required_unless_present = "no_golden")]
        golden: Option<PathBuf>,
        /// Accept a golden check whose outputs come from brasa itself; when the `--golden`
        /// file has no `outputs`, compute them with the `--build` package's CPU build on these
        /// weights (needs Node). Such a check catches clients that disagree with this build
        /// (another backend, damaged weights), not brasa's own errors: a warning says so.
        #[arg(long, requires = "golden")]
        self_golden: bool,
        /// Publish without a golden check (clients then only check integrity).
        #[arg(long)]
        no_golden: bool,
        /// The model package (`brasa build --out DIR`) these weights are for: its signature is
        /// recorded, and the golden check must name its tensors.
        #[arg(long)]
        build: Option<PathBuf>,
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
    /// Recompute every file's size and sha256; non-zero exit on any mismatch.
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
            channel,
            notes,
            golden,
            self_golden,
            no_golden: _,
            build,
        } => {
            let bytes = std::fs::read(&weights).with_context(|| format!("reading {}", weights.display()))?;
            brasa::inspect_weights(&bytes).with_context(|| format!("checking {}", weights.display()))?;
            let signature = build.as_deref().map(|dir| build_signature(dir, &model)).transpose()?;
            let golden = match golden.as_deref() {
                Some(path) => {
                    let source = GoldenSource { self_golden, build: build.as_deref(), weights: &weights };
                    Some(golden_check(path, signature.as_ref(), &source)?)
                }
                None => None,
            };
            let dir = registry.join(&model);
            let mut manifest = load_or_new(&dir, &model)?;
            let name = content_address(&bytes, "bpk");
            let entry = VersionEntry {
                files: vec![FileEntry {
                    path: format!("files/{name}"),
                    size: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                    format: "burnpack".into(),
                    dtype: "f32".into(),
                }],
                signature,
                golden,
                published_at: now.clone(),
                notes,
            };
            manifest.publish(version.clone(), entry, channel.as_deref(), &now)?;
            // Files first, manifest last.
            let file = dir.join("files").join(&name);
            if !file.exists() {
                write_atomic(&file, &bytes)?;
            }
            write_atomic(&dir.join("manifest.json"), manifest.to_json().as_bytes())?;
            println!(
                "published {model}@{version} ({} bytes, {name}){}",
                bytes.len(),
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
        RegistryCommand::Verify { model } => {
            let models = match model {
                Some(m) => vec![m],
                None => std::fs::read_dir(registry)?
                    .flatten()
                    .filter(|e| e.path().join("manifest.json").exists())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
            };
            let mut failures = 0;
            let mut checked = 0;
            for model in models {
                let dir = registry.join(&model);
                let manifest = load(&dir)?;
                for (version, entry) in &manifest.versions {
                    for file in &entry.files {
                        checked += 1;
                        let outcome = std::fs::read(dir.join(&file.path))
                            .map_err(anyhow::Error::from)
                            .and_then(|bytes| verify_bytes(file, &bytes).map_err(anyhow::Error::from));
                        if let Err(err) = outcome {
                            failures += 1;
                            eprintln!("FAIL {model}@{version} {}: {err}", file.path);
                        }
                    }
                }
            }
            if failures > 0 {
                bail!("{failures} of {checked} files failed verification");
            }
            println!("verified {checked} files");
        }
    }
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
    tolerance: Option<f32>,
    #[serde(default)]
    source: String,
}

/// Where a golden check's outputs may come from.
struct GoldenSource<'a> {
    /// `--self-golden`: brasa's own outputs are accepted (and computed when missing).
    self_golden: bool,
    /// `--build`: the package that computes them.
    build: Option<&'a Path>,
    /// The weights being published.
    weights: &'a Path,
}

/// The tolerance of a self-computed golden check when the file gives none: brasa's CPU and
/// WebGPU builds agree to about 1e-5 on the models it is tested with.
const SELF_GOLDEN_TOLERANCE: f32 = 1e-4;

/// Read a golden check and check it against the signature (when known): every input, no
/// unknown output, each tensor well-formed, and outputs from an independent reference unless
/// `--self-golden` says otherwise.
fn golden_check(
    path: &Path,
    signature: Option<&brasa::Signature>,
    from: &GoldenSource,
) -> Result<GoldenCheck> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file: GoldenFile =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a golden check", path.display()))?;
    let independent = !file.source.trim().is_empty() && !file.source.to_lowercase().contains("brasa");
    let mut golden = GoldenCheck {
        inputs: file.inputs,
        outputs: file.outputs,
        tolerance: file.tolerance.unwrap_or(SELF_GOLDEN_TOLERANCE),
        source: file.source,
    };
    let feeds = golden.feeds().map_err(anyhow::Error::msg)?;
    if let Some(sig) = signature {
        sig.validate_inputs(&feeds, &brasa::Limits::default())
            .with_context(|| format!("the golden inputs of {} do not fit the model", path.display()))?;
    }
    if !from.self_golden {
        if golden.outputs.is_empty() || file.tolerance.is_none() {
            bail!(
                "{}: a golden check needs expected `outputs` and a `tolerance` (or --self-golden to compute them with brasa)",
                path.display()
            );
        }
        if !independent {
            let what = if golden.source.trim().is_empty() {
                "has no `source`".to_string()
            } else {
                format!("names brasa as its `source` ({:?})", golden.source)
            };
            bail!(
                "{}: the golden check {what}: say which independent reference computed the outputs (onnxruntime, PyTorch, numpy); a golden computed by brasa itself cannot catch brasa's own errors (pass --self-golden to publish one knowingly)",
                path.display()
            );
        }
    }
    let computed = from.self_golden && golden.outputs.is_empty();
    if computed {
        let build = from
            .build
            .context("--self-golden without `outputs` computes them with the package: pass --build DIR")?;
        golden.outputs = self_computed_outputs(build, from.weights, &golden)?;
        golden.source = format!("brasa {} (self-computed with --self-golden)", env!("CARGO_PKG_VERSION"));
    } else if from.self_golden && golden.source.trim().is_empty() {
        // The manifest says where the outputs came from, even when the file did not.
        golden.source = "not named (accepted with --self-golden)".into();
    }
    if from.self_golden && !independent {
        let how = if computed {
            "were computed by brasa itself (--self-golden)"
        } else {
            "name no independent `source` and are taken as brasa's own (--self-golden)"
        };
        eprintln!(
            "warning: {}: the golden outputs {how}; clients that disagree with this build are caught, brasa's own errors are not",
            path.display()
        );
    }
    brasa::types::TensorJson::to_map(&golden.outputs).map_err(anyhow::Error::msg)?;
    // NaN tolerances fail too.
    if golden.outputs.is_empty() || golden.tolerance.is_nan() || golden.tolerance < 0.0 {
        bail!("{}: a golden check needs expected outputs and a tolerance >= 0", path.display());
    }
    if let Some(sig) = signature
        && let Some(out) = golden.outputs.iter().find(|o| sig.output(&o.name).is_none())
    {
        bail!("{}: the model has no output `{}`", path.display(), out.name);
    }
    Ok(golden)
}

/// Run the package's CPU build under Node on the golden inputs and these weights.
fn self_computed_outputs(
    build: &Path,
    weights: &Path,
    golden: &GoldenCheck,
) -> Result<Vec<brasa::types::TensorJson>> {
    const SCRIPT: &str = r#"
const [dir, weights] = process.argv.slice(1);
const fs = await import('node:fs');
const { pathToFileURL } = await import('node:url');
const glue = await import(pathToFileURL(`${dir}/cpu/model.js`).href);
glue.initSync({ module: fs.readFileSync(`${dir}/cpu/model_bg.wasm`) });
const golden = JSON.parse(fs.readFileSync(0, 'utf8'));
const model = await glue.loadModel(fs.readFileSync(weights), 'cpu');
const fetches = await model.run(glue.registryGoldenFeeds(golden));
// Raw little-endian bytes: brasa-types turns them into numbers (float16 included).
process.stdout.write(JSON.stringify(fetches.map(({ name, dtype, dims, data }) => ({
  name, dtype, dims: Array.from(dims),
  bytes: Array.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
}))));
"#;
    if !build.join("cpu/model.js").is_file() {
        bail!("{} has no CPU build to compute the golden outputs with", build.display());
    }
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", SCRIPT])
        .arg(build)
        .arg(weights)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running node (--self-golden computes the outputs with the package under Node)")?;
    let input = serde_json::to_vec(golden)?;
    child.stdin.take().context("node's stdin")?.write_all(&input)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("computing the golden outputs failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    #[derive(serde::Deserialize)]
    struct Fetch {
        name: String,
        dtype: brasa::DType,
        dims: Vec<usize>,
        bytes: Vec<u8>,
    }
    let fetches: Vec<Fetch> = serde_json::from_slice(&out.stdout).context("node returned no tensors")?;
    fetches
        .into_iter()
        .map(|f| {
            let values = brasa::Values::from_le_bytes(f.dtype, &f.bytes).with_context(|| {
                format!("output `{}`: {} bytes are no {} tensor", f.name, f.bytes.len(), f.dtype)
            })?;
            Ok(brasa::types::TensorJson::from_host(&f.name, &brasa::HostTensor::new(f.dims, values)))
        })
        .collect()
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

fn load(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Manifest::from_json(&bytes)?)
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
