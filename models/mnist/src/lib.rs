//! The MNIST digit classifier that brasa serves by default.
//!
//! The network matches `ccexam`'s `MNISTNet` (PyPI `ccexam` 1.0.0, MIT): two 3x3 convolutions
//! (1→32→64 channels, padding 1), each followed by ReLU and 2x2 max-pooling, then a 3136→128
//! linear layer, ReLU, and a 128→10 linear layer. Inputs are 28x28 grayscale intensities in
//! `[0, 1]` (1 = ink); the model applies MNIST's normalisation (mean 0.1307, std 0.3081) itself
//! so callers never need to know it.

use brasa::{DType, Dim, HostTensor, Inputs, Model, Outputs, Signature, TensorSpec, Values};
use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor, TensorData};

/// Side of the square input image.
pub const IMAGE_SIDE: usize = 28;
/// Mean of MNIST's training pixels, in `[0, 1]` units.
pub const PIXEL_MEAN: f32 = 0.1307;
/// Standard deviation of MNIST's training pixels.
pub const PIXEL_STD: f32 = 0.3081;

/// The burn module; it is the servable model ([`Model`]).
#[derive(Module, Debug)]
pub struct MnistNet {
    /// brasa's convolutions: burn's parameters under burn's names, brasa's kernels on the CPU
    /// (so a CPU build links no convolution of burn's).
    conv1: brasa::ops::Conv2d,
    conv2: brasa::ops::Conv2d,
    fc1: Linear,
    fc2: Linear,
    relu: Relu,
}

impl MnistNet {
    /// A fresh module (random parameters) on `device`.
    pub fn new(device: &Device) -> Self {
        let conv = |channels| {
            Conv2dConfig::new(channels, [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            conv1: brasa::ops::Conv2d::from(conv([1, 32])),
            conv2: brasa::ops::Conv2d::from(conv([32, 64])),
            fc1: LinearConfig::new(64 * 7 * 7, 128).init(device),
            fc2: LinearConfig::new(128, 10).init(device),
            relu: Relu::new(),
        }
    }

    /// `[batch, 784]` intensities in `[0, 1]` → `[batch, 10]` logits. brasa's ops: on the CPU
    /// its kernels (conv2 by Winograd's F(2×2, 3×3)), burn's operators elsewhere.
    pub fn logits(&self, pixels: Tensor<2>) -> Tensor<2> {
        let [batch, _] = pixels.dims();
        let x = pixels.reshape([batch, 1, IMAGE_SIDE, IMAGE_SIDE]);
        let x = (x - PIXEL_MEAN) / PIXEL_STD;
        let pool = |x| brasa::ops::max_pool2d(x, [2, 2], [2, 2], [0; 4]);
        let x = pool(self.conv1.forward_relu(x));
        let x = pool(self.conv2.forward_relu(x));
        // Flattening NCHW in C, H, W order is what PyTorch's `flatten(start_dim=1)` does.
        let x = x.reshape([batch, 64 * 7 * 7]);
        let x = self.relu.forward(self.fc1.forward(x));
        self.fc2.forward(x)
    }
}

/// Name of the input tensor.
pub const INPUT: &str = "pixels";
/// Name of the output tensor.
pub const OUTPUT: &str = "logits";

impl Model for MnistNet {
    const NAME: &'static str = "mnist";

    fn signature() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec::new(
                    INPUT,
                    DType::Float32,
                    vec![Dim::Batch, Dim::Fixed(1), Dim::Fixed(IMAGE_SIDE), Dim::Fixed(IMAGE_SIDE)],
                )
                .describe("28x28 grayscale, row-major, values in [0, 1], 1 = ink (white digit on black)")
                .range(0.0, 1.0),
            ],
            outputs: vec![
                TensorSpec::new(OUTPUT, DType::Float32, vec![Dim::Batch, Dim::Fixed(10)])
                    .describe("unnormalised scores of the digits 0-9"),
            ],
        }
    }

    /// A classifier: softmax of `logits` gives the probabilities of the digits.
    fn metadata() -> serde_json::Value {
        let labels: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        serde_json::json!({ "task": "classification", "output": OUTPUT, "activation": "softmax", "labels": labels })
    }

    fn init(device: &Device) -> Self {
        MnistNet::new(device)
    }

    fn forward(&self, mut inputs: Inputs) -> brasa::Result<Outputs> {
        let HostTensor { dims, values } = inputs.take_host(INPUT)?;
        let batch = dims[0];
        let pixels = match values {
            Values::Float32(v) => v,
            other => other.to_f32(),
        };
        let pixels = Tensor::<2>::from_data(
            TensorData::new(pixels, [batch, IMAGE_SIDE * IMAGE_SIDE]),
            inputs.device(),
        );
        Ok(Outputs::new().float(OUTPUT, self.logits(pixels)))
    }
}
