use std::fmt;

/// Result type of every fallible brasa operation.
pub type Result<T, E = BrasaError> = std::result::Result<T, E>;

/// A stable, machine-readable category for a [`BrasaError`]; it crosses the JS boundary as
/// the error's `code` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The caller's input does not match the model's signature or holds non-finite values.
    InvalidInput,
    /// The weights are corrupt, truncated, or belong to another architecture.
    InvalidWeights,
    /// The requested backend is not available in this build or on this machine.
    BackendUnavailable,
    /// The backend failed while running a forward pass or reading results back.
    Execution,
    /// No architecture of that name is compiled into this build.
    UnknownModel,
}

impl ErrorCode {
    /// The code as a `snake_case` string, as JS callers see it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidWeights => "invalid_weights",
            ErrorCode::BackendUnavailable => "backend_unavailable",
            ErrorCode::Execution => "execution",
            ErrorCode::UnknownModel => "unknown_model",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error brasa reports. Messages are written for the developer calling brasa: they say
/// what was expected and what was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrasaError {
    /// The input is empty.
    #[error("input is empty: expected {item_len} values per item ({shape}), got 0")]
    EmptyInput {
        /// Values per item.
        item_len: usize,
        /// The per-item shape, for the message.
        shape: String,
    },
    /// The input length is not a multiple of the per-item length.
    #[error(
        "input has {len} values, which is not a whole number of items: each item is {shape} = {item_len} values"
    )]
    WrongLength {
        /// Values received.
        len: usize,
        /// Values per item.
        item_len: usize,
        /// The per-item shape, for the message.
        shape: String,
    },
    /// The batch holds more items than one call accepts.
    #[error("batch of {batch} items exceeds the limit of {max} per call; split it")]
    BatchTooLarge {
        /// Items received.
        batch: usize,
        /// Items allowed.
        max: usize,
    },
    /// A value is NaN or infinite.
    #[error("input value at index {index} (item {item}) is {value}; inputs must be finite numbers")]
    NonFinite {
        /// Flat index of the first bad value.
        index: usize,
        /// The item it belongs to.
        item: usize,
        /// The value, as text (NaN, inf, -inf).
        value: String,
    },
    /// The input has the wrong type (JS side: not a Float32Array or array of numbers).
    #[error("input has the wrong type: {0}")]
    WrongType(String),
    /// The weight bytes could not be decoded.
    #[error("weights could not be decoded (corrupt or truncated file?): {0}")]
    CorruptWeights(String),
    /// The weights decode but do not fit the architecture.
    #[error("weights do not fit the {model} architecture: {detail}")]
    ArchitectureMismatch {
        /// The architecture's name.
        model: String,
        /// What did not fit.
        detail: String,
    },
    /// A tensor has an element type this runtime does not load.
    #[error("tensor `{tensor}` is {dtype}; this runtime loads f32 weights")]
    UnsupportedDtype {
        /// The tensor's path.
        tensor: String,
        /// Its element type.
        dtype: String,
    },
    /// A weight value is NaN or infinite.
    #[error("weights contain a non-finite value in tensor `{tensor}`; the file is corrupt")]
    NonFiniteWeights {
        /// The tensor's path.
        tensor: String,
    },
    /// The backend is not compiled into this build or not present on this machine.
    #[error("backend `{backend}` is unavailable: {reason}")]
    BackendUnavailable {
        /// The backend asked for.
        backend: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The backend failed at run time.
    #[error("{backend} backend failed: {detail}")]
    Execution {
        /// The backend that failed.
        backend: String,
        /// The backend's message.
        detail: String,
    },
    /// The model name is not known to this build.
    #[error("unknown model `{name}`; this build serves: {known}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// Names this build serves, comma-separated.
        known: String,
    },
}

impl BrasaError {
    /// The stable category of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            BrasaError::EmptyInput { .. }
            | BrasaError::WrongLength { .. }
            | BrasaError::BatchTooLarge { .. }
            | BrasaError::NonFinite { .. }
            | BrasaError::WrongType(_) => ErrorCode::InvalidInput,
            BrasaError::CorruptWeights(_)
            | BrasaError::ArchitectureMismatch { .. }
            | BrasaError::UnsupportedDtype { .. }
            | BrasaError::NonFiniteWeights { .. } => ErrorCode::InvalidWeights,
            BrasaError::BackendUnavailable { .. } => ErrorCode::BackendUnavailable,
            BrasaError::Execution { .. } => ErrorCode::Execution,
            BrasaError::UnknownModel { .. } => ErrorCode::UnknownModel,
        }
    }
}
