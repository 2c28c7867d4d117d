use std::future::Future;
use std::pin::Pin;

use brasa_types::{HostTensor, Limits, Signature, TensorError, TensorMap};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, TensorData};

use crate::backend::{BackendKind, acquire_device};
use crate::error::{BrasaError, Result};
use crate::model::{Inputs, Model, Pending, values_of};
use crate::weights::{WeightsSummary, inspect_weights, widen_to_f32};

/// One output of a forward pass before read-back: name, dims, the flattened tensor.
type PendingOutput = (String, Vec<usize>, Pending);

/// Most items accepted in one call by default ([`Limits::default`]).
pub const MAX_BATCH: usize = 1024;

/// A boxed future of one run (not `Send`: in wasm everything lives on one thread).
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<TensorMap>> + 'a>>;

/// A loaded model, whatever its architecture: what bindings and servers hold.
///
/// Object-safe, so one binding serves any [`Model`] behind `Box<dyn Servable>`; it knows
/// no model and no task.
pub trait Servable {
    /// The model's name.
    fn name(&self) -> &str;
    /// Its signature.
    fn signature(&self) -> &Signature;
    /// Facts for task layers ([`Model::metadata`]).
    fn metadata(&self) -> serde_json::Value;
    /// The backend it runs on.
    fn backend(&self) -> BackendKind;
    /// What its weights hold.
    fn weights(&self) -> &WeightsSummary;
    /// The per-call limits it enforces.
    fn limits(&self) -> Limits;
    /// The same model with other weights on the same device; `self` is untouched (so callers
    /// swap atomically and runs in flight finish on the old weights).
    fn with_weights(&self, weights: &[u8]) -> Result<Box<dyn Servable>>;
    /// Run: validate `feeds`, forward, read every output back, validate the fetches.
    fn run(&self, feeds: TensorMap) -> RunFuture<'_>;
    /// [`Servable::run`], blocking until it finishes (native callers).
    fn run_blocking(&self, feeds: TensorMap) -> Result<TensorMap>;
}

/// A model of type `M` with weights loaded on one backend, ready to run.
///
/// A session never holds half-loaded weights: loading builds a complete new module and only
/// then replaces the old one, so a failed load leaves a working session as it was.
#[derive(Debug)]
pub struct Session<M: Model> {
    net: M,
    device: Device,
    backend: BackendKind,
    weights: WeightsSummary,
    signature: Signature,
    limits: Limits,
}

impl<M: Model> Session<M> {
    /// Load burnpack `weights` on `backend`.
    pub async fn load(weights: &[u8], backend: BackendKind) -> Result<Self> {
        // Validate before acquiring a device: bad bytes should fail fast and cheaply.
        let summary = inspect_weights(weights)?;
        let device = acquire_device(backend).await?;
        Self::assemble(weights, summary, device, backend)
    }

    /// Load `weights` on an already acquired `device` (synchronous; native callers and tests).
    pub fn load_on(weights: &[u8], device: Device, backend: BackendKind) -> Result<Self> {
        Self::assemble(weights, inspect_weights(weights)?, device, backend)
    }

    fn assemble(
        weights: &[u8],
        summary: WeightsSummary,
        device: Device,
        backend: BackendKind,
    ) -> Result<Self> {
        let signature = M::signature();
        signature
            .check()
            .map_err(|e| BrasaError::Model(format!("the signature of `{}` is invalid: {e}", M::NAME)))?;
        let net = build_net::<M>(weights, &device)?;
        Ok(Session { net, device, backend, weights: summary, signature, limits: Limits::default() })
    }

    /// Set the per-call limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A new session with other `weights` on the same device.
    pub fn reload(&self, weights: &[u8]) -> Result<Self> {
        Ok(Self::load_on(weights, self.device.clone(), self.backend)?.with_limits(self.limits))
    }

    /// The module.
    pub fn net(&self) -> &M {
        &self.net
    }

    fn forward(&self, feeds: TensorMap) -> Result<(brasa_types::Resolved, Vec<PendingOutput>)> {
        let resolved = self.signature.validate_inputs(&feeds, &self.limits)?;
        let inputs = Inputs::new(feeds, resolved.clone(), self.device.clone());
        // On rayon's pool (threaded builds): each split of a layer is then a join, not a wait.
        let outputs = crate::parallel::on_pool(|| self.net.forward(inputs))?;
        Ok((resolved, outputs.entries))
    }

    fn finish(&self, resolved: &brasa_types::Resolved, fetches: TensorMap) -> Result<TensorMap> {
        self.signature.validate_outputs(&fetches, resolved).map_err(|e| match e {
            TensorError::BadOutput { .. } => BrasaError::Model(e.to_string()),
            other => BrasaError::Input(other),
        })?;
        Ok(fetches)
    }

    fn fetch(&self, name: String, dims: Vec<usize>, data: TensorData, out: &mut TensorMap) -> Result<()> {
        let spec = self.signature.output(&name).ok_or_else(|| {
            BrasaError::Model(format!("the model returned `{name}`, which its signature does not list"))
        })?;
        let values = values_of(data, spec.dtype).map_err(|e| self.execution_error(e))?;
        out.insert(name, HostTensor::new(dims, values));
        Ok(())
    }

    fn host(
        &self,
        name: String,
        dims: Vec<usize>,
        values: brasa_types::Values,
        out: &mut TensorMap,
    ) -> Result<()> {
        let want = self.signature.output(&name).map(|s| s.dtype).unwrap_or(values.dtype());
        out.insert(name, HostTensor::new(dims, values.cast(want)));
        Ok(())
    }

    fn execution_error(&self, detail: impl core::fmt::Display) -> BrasaError {
        BrasaError::Execution { backend: self.backend.to_string(), detail: detail.to_string() }
    }

    /// Run asynchronously (what WebGPU in a browser requires).
    pub async fn run(&self, feeds: TensorMap) -> Result<TensorMap> {
        let (resolved, entries) = self.forward(feeds)?;
        let mut out = TensorMap::new();
        for (name, dims, pending) in entries {
            let data = match pending {
                Pending::Float(t) => t.into_data_async().await,
                Pending::Int(t) => t.into_data_async().await,
                Pending::Bool(t) => t.into_data_async().await,
                Pending::Host(values) => {
                    self.host(name, dims, values, &mut out)?;
                    continue;
                }
            }
            .map_err(|e| self.execution_error(format!("{e:?}")))?;
            self.fetch(name, dims, data, &mut out)?;
        }
        self.finish(&resolved, out)
    }

    /// [`Session::run`], blocking the calling thread until it finishes: for native callers
    /// (tests, benchmarks). Not for the browser's main thread, where a GPU read-back
    /// completes only after the caller yields.
    pub fn run_blocking(&self, feeds: TensorMap) -> Result<TensorMap> {
        pollster::block_on(self.run(feeds))
    }
}

impl<M: Model> Servable for Session<M> {
    fn name(&self) -> &str {
        M::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn metadata(&self) -> serde_json::Value {
        M::metadata()
    }

    fn backend(&self) -> BackendKind {
        self.backend
    }

    fn weights(&self) -> &WeightsSummary {
        &self.weights
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn with_weights(&self, weights: &[u8]) -> Result<Box<dyn Servable>> {
        Ok(Box::new(self.reload(weights)?))
    }

    fn run(&self, feeds: TensorMap) -> RunFuture<'_> {
        Box::pin(Session::run(self, feeds))
    }

    fn run_blocking(&self, feeds: TensorMap) -> Result<TensorMap> {
        Session::run_blocking(self, feeds)
    }
}

/// Load `M` with `weights` on `backend`, boxed: what a binding's export calls.
pub async fn load<M: Model>(weights: &[u8], backend: BackendKind) -> Result<Box<dyn Servable>> {
    Ok(Box::new(Session::<M>::load(weights, backend).await?))
}

fn build_net<M: Model>(weights: &[u8], device: &Device) -> Result<M> {
    // f16 and q8 files are widened to f32 here, on both backends: burn-store would otherwise
    // load them as f16 or quantised parameters into a module computing in f32, which burn's
    // kernels do not serve on flex (and SwiftShader's WebGPU has no shader-f16).
    let widened = widen_to_f32(weights)?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(widened.unwrap_or_else(|| weights.to_vec())))
        .map_err(|e| BrasaError::CorruptWeights(e.to_string()))?;
    M::init(device)
        .try_load_record(record)
        .map_err(|e| BrasaError::ArchitectureMismatch { model: M::NAME.to_string(), detail: e.to_string() })
}
