//! Native timing of brasa's convolution at layer shapes of the benchmark models (one image
//! each; median of the runs), to compare algorithms and changes between builds:
//! `cargo run --release -p brasa --example kernel_bench`. The wasm figures that count come
//! from `cargo xtask bench`.
use std::time::Instant;

use brasa::conv::{Activation, Conv2dGeometry, PackedConv2d};

/// `(name, in, out, kernel, stride, padding, groups, side)`.
type Layer = (&'static str, usize, usize, usize, usize, usize, usize, usize);

const LAYERS: [Layer; 6] = [
    ("MNIST conv1 (GEMM, K = 9)", 1, 32, 3, 1, 1, 1, 28),
    ("MNIST conv2 (Winograd)", 32, 64, 3, 1, 1, 1, 14),
    ("SqueezeNet fire4 expand 3×3 (Winograd)", 32, 128, 3, 1, 1, 1, 54),
    ("PP-OCRv4 det neck 3×3 (Winograd)", 96, 24, 3, 1, 1, 1, 80),
    ("PP-OCRv4 det pointwise (GEMM in place)", 48, 96, 1, 1, 0, 1, 80),
    ("PP-OCRv4 det depthwise 5×5", 192, 192, 5, 1, 2, 192, 20),
];

fn main() {
    for (name, cin, cout, k, stride, pad, groups, side) in LAYERS {
        let geometry = Conv2dGeometry {
            in_channels: cin,
            out_channels: cout,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            padding: [pad; 4],
            groups,
        };
        let values = |len: usize, step: usize| -> Vec<f32> {
            (0..len).map(|i| ((i * step) % 97) as f32 / 97.0 - 0.5).collect()
        };
        let input = values(cin * side * side, 31);
        let weight = values(cout * cin / groups * k * k, 17);
        let packed = PackedConv2d::new(geometry, &weight, None).expect("a valid geometry");
        let [oh, ow] = geometry.output_size(side, side).expect("the kernel fits");
        let macs = (cout * oh * ow * cin / groups * k * k) as f64;
        let mut times: Vec<f64> = (0..60)
            .map(|_| {
                let t = Instant::now();
                let out = packed.run(&input, side, side, Activation::Relu).expect("a whole image");
                std::hint::black_box(out);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{name}: {median:.3} ms, {:.1} G multiply-adds/s of the direct definition",
            macs / median / 1e6
        );
    }
}
