/// Result type of registry logic.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Why a spec, manifest or file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    /// The model spec does not parse.
    #[error("invalid model spec `{spec}`: {reason}")]
    InvalidSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("malformed manifest: {0}")]
    MalformedManifest(String),
    /// The manifest parses but breaks a rule.
    #[error("invalid manifest for `{model}`: {reason}")]
    InvalidManifest {
        /// The model it describes.
        model: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A publish names a version the manifest already has: versions are immutable.
    #[error("{model} {version} is already published; versions are immutable (publish a new version)")]
    AlreadyPublished {
        /// The model.
        model: String,
        /// The version.
        version: semver::Version,
    },
    /// The manifest's schema is not the one this client reads (newer: upgrade brasa; older:
    /// republish with the current CLI).
    #[error(
        "manifest schema {found} is not supported (this client reads schema {supported}): a newer schema needs a newer brasa, an older one a republish"
    )]
    UnsupportedSchema {
        /// Schema in the file.
        found: u32,
        /// Newest schema supported.
        supported: u32,
    },
    /// The spec names a channel the manifest does not have.
    #[error("model `{model}` has no channel `{channel}`; it has: {available}")]
    UnknownChannel {
        /// The model.
        model: String,
        /// The channel asked for.
        channel: String,
        /// Channels it has, comma-separated.
        available: String,
    },
    /// No published version satisfies the spec.
    #[error("model `{model}` has no version matching `{wanted}`; published: {available}")]
    NoMatchingVersion {
        /// The model.
        model: String,
        /// The version or range asked for.
        wanted: String,
        /// Versions published, comma-separated.
        available: String,
    },
    /// A spec names another model than the manifest describes.
    #[error("spec is for model `{spec}` but the manifest describes `{manifest}`")]
    ModelMismatch {
        /// Model in the spec.
        spec: String,
        /// Model in the manifest.
        manifest: String,
    },
    /// A file's bytes do not match the manifest.
    #[error("integrity check failed for {path}: {reason}")]
    Integrity {
        /// The file.
        path: String,
        /// Size or hash mismatch.
        reason: String,
    },
}
