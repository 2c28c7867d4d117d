//! brasa's shared vocabulary, defined once: element types ([`DType`]), dimensions ([`Dim`]),
//! tensor specs and model signatures ([`TensorSpec`], [`Signature`]), host tensors
//! ([`HostTensor`]), feed validation ([`Signature::validate_inputs`]) and the stable error
//! codes ([`ErrorCode`]).
//!
//! The runtime (`brasa`), the wasm bindings, the KServe layer (`brasa-serving`), the registry
//! and the CLI all use these types; the npm package's TypeScript declarations of them are
//! generated from this crate ([`typescript::declarations`]) and a test fails when the
//! committed copy (`npm/src/generated/types.ts`) drifts.
//!
//! Plain Rust, no I/O, no burn: it compiles and tests natively in seconds.

mod builds;
mod dim;
mod dtype;
mod error;
mod json;
mod signature;
mod tensor;
pub mod typescript;
mod validate;
mod weights_dtype;

pub use builds::BUILD_NAMES;
pub use dim::Dim;
pub use dtype::DType;
pub use error::ErrorCode;
pub use json::TensorJson;
pub use signature::{Signature, TensorSpec};
pub use tensor::{BytesError, HostTensor, TensorMap, Values, strings_from_bytes};
pub use validate::{Limits, Resolved, TensorError};
pub use weights_dtype::WeightsDtype;
