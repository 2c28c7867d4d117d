//! `brasa bench`: native latency of a model on the CPU (burn-flex), per batch size, the same
//! way the browser benchmark measures, for the wasm/native ratio.

use std::path::Path;

use anyhow::{Context, Result, bail};
use brasa::latency::{measure_latency, report_json};
use brasa::{BackendKind, Session};
use brasa_mnist::Mnist;

pub fn run(model: &str, weights: &Path, batches: &[usize], warmup: usize, runs: usize) -> Result<()> {
    if model != "mnist" {
        bail!("unknown model `{model}`; this CLI serves: mnist");
    }
    let bytes = std::fs::read(weights).with_context(|| format!("reading {}", weights.display()))?;
    let session = pollster::block_on(Session::<Mnist>::load(&bytes, BackendKind::Cpu))?;
    let cells = measure_latency(&session, batches, warmup, runs)?;
    println!("{}", report_json(model, &cells));
    Ok(())
}
