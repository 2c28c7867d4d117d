//! `brasa bench`: native latency of a model on the CPU (burn-flex), per batch size, the same
//! way the browser benchmark measures (median and p90 of per-call wall time after a warm-up,
//! input copy and output read included), for the wasm/native ratio.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use brasa::{BackendKind, Session};
use brasa_mnist::Mnist;

pub fn run(model: &str, weights: &Path, batches: &[usize], warmup: usize, runs: usize) -> Result<()> {
    if model != "mnist" {
        bail!("unknown model `{model}`; this CLI serves: mnist");
    }
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let bytes = std::fs::read(weights).with_context(|| format!("reading {}", weights.display()))?;
    let session = pollster::block_on(Session::<Mnist>::load(&bytes, BackendKind::Cpu))?;
    let mut cells = Vec::new();
    for &batch in batches {
        // The browser benchmark's input: a fixed pattern in [0, 1].
        let input: Vec<f32> = (0..784 * batch).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
        for _ in 0..warmup {
            session.run_blocking(&input)?;
        }
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            session.run_blocking(&input)?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((q * samples.len() as f64) as usize).min(samples.len() - 1)];
        cells
            .push(serde_json::json!({ "batch": batch, "medianMs": at(0.5), "p90Ms": at(0.9), "runs": runs }));
    }
    println!("{}", serde_json::json!({ "model": model, "backend": "cpu", "cells": cells }));
    Ok(())
}
