//! What a servable model is ([`Model`]), and the named tensors its forward pass takes
//! ([`Inputs`]) and gives ([`Outputs`]).

use std::collections::BTreeMap;

use brasa_types::{DType, HostTensor, Resolved, Signature, Values};
use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::error::{BrasaError, Result};

/// A Burn model brasa can serve: a burn module with a signature and a forward pass over named
/// tensors. Implement it in your own crate, depending on `brasa`, and `brasa build` turns the
/// crate into a package of wasm builds that serve exactly this model.
///
/// Weights are never part of the build: they arrive at run time as burnpack bytes
/// (`brasa import`, `brasa build --onnx`), so one build serves every version of them.
///
/// `Sync`: a threaded build runs the forward pass on a thread of its pool (burn's modules are).
///
/// ```ignore
/// impl brasa::Model for MyNet {
///     const NAME: &'static str = "my-net";
///     fn signature() -> Signature { … }
///     fn init(device: &Device) -> Self { MyNet::new(device) }
///     fn forward(&self, mut inputs: Inputs) -> brasa::Result<Outputs> {
///         let x = inputs.float::<2>("x")?;
///         Ok(Outputs::new().float("y", self.linear.forward(x)))
///     }
/// }
/// ```
pub trait Model: Module + Clone + core::fmt::Debug + Sized + Sync + 'static {
    /// The model's name: its registry folder and its name in KServe URLs (`[a-z0-9-]`).
    const NAME: &'static str;

    /// What the model takes and gives. Feeds are validated against it before
    /// [`Model::forward`] runs, and fetches after.
    fn signature() -> Signature;

    /// Free-form facts for task layers on top (class labels, what the output means),
    /// written to the build's `model.json` as `metadata`. The runtime never reads it.
    fn metadata() -> serde_json::Value {
        serde_json::Value::Null
    }

    /// A fresh module on `device`, to receive weights.
    fn init(device: &Device) -> Self;

    /// The forward pass. `inputs` holds every input of the signature, already validated
    /// (dtype, dims, element count, finiteness, ranges); return every output.
    fn forward(&self, inputs: Inputs) -> Result<Outputs>;
}

/// The validated feeds of one run, as burn tensors on the session's device.
#[derive(Debug)]
pub struct Inputs {
    feeds: BTreeMap<String, HostTensor>,
    resolved: Resolved,
    device: Device,
}

impl Inputs {
    /// Feeds validated against the signature (crate-internal: [`crate::Session`] makes them).
    pub(crate) fn new(feeds: BTreeMap<String, HostTensor>, resolved: Resolved, device: Device) -> Self {
        Inputs { feeds, resolved, device }
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The batch size, when the signature has a batch.
    pub fn batch(&self) -> Option<usize> {
        self.resolved.batch
    }

    /// The size of a named dynamic dimension (`seq`, `height`).
    pub fn dim(&self, name: &str) -> Option<usize> {
        self.resolved.dims.get(name).copied()
    }

    /// The dims of input `name`.
    pub fn dims_of(&self, name: &str) -> Option<&[usize]> {
        self.feeds.get(name).map(|t| t.dims.as_slice())
    }

    /// The host data of input `name`, taken out (for CPU kernels that want plain slices).
    pub fn take_host(&mut self, name: &str) -> Result<HostTensor> {
        self.feeds.remove(name).ok_or_else(|| missing(name))
    }

    fn take<const D: usize>(&mut self, name: &str) -> Result<(HostTensor, [usize; D])> {
        let tensor = self.take_host(name)?;
        if tensor.dtype() == DType::String {
            return Err(BrasaError::Model(format!(
                "input `{name}` holds strings, which no burn tensor holds: read it with take_host"
            )));
        }
        let dims: [usize; D] = tensor.dims.as_slice().try_into().map_err(|_| {
            BrasaError::Model(format!(
                "the model reads input `{name}` as rank {D}, but its signature gives it rank {}",
                tensor.dims.len()
            ))
        })?;
        Ok((tensor, dims))
    }

    /// Input `name` as a float tensor of rank `D` (float32 and float16 feeds; integers and
    /// booleans are converted too, so a `uint8` image can be read as floats).
    pub fn float<const D: usize>(&mut self, name: &str) -> Result<Tensor<D>> {
        let (tensor, dims) = self.take::<D>(name)?;
        let values = match tensor.values {
            Values::Float32(v) => v,
            other => other.to_f32(),
        };
        Ok(Tensor::from_data(TensorData::new(values, dims), &self.device))
    }

    /// Input `name` as an integer tensor of rank `D` (the backend's int; values beyond its
    /// range wrap as Rust's `as` does).
    pub fn int<const D: usize>(&mut self, name: &str) -> Result<Tensor<D, Int>> {
        let (tensor, dims) = self.take::<D>(name)?;
        Ok(Tensor::from_data(TensorData::new(tensor.values.to_i64(), dims), &self.device))
    }

    /// Input `name` as a boolean tensor of rank `D`.
    pub fn bool<const D: usize>(&mut self, name: &str) -> Result<Tensor<D, Bool>> {
        let (tensor, dims) = self.take::<D>(name)?;
        Ok(Tensor::from_data(TensorData::new(tensor.values.to_bool(), dims), &self.device))
    }

    /// Input `name` as one scalar (a rank-0 or one-element tensor), as `i64` (ONNX graphs'
    /// scalar inputs such as a sample rate).
    pub fn scalar_i64(&mut self, name: &str) -> Result<i64> {
        let tensor = self.take_host(name)?;
        tensor.values.to_i64().first().copied().ok_or_else(|| missing(name))
    }

    /// Input `name` as one `f32` scalar.
    pub fn scalar_f32(&mut self, name: &str) -> Result<f32> {
        let tensor = self.take_host(name)?;
        tensor.values.to_f32().first().copied().ok_or_else(|| missing(name))
    }
}

fn missing(name: &str) -> BrasaError {
    BrasaError::Model(format!(
        "the model reads input `{name}`, which its signature does not have (or it was read twice)"
    ))
}

/// One output before it is read back from the device: flattened, with its dims.
#[derive(Debug)]
pub(crate) enum Pending {
    Float(Tensor<1>),
    Int(Tensor<1, Int>),
    Bool(Tensor<1, Bool>),
    Host(Values),
}

/// The fetches of one run: burn tensors (read back asynchronously after the forward pass,
/// as WebGPU requires) or host values.
#[derive(Debug, Default)]
pub struct Outputs {
    pub(crate) entries: Vec<(String, Vec<usize>, Pending)>,
}

fn flatten<const D: usize, K: burn::tensor::kind::Basic>(t: Tensor<D, K>) -> (Vec<usize>, Tensor<1, K>) {
    let dims = t.dims().to_vec();
    let n = dims.iter().product::<usize>();
    (dims, t.reshape([n]))
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Outputs::default()
    }

    /// Add a float output (converted to its declared dtype: float32 or float16).
    pub fn float<const D: usize>(mut self, name: &str, tensor: Tensor<D>) -> Self {
        let (dims, flat) = flatten(tensor);
        self.entries.push((name.into(), dims, Pending::Float(flat)));
        self
    }

    /// Add an integer output (converted to its declared dtype).
    pub fn int<const D: usize>(mut self, name: &str, tensor: Tensor<D, Int>) -> Self {
        let (dims, flat) = flatten(tensor);
        self.entries.push((name.into(), dims, Pending::Int(flat)));
        self
    }

    /// Add a boolean output.
    pub fn bool<const D: usize>(mut self, name: &str, tensor: Tensor<D, Bool>) -> Self {
        let (dims, flat) = flatten(tensor);
        self.entries.push((name.into(), dims, Pending::Bool(flat)));
        self
    }

    /// Add an output computed on the host (CPU kernels).
    pub fn host(mut self, name: &str, tensor: HostTensor) -> Self {
        self.entries.push((name.into(), tensor.dims, Pending::Host(tensor.values)));
        self
    }
}

/// Host values of burn data, in the dtype `want`.
pub(crate) fn values_of(data: TensorData, want: DType) -> std::result::Result<Values, String> {
    let err = |e: burn::tensor::DataError| format!("{e:?}");
    let values = match want {
        DType::Float32 | DType::Float16 => Values::Float32(data.try_into_vec_as::<f32>().map_err(err)?),
        DType::Int64 | DType::Int32 | DType::Uint8 => {
            Values::Int64(data.try_into_vec_as::<i64>().map_err(err)?)
        }
        DType::Bool => Values::Bool(data.try_into_vec_as::<bool>().map_err(err)?),
        DType::String => {
            return Err("a burn tensor holds no strings: give a string output with Outputs::host".into());
        }
    };
    Ok(values.cast(want))
}
