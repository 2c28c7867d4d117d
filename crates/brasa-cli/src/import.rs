use std::path::Path;

use anyhow::{Context, Result, bail};
use brasa::Architecture;
use brasa::burn::module::Module;
use brasa::burn::tensor::Device;
use brasa_mnist::{Mnist, PYTORCH_KEY_MAP};
use burn_store::{ModuleSnapshot, PytorchStore};

/// Read a PyTorch state dict, map its keys onto the brasa architecture, and write burnpack.
pub fn run(model: &str, input: &Path, output: &Path) -> Result<()> {
    if model != Mnist::NAME {
        bail!("unknown model `{model}`; this CLI imports: {}", Mnist::NAME);
    }
    let device = Device::flex();
    let mut net = Mnist::init(&device);
    let mut store = PytorchStore::from_file(input).map_indices_contiguous(false);
    for (from, to) in PYTORCH_KEY_MAP {
        store = store.with_key_remapping(*from, *to);
    }
    let result = net
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading {}", input.display()))?;
    if !result.unused.is_empty() {
        bail!(
            "{} holds tensors the {model} architecture has no place for: {:?}",
            input.display(),
            result.unused
        );
    }
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Write next to the target, then rename: a reader never sees half a file.
    let tmp = output.with_extension("bpk.tmp");
    let bytes = net.into_record().into_bytes().map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(&tmp, &bytes[..]).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output)?;
    let summary = brasa::inspect_weights(&bytes[..])?;
    println!(
        "imported {} tensors ({} parameters) from {} -> {} ({} bytes)",
        summary.tensors.len(),
        summary.parameters,
        input.display(),
        output.display(),
        summary.bytes
    );
    Ok(())
}

/// Validate a burnpack file and print what it holds.
pub fn inspect(weights: &Path) -> Result<()> {
    let bytes = std::fs::read(weights).with_context(|| format!("reading {}", weights.display()))?;
    let summary = brasa::inspect_weights(&bytes)?;
    for (name, shape) in &summary.tensors {
        println!("{name:<16} {shape:?}");
    }
    println!("{} tensors, {} parameters, {} bytes", summary.tensors.len(), summary.parameters, summary.bytes);
    Ok(())
}
