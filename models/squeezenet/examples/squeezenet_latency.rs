//! Native CPU latency of SqueezeNet (burn-flex), printed as `brasa bench` prints it,
//! for the benchmark's wasm/native ratio. (`brasa bench` cannot serve SqueezeNet: the CLI
//! generates this crate's module, so it cannot depend on it.)
//!
//! `cargo run -p brasa-squeezenet --example squeezenet_latency -- WEIGHTS.bpk [WARMUP RUNS]` (the dev profile
//! builds every dependency at opt-level 3).

use brasa::latency::{measure_latency, report_json};
use brasa::{BackendKind, Session};
use brasa_squeezenet::SqueezeNet as Squeezenet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let weights = args.next().ok_or("usage: squeezenet_latency WEIGHTS.bpk [WARMUP RUNS]")?;
    let warmup = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let runs = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let bytes = std::fs::read(&weights)?;
    let session = pollster::block_on(Session::<Squeezenet>::load(&bytes, BackendKind::Cpu))?;
    // Batch 32 gets a third of the runs: one call is ~32 batch-1 calls.
    let dims = Default::default();
    let mut cells = measure_latency(&session, &[1], &dims, warmup, runs)?;
    cells.extend(measure_latency(&session, &[32], &dims, warmup.div_ceil(3), runs.div_ceil(3))?);
    println!("{}", report_json("squeezenet", &cells));
    Ok(())
}
