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

/// Generate a burn module from an ONNX graph (burn-onnx), weights as burnpack beside it.
/// With `brasa_kernels`, operators brasa has a faster CPU kernel for call it
/// ([`crate::onnx_kernels`]); without, the module uses burn's operators only.
pub fn onnx(input: &Path, out: &Path, brasa_kernels: bool) -> Result<()> {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{} has no file name", input.display()))?;
    let input_text = input.to_str().context("the ONNX path must be UTF-8")?;
    let out_text = out.to_str().context("the output path must be UTF-8")?;
    if !input.is_file() {
        bail!("{} is not a file", input.display());
    }
    std::fs::create_dir_all(out)?;
    // burn-onnx logs every step at DEBUG unless a subscriber is already installed.
    let _ =
        tracing_subscriber::fmt().with_max_level(tracing_subscriber::filter::LevelFilter::WARN).try_init();
    // It reports an unsupported or malformed graph by panicking: catch the message, quietly,
    // and return it as an error.
    let message = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = message.clone();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut m) = sink.lock() {
            *m = info.payload_as_str().unwrap_or("unknown error").to_string();
        }
    }));
    let generated = std::panic::catch_unwind(|| {
        // No loading code in the module: brasa loads weights itself, and the module then needs
        // neither burn-store nor its features in the wasm builds.
        let mut generator = burn_onnx::ModelGen::new();
        generator.input(input_text).out_dir(out_text).load_strategy(burn_onnx::LoadStrategy::None);
        if brasa_kernels {
            generator.register_op_override(crate::onnx_kernels::MaxPool2d);
        }
        generator.run_from_cli()
    });
    std::panic::set_hook(previous_hook);
    if generated.is_err() {
        let message = message.lock().map(|m| m.clone()).unwrap_or_default();
        bail!("burn-onnx could not import {}: {message}", input.display());
    }
    let weights = out.join(format!("{stem}.bpk"));
    let summary = brasa::inspect_weights(&std::fs::read(&weights)?)?;
    println!(
        "generated {} and {} ({} tensors, {} parameters)",
        out.join(format!("{stem}.rs")).display(),
        weights.display(),
        summary.tensors.len(),
        summary.parameters
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
