//! Where the MNIST forward pass spends its time on burn-flex, layer by layer, at batch 1 and
//! 32 (each stage materialised before the next, so the figures add up to slightly more than
//! a fused pass). Run: `cargo run --release -p brasa-mnist --example layer_profile`
//! (or without `--release`: dependencies are built at opt-level 3 either way).

use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

fn main() {
    let device = Device::flex();
    let conv = |c: [usize; 2]| {
        Conv2dConfig::new(c, [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device)
    };
    let (conv1, conv2) = (conv([1, 32]), conv([32, 64]));
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let (fc1, fc2) = (LinearConfig::new(3136, 128).init(&device), LinearConfig::new(128, 10).init(&device));
    for batch in [1usize, 32] {
        let runs = if batch == 1 { 2000 } else { 100 };
        let mut totals: Vec<(&str, f64)> = Vec::new();
        for run in 0..runs + runs / 4 {
            let mut stage = |name: &'static str, f: &mut dyn FnMut()| {
                let t = Instant::now();
                f();
                if run >= runs / 4 {
                    match totals.iter_mut().find(|(n, _)| *n == name) {
                        Some(entry) => entry.1 += t.elapsed().as_secs_f64(),
                        None => totals.push((name, t.elapsed().as_secs_f64())),
                    }
                }
            };
            let x: Tensor<4> = Tensor::ones([batch, 1, 28, 28], &device);
            let mut a = None;
            stage("conv1", &mut || a = Some(conv1.forward(x.clone()).into_data()));
            let t = Tensor::<4>::from_data(a.take().unwrap(), &device);
            stage("relu+pool1", &mut || a = Some(pool.forward(relu(t.clone())).into_data()));
            let t = Tensor::<4>::from_data(a.take().unwrap(), &device);
            stage("conv2", &mut || a = Some(conv2.forward(t.clone()).into_data()));
            let t = Tensor::<4>::from_data(a.take().unwrap(), &device);
            stage("relu+pool2", &mut || a = Some(pool.forward(relu(t.clone())).into_data()));
            let t = Tensor::<4>::from_data(a.take().unwrap(), &device).reshape([batch, 3136]);
            let mut b = None;
            stage("fc1+relu", &mut || b = Some(relu(fc1.forward(t.clone())).into_data()));
            let t = Tensor::<2>::from_data(b.take().unwrap(), &device);
            stage("fc2", &mut || b = Some(fc2.forward(t.clone()).into_data()));
        }
        let sum: f64 = totals.iter().map(|(_, s)| s).sum();
        println!("batch {batch}: {:.3} ms per pass", sum / runs as f64 * 1e3);
        for (name, s) in &totals {
            println!("  {name:<11} {:>8.3} ms  {:>5.1}%", s / runs as f64 * 1e3, s / sum * 100.0);
        }
    }
}
