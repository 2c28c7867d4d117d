//! Native timing of brasa's fused CPU kernels at MNIST's shapes, batch 32:
//! `cargo run --release -p brasa --example kernel_bench`.
use std::time::Instant;

use brasa::kernels::{conv3x3_relu_maxpool2, relu_maxpool2};

fn main() {
    let batch = 32;
    let input: Vec<f32> = (0..batch * 784).map(|i| (i % 255) as f32 / 255.0).collect();
    let weight: Vec<f32> = (0..288).map(|i| ((i * 37) % 17) as f32 / 17.0 - 0.5).collect();
    let bias = vec![0.01f32; 32];
    let conv2_out: Vec<f32> = (0..batch * 64 * 196).map(|i| ((i * 13) % 29) as f32 - 14.0).collect();
    let runs = 200;
    let time = |f: &mut dyn FnMut() -> usize| {
        let mut sink = 0;
        for _ in 0..20 {
            sink += f();
        }
        let t = Instant::now();
        for _ in 0..runs {
            sink += f();
        }
        (t.elapsed().as_secs_f64() / runs as f64 * 1e3, sink)
    };
    let (conv, _) = time(&mut || {
        conv3x3_relu_maxpool2(&input, 28, &weight, &bias, 0.1307, 0.3081).map_or(0, |v| v.len())
    });
    let (pool, _) = time(&mut || relu_maxpool2(&conv2_out, 14).map_or(0, |v| v.len()));
    let macs = (batch * 32 * 784 * 9) as f64;
    println!(
        "conv1+relu+pool, batch 32: {conv:.3} ms ({:.1} GMAC/s); relu+pool2: {pool:.3} ms",
        macs / conv / 1e6
    );
}
