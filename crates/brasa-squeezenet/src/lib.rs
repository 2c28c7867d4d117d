//! SqueezeNet 1.0, the ImageNet-sized CNN of brasa's benchmarks, imported from ONNX.
//!
//! The graph is the ONNX project's `light_squeezenet` (onnx 1.22.0's backend test data) with
//! seeded random weights (`bench/export_squeezenet.py`): the same graph onnxruntime-web runs
//! in the benchmark. `brasa import-onnx` turns it into a burn module (included below) and
//! burnpack weights, which arrive at run time like any brasa model's.

use brasa::{Architecture, OutputKind, Signature, TensorSpec};
use burn::tensor::{Device, Tensor};

#[allow(clippy::all, missing_docs, unused, unused_qualifications)]
mod generated {
    include!(env!("BRASA_SQUEEZENET_RS"));
}

/// The generated burn module.
pub use generated::Model as SqueezeNet;

/// Side of the square input image.
pub const IMAGE_SIDE: usize = 224;
/// Colour channels of the input.
pub const CHANNELS: usize = 3;
/// ImageNet classes.
pub const CLASSES: usize = 1000;

/// SqueezeNet, as brasa serves it.
#[derive(Debug, Clone, Copy)]
pub struct Squeezenet;

impl Architecture for Squeezenet {
    const NAME: &'static str = "squeezenet";
    type Net = SqueezeNet;

    fn signature() -> Signature {
        Signature {
            input: TensorSpec {
                name: "data_0",
                shape: vec![CHANNELS, IMAGE_SIDE, IMAGE_SIDE],
                datatype: "FP32",
                description: "224x224 RGB image, channels first, normalised (ImageNet mean/std)",
            },
            output: TensorSpec {
                name: "softmaxout_1",
                shape: vec![CLASSES],
                datatype: "FP32",
                description: "class probabilities (the graph ends in a softmax)",
            },
            output_kind: OutputKind::Probabilities,
            labels: (0..CLASSES).map(|c| format!("class {c}")).collect(),
        }
    }

    fn init(device: &Device) -> SqueezeNet {
        SqueezeNet::new(device)
    }

    fn forward(net: &SqueezeNet, input: Tensor<2>) -> Tensor<2> {
        let [batch, _] = input.dims();
        let x = input.reshape([batch, CHANNELS, IMAGE_SIDE, IMAGE_SIDE]);
        net.forward(x).reshape([batch, CLASSES])
    }
}
