//! `brasa registry`: a static model registry on disk. The layout is
//! `<registry>/<model>/manifest.json` plus `<registry>/<model>/files/sha256-<hex>.<ext>`.
//! Files are written before the manifest that names them, and every write goes to a
//! temporary file first and is renamed into place, so a reader (or a CDN sync) never sees a
//! manifest pointing at a missing or half-written file.

use std::path::{Path, PathBuf};

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
        /// (onnxruntime, PyTorch, numpy) on these weights. Clients run the inputs and refuse
        /// the version unless they get the outputs.
        #[arg(long, required_unless_present = "no_golden")]
        golden: Option<PathBuf>,
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
        RegistryCommand::Publish { model, version, weights, channel, notes, golden, no_golden: _, build } => {
            let bytes = std::fs::read(&weights).with_context(|| format!("reading {}", weights.display()))?;
            brasa::inspect_weights(&bytes).with_context(|| format!("checking {}", weights.display()))?;
            let signature = build.as_deref().map(|dir| build_signature(dir, &model)).transpose()?;
            let golden = golden.as_deref().map(|path| golden_check(path, signature.as_ref())).transpose()?;
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

/// Read a golden check and check it against the signature (when known): every input, no
/// unknown output, each tensor well-formed.
fn golden_check(path: &Path, signature: Option<&brasa::Signature>) -> Result<GoldenCheck> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let golden: GoldenCheck =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a golden check", path.display()))?;
    let feeds = golden.feeds().map_err(anyhow::Error::msg)?;
    brasa::types::TensorJson::to_map(&golden.outputs).map_err(anyhow::Error::msg)?;
    // NaN tolerances fail too.
    if golden.outputs.is_empty() || golden.tolerance.is_nan() || golden.tolerance < 0.0 {
        bail!("{}: a golden check needs expected outputs and a tolerance >= 0", path.display());
    }
    if let Some(sig) = signature {
        sig.validate_inputs(&feeds, &brasa::Limits::default())
            .with_context(|| format!("the golden inputs of {} do not fit the model", path.display()))?;
        if let Some(out) = golden.outputs.iter().find(|o| sig.output(&o.name).is_none()) {
            bail!("{}: the model has no output `{}`", path.display(), out.name);
        }
    }
    if golden.source.is_empty() || golden.source.contains("brasa") {
        eprintln!(
            "warning: {}: the golden outputs do not name an independent source (`source`); a golden computed by brasa itself cannot catch brasa's own errors",
            path.display()
        );
    }
    Ok(golden)
}

/// The signature in a model package's `model.json`, which must be the model's.
fn build_signature(dir: &Path, model: &str) -> Result<brasa::Signature> {
    let path = dir.join("model.json");
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
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
