//! SqueezeNet 1.0, the ImageNet-sized CNN of brasa's benchmarks, imported from ONNX.
//!
//! The graph is the ONNX project's `light_squeezenet` (onnx 1.22.0's backend test data) with
//! seeded random weights (`bench/export_squeezenet.py`): the same graph onnxruntime-web runs
//! in the benchmark. `brasa import-onnx` turns it into a burn module (included below) and
//! burnpack weights, which arrive at run time like any brasa model's.

use brasa::{DType, Dim, Inputs, Model as BrasaModel, Outputs, Signature, TensorSpec};
use burn::tensor::Device;

#[allow(clippy::all, missing_docs, unused, unused_qualifications)]
mod generated {
    include!(env!("BRASA_SQUEEZENET_RS"));
}

/// The generated burn module; it is the servable model ([`BrasaModel`]).
pub use generated::Model as SqueezeNet;

/// Side of the square input image.
pub const IMAGE_SIDE: usize = 224;
/// Colour channels of the input.
pub const CHANNELS: usize = 3;
/// ImageNet classes.
pub const CLASSES: usize = 1000;
/// The graph's input name.
pub const INPUT: &str = "data_0";
/// The graph's output name.
pub const OUTPUT: &str = "softmaxout_1";

impl BrasaModel for SqueezeNet {
    const NAME: &'static str = "squeezenet";

    fn signature() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec::new(
                    INPUT,
                    DType::Float32,
                    vec![Dim::Batch, Dim::Fixed(CHANNELS), Dim::Fixed(IMAGE_SIDE), Dim::Fixed(IMAGE_SIDE)],
                )
                .describe("224x224 RGB image, channels first, normalised (ImageNet mean/std)"),
            ],
            outputs: vec![
                TensorSpec::new(OUTPUT, DType::Float32, vec![Dim::Batch, Dim::Fixed(CLASSES)])
                    .describe("class probabilities (the graph ends in a softmax)"),
            ],
        }
    }

    /// A classifier whose output already is probabilities.
    fn metadata() -> serde_json::Value {
        serde_json::json!({ "task": "classification", "output": OUTPUT, "activation": "none" })
    }

    fn init(device: &Device) -> Self {
        SqueezeNet::new(device)
    }

    fn forward(&self, mut inputs: Inputs) -> brasa::Result<Outputs> {
        let x = inputs.float::<4>(INPUT)?;
        let [batch, _, _, _] = x.dims();
        Ok(Outputs::new().float(OUTPUT, SqueezeNet::forward(self, x).reshape([batch, CLASSES])))
    }
}
