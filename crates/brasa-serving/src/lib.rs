//! The logic of brasa's model-serving endpoints, with no I/O, shared by every runtime's HTTP
//! layer (Cloudflare Workers, Deno, Node; natively testable):
//!
//! - [`kserve`]: the Open Inference Protocol (KServe v2), JSON and Triton's binary tensor
//!   data extension: parsing and validating infer requests against any model's signature,
//!   building responses and model metadata;
//! - [`batching`]: the dynamic batching policy: admission (a bounded queue), when to run a
//!   batch, how many requests go into it, and what `Retry-After` to send when full;
//! - [`metrics`]: counters, gauges and histograms, rendered in Prometheus' text format;
//! - [`triton`]: Triton's model configuration and statistics extensions (what
//!   `tritonclient`'s `get_model_config` and `get_inference_statistics` ask for).

pub mod batching;
pub mod kserve;
pub mod metrics;
pub mod triton;

pub use batching::{Admission, BatchPolicy};
pub use kserve::{EndpointLimits, HEADER_LENGTH, InferResponse, ParsedInfer, RequestError, RequestedOutput};
pub use metrics::Metrics;
pub use triton::{Statistics, StatsEvent, VersionPolicy};
