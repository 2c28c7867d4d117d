//! brasa's runtime core: what a servable model is, how a backend is chosen, how weights are
//! loaded from bytes and how inference runs.
//!
//! Everything here is plain Rust and compiles for native targets (tests, the CLI) and for
//! `wasm32-unknown-unknown` (the browser and edge builds). Input and weights are validated
//! before they reach burn, so bad input yields a [`BrasaError`] instead of a panic: in wasm a
//! panic aborts the whole instance.

mod backend;
pub mod conv;
mod error;
pub mod kernels;
#[cfg(not(target_arch = "wasm32"))]
pub mod latency;
mod model;
pub mod ops;
mod parallel;
mod session;
mod weights;

pub use backend::{
    BackendKind, BackendPreference, acquire_device, compiled_backends, gpu_device_id, gpu_device_lost,
    gpu_device_lost_reason, is_cpu_device,
};
pub use error::{BrasaError, ErrorCode, Result};
pub use model::{Inputs, Model, Outputs};
pub use session::{MAX_BATCH, RunFuture, Servable, Session, load};
pub use weights::{
    Q8_MAX_BLOCK, Q8_MIN_BLOCK, Q8_MIN_ELEMENTS, WeightsSummary, encode_weights, inspect_weights, q8_block,
    q8_quantises, widen_to_f32,
};

/// The shared types (dtypes, dims, signatures, host tensors), re-exported for model crates.
pub use brasa_types as types;
pub use brasa_types::{
    DType, Dim, HostTensor, Limits, Signature, TensorMap, TensorSpec, Values, WeightsDtype,
};
/// Re-export of the exact burn version brasa is built on, for model crates.
pub use burn;
/// burn's device and tensor types, as a model crate's `init` and `forward` use them.
pub use burn::tensor::{Bool, Device, Int, Tensor};
