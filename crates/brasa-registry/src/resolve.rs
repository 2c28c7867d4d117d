use semver::Version;

use crate::error::{RegistryError, Result};
use crate::manifest::Manifest;
use crate::rollout::in_rollout;
use crate::spec::{ModelSpec, Selector};

/// What a spec resolved to.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The version to load.
    pub version: Version,
    /// The channel it came through, if any.
    pub channel: Option<String>,
    /// Whether the client got it as part of a staged rollout.
    pub via_rollout: bool,
}

/// Resolve `spec` against `manifest` for a client in rollout `bucket` (see [`crate::bucket`]).
///
/// Channels give their version, or the rollout version to clients below its percent; an exact
/// version must be published; a range gives the newest published version that matches it
/// (pre-releases only when the range names one, as semver ranges do).
pub fn resolve(manifest: &Manifest, spec: &ModelSpec, bucket: f64) -> Result<Resolution> {
    if spec.name != manifest.model {
        return Err(RegistryError::ModelMismatch {
            spec: spec.name.clone(),
            manifest: manifest.model.clone(),
        });
    }
    let published = || manifest.versions.keys().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match &spec.selector {
        Selector::Channel(name) => {
            let channel = manifest.channels.get(name).ok_or_else(|| RegistryError::UnknownChannel {
                model: manifest.model.clone(),
                channel: name.clone(),
                available: manifest.channels.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
            let (version, via_rollout) = match &channel.rollout {
                Some(r) if in_rollout(bucket, r.percent) => (r.version.clone(), true),
                _ => (channel.version.clone(), false),
            };
            Ok(Resolution { version, channel: Some(name.clone()), via_rollout })
        }
        Selector::Exact(version) => {
            if manifest.versions.contains_key(version) {
                Ok(Resolution { version: version.clone(), channel: None, via_rollout: false })
            } else {
                Err(RegistryError::NoMatchingVersion {
                    model: manifest.model.clone(),
                    wanted: version.to_string(),
                    available: published(),
                })
            }
        }
        Selector::Range(req) => manifest
            .versions
            .keys()
            .rev()
            .find(|v| req.matches(v))
            .map(|v| Resolution { version: v.clone(), channel: None, via_rollout: false })
            .ok_or_else(|| RegistryError::NoMatchingVersion {
                model: manifest.model.clone(),
                wanted: req.to_string(),
                available: published(),
            }),
    }
}
