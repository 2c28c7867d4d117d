use burn::module::Module;
use burn::tensor::{Device, Tensor};

/// One named tensor of a model's signature. Shapes exclude the batch dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The tensor's name (what the Open Inference Protocol calls it).
    pub name: &'static str,
    /// Per-item shape, without the leading batch dimension.
    pub shape: Vec<usize>,
    /// Element type; `"FP32"` for now.
    pub datatype: &'static str,
    /// What the values mean, for people.
    pub description: &'static str,
}

impl TensorSpec {
    /// Number of scalar values in one item.
    pub fn item_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The per-item shape as text, e.g. `1x28x28`.
    pub fn shape_text(&self) -> String {
        self.shape.iter().map(ToString::to_string).collect::<Vec<_>>().join("x")
    }
}

/// What a model's output values are, so probabilities are computed once, not twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Unnormalised scores: brasa takes the softmax of each row for the probabilities.
    Logits,
    /// Already probabilities (the graph ends in a softmax): used as they are.
    Probabilities,
}

/// The contract between a model and the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The single input tensor.
    pub input: TensorSpec,
    /// The single output tensor (logits or probabilities, per `output_kind`).
    pub output: TensorSpec,
    /// What the output values are.
    pub output_kind: OutputKind,
    /// Class names of the output, for classifiers.
    pub labels: Vec<String>,
}

/// A model architecture brasa can serve: a burn module, how to build it, and how to run it.
///
/// Weights are never part of the architecture: they arrive at run time as burnpack bytes, so
/// one compiled build serves every version of them.
pub trait Architecture: 'static {
    /// The model's name as callers write it (`loadModel('mnist')`).
    const NAME: &'static str;

    /// The burn module.
    type Net: Module + Clone + core::fmt::Debug;

    /// Input and output of the model.
    fn signature() -> Signature;

    /// A fresh, untrained module on `device`, to receive weights.
    fn init(device: &Device) -> Self::Net;

    /// Forward pass over a batch: `input` is `[batch, input.item_len()]`, the result is
    /// `[batch, output.item_len()]`. Inputs have already been validated (shape, finiteness).
    fn forward(net: &Self::Net, input: Tensor<2>) -> Tensor<2>;
}
