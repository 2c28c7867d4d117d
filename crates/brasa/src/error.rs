pub use brasa_types::ErrorCode;
use brasa_types::TensorError;

/// Result type of every fallible brasa operation.
pub type Result<T, E = BrasaError> = std::result::Result<T, E>;

/// Every error brasa reports. Messages are written for the developer calling brasa: they say
/// what was expected and what was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrasaError {
    /// Feeds that do not fit the signature, or a run whose result was not finite.
    #[error("{0}")]
    Input(#[from] TensorError),
    /// A feed could not be read (JS side: not a tensor, a typed array of the wrong kind).
    #[error("{0}")]
    WrongType(String),
    /// The model crate broke its own signature (reads an input it does not declare, gives an
    /// output of another shape): a bug in the model, reported as `execution`.
    #[error("the model failed: {0}")]
    Model(String),
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
    #[error("tensor `{tensor}` is {dtype}; this runtime loads float32, float16 and integer weights")]
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
            BrasaError::Input(e) => e.code(),
            BrasaError::WrongType(_) => ErrorCode::InvalidInput,
            BrasaError::Model(_) => ErrorCode::Execution,
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
