use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable category of every error brasa reports, in Rust and in JS (`BrasaError.code`).
///
/// This is the one list: the npm package's `BrasaErrorCode` type is generated from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A feed does not match the model's signature (name, dtype, rank, a dimension, element
    /// count, bounds), holds NaN or infinity, or the result of a run was not finite.
    InvalidInput,
    /// Weights are corrupt, truncated, non-finite, or for another architecture.
    InvalidWeights,
    /// The backend asked for cannot be used here (not compiled in, no adapter, lost device).
    BackendUnavailable,
    /// The backend failed while running or reading results back.
    Execution,
    /// The model is not the one this build serves, or a spec names another model.
    UnknownModel,
    /// Weights, code or a manifest could not be fetched (HTTP error, timeout, no network).
    Network,
    /// A model spec does not parse (`mnist@Canary!`), or a load option is of the wrong type,
    /// out of range or contradicts another (`timeoutMs: 0`, `registry: ''`).
    InvalidSpec,
    /// The registry has no such channel or no version matching the spec.
    NotFound,
    /// A registry manifest is malformed, breaks a rule, or has a newer schema.
    InvalidManifest,
    /// A downloaded file's size or sha256 differs from the manifest.
    Integrity,
    /// A version's output on its golden inputs differs from what its publisher recorded.
    GoldenCheck,
    /// A version's signature is not the one this build implements.
    Incompatible,
    /// The wasm module could not be fetched or instantiated.
    WasmLoad,
    /// The model was disposed.
    Disposed,
    /// The wasm instance aborted or brasa hit a bug; load the model again.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidInput,
        ErrorCode::InvalidWeights,
        ErrorCode::BackendUnavailable,
        ErrorCode::Execution,
        ErrorCode::UnknownModel,
        ErrorCode::Network,
        ErrorCode::InvalidSpec,
        ErrorCode::NotFound,
        ErrorCode::InvalidManifest,
        ErrorCode::Integrity,
        ErrorCode::GoldenCheck,
        ErrorCode::Incompatible,
        ErrorCode::WasmLoad,
        ErrorCode::Disposed,
        ErrorCode::Internal,
    ];

    /// The code as a `snake_case` string, as JS callers see it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidWeights => "invalid_weights",
            ErrorCode::BackendUnavailable => "backend_unavailable",
            ErrorCode::Execution => "execution",
            ErrorCode::UnknownModel => "unknown_model",
            ErrorCode::Network => "network",
            ErrorCode::InvalidSpec => "invalid_spec",
            ErrorCode::NotFound => "not_found",
            ErrorCode::InvalidManifest => "invalid_manifest",
            ErrorCode::Integrity => "integrity",
            ErrorCode::GoldenCheck => "golden_check",
            ErrorCode::Incompatible => "incompatible",
            ErrorCode::WasmLoad => "wasm_load",
            ErrorCode::Disposed => "disposed",
            ErrorCode::Internal => "internal",
        }
    }

    /// What it means, for docs and the generated TypeScript.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => {
                "A feed does not match the model's signature (name, dtype, rank, a dimension, element count, bounds), holds NaN or Infinity, or a result was not finite."
            }
            ErrorCode::InvalidWeights => {
                "Weights are corrupt, truncated, non-finite, or for another architecture."
            }
            ErrorCode::BackendUnavailable => {
                "The backend asked for cannot be used here (not in this build, no adapter, a lost device)."
            }
            ErrorCode::Execution => "The backend failed while running or reading results back.",
            ErrorCode::UnknownModel => {
                "The model is not the one this build serves, or a spec names another model."
            }
            ErrorCode::Network => {
                "Weights, code or a manifest could not be fetched (HTTP error, timeout, no network)."
            }
            ErrorCode::InvalidSpec => {
                "A model spec does not parse (`mnist@Canary!`), or a load option is of the wrong type, out of range or contradicts another (`timeoutMs: 0`, `registry: ''`)."
            }
            ErrorCode::NotFound => "The registry has no such channel or no version matching the spec.",
            ErrorCode::InvalidManifest => {
                "A registry manifest is malformed, breaks a rule, or has a newer schema."
            }
            ErrorCode::Integrity => "A downloaded file's size or sha256 differs from the manifest.",
            ErrorCode::GoldenCheck => {
                "A version's output on its golden inputs differs from what its publisher recorded."
            }
            ErrorCode::Incompatible => "A version's signature is not the one this build implements.",
            ErrorCode::WasmLoad => "The wasm module could not be fetched or instantiated.",
            ErrorCode::Disposed => "The model was disposed.",
            ErrorCode::Internal => "The wasm instance aborted or brasa hit a bug; load the model again.",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_is_the_js_name() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{}\"", code.as_str()));
        }
    }
}
