//! The logic of brasa's model registry, with no I/O: what a manifest is and when it is valid,
//! how a model spec (`mnist`, `mnist@canary`, `mnist@1.2.0`, `mnist@^1`) resolves to a version,
//! how a client is bucketed into a staged rollout, how file integrity and golden checks are
//! judged, and which cached files a client evicts.
//!
//! A registry is a folder any static host can serve: `<model>/manifest.json` plus
//! content-addressed files (`<model>/files/sha256-<hex>.<ext>`), which never change and can be
//! cached forever. The CLI writes it; every runtime's fetcher reads it through this logic
//! (natively here, and mirrored in the npm package).

mod cache;
mod error;
mod golden;
mod integrity;
mod manifest;
mod ops;
mod resolve;
mod rollout;
mod spec;

pub use cache::{CachedFile, plan_eviction};
pub use error::{RegistryError, Result};
pub use golden::GoldenOutcome;
pub use integrity::{content_address, sha256_hex, verify_bytes, verify_digest};
pub use manifest::{
    BUILD_BACKENDS, BuildFiles, Channel, ChannelMove, DEFAULT_DTYPE_ORDER, FileEntry, GoldenCheck,
    MAX_FILE_SIZE, Manifest, MoveKind, PackageCard, Rollout, SCHEMA_VERSION, Selected, VersionEntry,
};
pub use resolve::{Resolution, resolve};
pub use rollout::{bucket, in_rollout};
pub use spec::{DEFAULT_CHANNEL, ModelSpec, Selector};
