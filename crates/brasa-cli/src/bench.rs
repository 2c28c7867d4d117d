//! `brasa bench`: native latency of a model on the CPU (burn-flex), per batch size, the same
//! way the browser benchmark measures, for the wasm/native ratio.

use std::path::Path;

use anyhow::{Context, Result, bail};
use brasa::latency::measure_latency;
use brasa::{BackendKind, Session};
use brasa_mnist::Mnist;

pub fn run(model: &str, weights: &Path, batches: &[usize], warmup: usize, runs: usize) -> Result<()> {
    if model != "mnist" {
        bail!("unknown model `{model}`; this CLI serves: mnist");
    }
    let bytes = std::fs::read(weights).with_context(|| format!("reading {}", weights.display()))?;
    let session = pollster::block_on(Session::<Mnist>::load(&bytes, BackendKind::Cpu))?;
    let cells = measure_latency(&session, batches, warmup, runs)?;
    println!("{}", latency_json(model, &cells));
    Ok(())
}

/// `{ model, backend, cells: [{ batch, medianMs, p90Ms, runs }] }`, what the benchmark reads.
pub fn latency_json(model: &str, cells: &[brasa::latency::LatencyCell]) -> serde_json::Value {
    let cells: Vec<_> = cells
        .iter()
        .map(|c| serde_json::json!({ "batch": c.batch, "medianMs": c.median_ms, "p90Ms": c.p90_ms, "runs": c.runs }))
        .collect();
    serde_json::json!({ "model": model, "backend": "cpu", "cells": cells })
}
