//! `brasa registry`: a static model registry on disk. The layout is
//! `<registry>/<model>/manifest.json` plus `<registry>/<model>/files/sha256-<hex>.<ext>`.
//! Files are written before the manifest that names them, and every write goes to a
//! temporary file first and is renamed into place, so a reader (or a CDN sync) never sees a
//! manifest pointing at a missing or half-written file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use brasa::burn::tensor::Device;
use brasa::{Architecture, BackendKind, Session};
use brasa_mnist::Mnist;
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
        #[arg(long, default_value = "mnist")]
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
        #[arg(long, default_value = "mnist")]
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
    #[arg(long, default_value = "mnist")]
    model: String,
    /// Channel name, e.g. stable or canary.
    #[arg(long)]
    channel: String,
}

pub fn run(registry: &Path, command: RegistryCommand) -> Result<()> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    match command {
        RegistryCommand::Publish { model, version, weights, channel, notes } => {
            let bytes = std::fs::read(&weights).with_context(|| format!("reading {}", weights.display()))?;
            let golden = golden_check(&model, &bytes)?;
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
                signature: None,
                golden: Some(golden),
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

/// Run the weights natively on a fixed input; clients check they get the same output before
/// adopting the version.
fn golden_check(model: &str, weights: &[u8]) -> Result<GoldenCheck> {
    if model != Mnist::NAME {
        bail!("unknown model `{model}`; this registry publishes: {}", Mnist::NAME);
    }
    let session = Session::<Mnist>::load_on(weights, Device::flex(), BackendKind::Cpu)?;
    // A plain vertical stroke, the same on every run.
    let mut input = vec![0.0f32; 784];
    for y in 5..23 {
        for x in 13..16 {
            input[y * 28 + x] = 1.0;
        }
    }
    let prediction = session.run_blocking(&input)?;
    Ok(GoldenCheck { input, expected: prediction.logits, tolerance: 1e-3 })
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
