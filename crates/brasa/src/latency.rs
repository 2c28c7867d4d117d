//! Native latency measurement, the way the browser benchmark measures: per-call wall time of
//! [`Session::run_blocking`] after a warm-up (input validation, copies and output read
//! included), as median and p90. Used by `brasa bench` and the model crates' bench examples,
//! for the benchmark's wasm/native ratio.

use std::time::Instant;

use crate::error::Result;
use crate::servable::Architecture;
use crate::session::Session;

/// Latency of one batch size.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyCell {
    /// Items per call.
    pub batch: usize,
    /// Median milliseconds per call.
    pub median_ms: f64,
    /// 90th percentile, milliseconds per call.
    pub p90_ms: f64,
    /// Timed calls.
    pub runs: usize,
}

/// `{"model", "backend": "cpu", "cells": [{"batch", "medianMs", "p90Ms", "runs"}]}`: what
/// `brasa bench` and the model crates' latency examples print, and the benchmark reads.
pub fn report_json(model: &str, cells: &[LatencyCell]) -> String {
    let cells: Vec<String> = cells
        .iter()
        .map(|c| {
            format!(
                r#"{{"batch":{},"medianMs":{},"p90Ms":{},"runs":{}}}"#,
                c.batch, c.median_ms, c.p90_ms, c.runs
            )
        })
        .collect();
    // Model names are identifiers (`[a-z0-9-]`): nothing to escape.
    format!(r#"{{"model":"{model}","backend":"cpu","cells":[{}]}}"#, cells.join(","))
}

/// The benchmark's input: a fixed pattern in `[0, 1]`, `len` values.
pub fn bench_input(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect()
}

/// Time `runs` calls (at least one) per batch size after `warmup` untimed ones.
pub fn measure_latency<A: Architecture>(
    session: &Session<A>,
    batches: &[usize],
    warmup: usize,
    runs: usize,
) -> Result<Vec<LatencyCell>> {
    let runs = runs.max(1);
    let item = session.signature().input.item_len();
    let mut cells = Vec::with_capacity(batches.len());
    for &batch in batches {
        let input = bench_input(item * batch);
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
        cells.push(LatencyCell { batch, median_ms: at(0.5), p90_ms: at(0.9), runs });
    }
    Ok(cells)
}
