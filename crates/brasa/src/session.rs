use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor, TensorData};

use crate::backend::{BackendKind, acquire_device};
use crate::error::{BrasaError, Result};
use crate::output::Prediction;
use crate::servable::{Architecture, Signature};
use crate::weights::{WeightsSummary, inspect_weights};

/// Most items accepted in one call. Bounds the memory one request can claim; callers split
/// larger batches (the serving layer batches for them).
pub const MAX_BATCH: usize = 1024;

/// A model of architecture `A` with weights loaded on one backend, ready to run.
///
/// A session never holds half-loaded weights: loading builds a complete new module and only
/// then replaces the old one, so a failed load leaves a working session as it was.
#[derive(Debug)]
pub struct Session<A: Architecture> {
    net: A::Net,
    device: Device,
    backend: BackendKind,
    weights: WeightsSummary,
    // Built once: every run validates against it and it allocates (names, labels).
    signature: Signature,
}

impl<A: Architecture> Session<A> {
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
        let net = build_net::<A>(weights, &device)?;
        Ok(Session { net, device, backend, weights: summary, signature: A::signature() })
    }

    /// Replace the weights, keeping the backend. On error the current weights stay.
    pub fn replace_weights(&mut self, weights: &[u8]) -> Result<()> {
        *self = self.with_weights(weights)?;
        Ok(())
    }

    /// A new session with other `weights` on the same device; `self` is untouched, so callers
    /// can swap sessions atomically and in-flight runs finish on the old weights.
    pub fn with_weights(&self, weights: &[u8]) -> Result<Self> {
        Self::load_on(weights, self.device.clone(), self.backend)
    }

    /// The backend this session runs on.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// The architecture's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// What the loaded weights hold.
    pub fn weights(&self) -> &WeightsSummary {
        &self.weights
    }

    /// Check `input` against the signature and return the batch size.
    pub fn validate_input(&self, input: &[f32]) -> Result<usize> {
        validate_input(&self.signature, input)
    }

    /// Run a forward pass on a flat, row-major batch. Reads results back asynchronously,
    /// which is what WebGPU in a browser requires.
    pub async fn run(&self, input: &[f32]) -> Result<Prediction> {
        let (batch, logits) = self.forward(input)?;
        let data = logits.into_data_async().await.map_err(|e| self.execution_error(e))?;
        self.prediction(batch, data)
    }

    /// Synchronous [`Session::run`], for native callers and the CPU backend.
    pub fn run_blocking(&self, input: &[f32]) -> Result<Prediction> {
        let (batch, logits) = self.forward(input)?;
        let data = logits.try_into_data().map_err(|e| self.execution_error(e))?;
        self.prediction(batch, data)
    }

    fn forward(&self, input: &[f32]) -> Result<(usize, Tensor<2>)> {
        let batch = validate_input(&self.signature, input)?;
        let data = TensorData::new(input.to_vec(), [batch, self.signature.input.item_len()]);
        let tensor = Tensor::<2>::from_data(data, &self.device);
        Ok((batch, A::forward(&self.net, tensor)))
    }

    fn prediction(&self, batch: usize, data: TensorData) -> Result<Prediction> {
        let classes = self.signature.output.item_len();
        let logits: Vec<f32> = data.try_into_vec().map_err(|e| self.execution_error(format!("{e:?}")))?;
        if logits.len() != batch * classes {
            return Err(self.execution_error(format!(
                "expected {} output values, got {}",
                batch * classes,
                logits.len()
            )));
        }
        Ok(Prediction::from_outputs(logits, classes, self.signature.output_kind))
    }

    fn execution_error(&self, detail: impl core::fmt::Display) -> BrasaError {
        BrasaError::Execution { backend: self.backend.to_string(), detail: detail.to_string() }
    }
}

fn build_net<A: Architecture>(weights: &[u8], device: &Device) -> Result<A::Net> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|e| BrasaError::CorruptWeights(e.to_string()))?;
    A::init(device)
        .try_load_record(record)
        .map_err(|e| BrasaError::ArchitectureMismatch { model: A::NAME.to_string(), detail: e.to_string() })
}

/// Check a flat batch against `signature`: non-empty, a whole number of items, at most
/// [`MAX_BATCH`] items, every value finite. Returns the batch size.
pub fn validate_input(signature: &Signature, input: &[f32]) -> Result<usize> {
    let item_len = signature.input.item_len();
    if input.is_empty() {
        return Err(BrasaError::EmptyInput { item_len, shape: signature.input.shape_text() });
    }
    if !input.len().is_multiple_of(item_len) {
        return Err(BrasaError::WrongLength {
            len: input.len(),
            item_len,
            shape: signature.input.shape_text(),
        });
    }
    let batch = input.len() / item_len;
    if batch > MAX_BATCH {
        return Err(BrasaError::BatchTooLarge { batch, max: MAX_BATCH });
    }
    if let Some(index) = input.iter().position(|v| !v.is_finite()) {
        return Err(BrasaError::NonFinite { index, item: index / item_len, value: input[index].to_string() });
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servable::TensorSpec;

    fn signature() -> Signature {
        Signature {
            input: TensorSpec { name: "x", shape: vec![1, 2, 2], datatype: "FP32", description: "" },
            output: TensorSpec { name: "y", shape: vec![3], datatype: "FP32", description: "" },
            output_kind: crate::servable::OutputKind::Logits,
            labels: vec![],
        }
    }

    #[test]
    fn accepts_whole_batches() {
        assert_eq!(validate_input(&signature(), &[0.0; 4]), Ok(1));
        assert_eq!(validate_input(&signature(), &[0.5; 12]), Ok(3));
    }

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        let sig = signature();
        assert!(matches!(validate_input(&sig, &[]), Err(BrasaError::EmptyInput { item_len: 4, .. })));
        let err = validate_input(&sig, &[0.0; 5]).unwrap_err();
        assert!(matches!(err, BrasaError::WrongLength { len: 5, item_len: 4, .. }));
        assert!(err.to_string().contains("1x2x2 = 4 values"), "{err}");
        let mut x = [0.0f32; 8];
        x[6] = f32::NAN;
        assert_eq!(
            validate_input(&sig, &x),
            Err(BrasaError::NonFinite { index: 6, item: 1, value: "NaN".into() })
        );
        x[6] = f32::NEG_INFINITY;
        assert!(matches!(validate_input(&sig, &x), Err(BrasaError::NonFinite { .. })));
        let big = vec![0.0f32; 4 * (MAX_BATCH + 1)];
        assert!(matches!(validate_input(&sig, &big), Err(BrasaError::BatchTooLarge { .. })));
    }
}
