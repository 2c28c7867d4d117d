//! Native CPU latency of the MNIST model (burn-flex plus brasa's fused kernels), as JSON
//! (`brasa::latency::report_json`), for the benchmark's wasm/native ratio.
//!
//! `cargo run -p brasa-mnist --example mnist_latency -- WEIGHTS.bpk [WARMUP RUNS]` (the dev
//! profile builds every dependency at opt-level 3).

use brasa::latency::{measure_latency, report_json};
use brasa::{BackendKind, Session};
use brasa_mnist::MnistNet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let weights = args.next().ok_or("usage: mnist_latency WEIGHTS.bpk [WARMUP RUNS]")?;
    let warmup = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let runs = args.next().map(|a| a.parse()).transpose()?.unwrap_or(300);
    let bytes = std::fs::read(&weights)?;
    let session = pollster::block_on(Session::<MnistNet>::load(&bytes, BackendKind::Cpu))?;
    let cells = measure_latency(&session, &[1, 32], &Default::default(), warmup, runs)?;
    println!("{}", report_json("mnist", &cells));
    Ok(())
}
