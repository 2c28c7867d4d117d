//! Native latency measurement, the way the browser benchmark measures: per-call wall time of
//! [`Servable::run_blocking`] after a warm-up (validation, copies and read-back included), as
//! median and p90. Used by the model crates' bench examples for the benchmark's wasm/native
//! ratio.

use std::collections::BTreeMap;
use std::time::Instant;

use brasa_types::{DType, Dim, HostTensor, Signature, TensorMap, Values};

use crate::error::Result;
use crate::session::Servable;

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
/// the latency examples print and the benchmark reads.
pub fn report_json(model: &str, cells: &[LatencyCell]) -> String {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| serde_json::json!({ "batch": c.batch, "medianMs": c.median_ms, "p90Ms": c.p90_ms, "runs": c.runs }))
        .collect();
    serde_json::json!({ "model": model, "backend": "cpu", "cells": cells }).to_string()
}

/// Feeds for `signature` with `batch` items and every named dimension at the size `dims`
/// gives (else its minimum, else 1): a fixed pattern in `[0, 1]` for floats, small
/// non-negative integers otherwise.
pub fn bench_feeds(signature: &Signature, batch: usize, dims: &BTreeMap<String, usize>) -> TensorMap {
    let mut feeds = TensorMap::new();
    for spec in &signature.inputs {
        let shape: Vec<usize> = spec
            .dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Batch => batch,
                Dim::Dynamic { name, min, .. } => dims.get(name).copied().unwrap_or(min.unwrap_or(1).max(1)),
            })
            .collect();
        let n: usize = shape.iter().product();
        let pattern = |i: usize| ((i * 7919) % 255) as f32 / 255.0;
        let values = match spec.dtype {
            DType::Float32 | DType::Float16 => {
                Values::Float32((0..n).map(pattern).collect()).cast(spec.dtype)
            }
            DType::Bool => Values::Bool((0..n).map(|i| i % 3 != 0).collect()),
            DType::String => Values::String((0..n).map(|i| "a sentence ".repeat(i % 7 + 1)).collect()),
            other => Values::Int64((0..n).map(|i| (i % 7) as i64).collect()).cast(other),
        };
        feeds.insert(spec.name.clone(), HostTensor::new(shape, values));
    }
    feeds
}

/// Time `runs` calls (at least one) per batch size after `warmup` untimed ones.
pub fn measure_latency(
    session: &dyn Servable,
    batches: &[usize],
    dims: &BTreeMap<String, usize>,
    warmup: usize,
    runs: usize,
) -> Result<Vec<LatencyCell>> {
    let runs = runs.max(1);
    let mut cells = Vec::with_capacity(batches.len());
    for &batch in batches {
        let feeds = bench_feeds(session.signature(), batch, dims);
        for _ in 0..warmup {
            session.run_blocking(feeds.clone())?;
        }
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let input = feeds.clone();
            let started = Instant::now();
            session.run_blocking(input)?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((q * samples.len() as f64) as usize).min(samples.len() - 1)];
        cells.push(LatencyCell { batch, median_ms: at(0.5), p90_ms: at(0.9), runs });
    }
    Ok(cells)
}
