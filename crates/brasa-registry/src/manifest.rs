use std::collections::BTreeMap;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

/// The manifest schema this crate writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 2;

/// The largest file a manifest may name: just under 4 GiB, the most a wasm32 instance's
/// memory can hold (and about the longest typed array a JS engine allocates), so a client
/// refuses a larger `size` with the manifest instead of failing to allocate it.
pub const MAX_FILE_SIZE: u64 = (1 << 32) - 1;

/// A model's manifest: `<registry>/<model>/manifest.json`.
///
/// Versions are immutable once published; channels point at versions and move; `history`
/// records every move so a rollback knows where to return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Schema version of this document.
    pub schema: u32,
    /// The model's name (also the folder name).
    pub model: String,
    /// Published versions.
    pub versions: BTreeMap<Version, VersionEntry>,
    /// Named channels, e.g. `stable`, `canary`.
    #[serde(default)]
    pub channels: BTreeMap<String, Channel>,
    /// Every channel move, oldest first.
    #[serde(default)]
    pub history: Vec<ChannelMove>,
}

/// One immutable published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionEntry {
    /// Its files (weights first).
    pub files: Vec<FileEntry>,
    /// The signature the version's weights were published for (the model build's): clients
    /// running another signature refuse the version (`incompatible`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<brasa_types::Signature>,
    /// A small input with the expected output, checked by clients before they adopt it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden: Option<GoldenCheck>,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// Why it was published.
    #[serde(default)]
    pub notes: String,
}

/// A file of a version, content-addressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEntry {
    /// URL relative to the manifest.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256.
    pub sha256: String,
    /// File format, e.g. `burnpack`.
    pub format: String,
    /// Element type or quantisation, e.g. `f32`, `q8`.
    pub dtype: String,
}

/// Known inputs and the outputs expected of them, by tensor name. `brasa registry publish`
/// takes them from an independent reference (onnxruntime, PyTorch, numpy) with `--golden`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoldenCheck {
    /// The feeds, every input of the model.
    pub inputs: Vec<brasa_types::TensorJson>,
    /// The expected fetches (all or some outputs).
    pub outputs: Vec<brasa_types::TensorJson>,
    /// Largest absolute difference accepted.
    pub tolerance: f32,
    /// Where the expected outputs come from (e.g. `onnxruntime 1.22`, `numpy`, `brasa`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// Where a channel points, and an optional staged rollout of another version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Channel {
    /// The version everyone on the channel gets.
    pub version: Version,
    /// A version a share of clients gets instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// A staged rollout: clients whose bucket is below `percent` get `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// The version being rolled out.
    pub version: Version,
    /// Share of clients, 0 to 100.
    pub percent: f64,
}

/// What moved a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveKind {
    /// Publish with a channel.
    Publish,
    /// An explicit promotion.
    Promote,
    /// A return to the previous version.
    Rollback,
    /// A staged rollout started, changed or ended.
    Rollout,
}

/// One entry of a manifest's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelMove {
    /// The channel.
    pub channel: String,
    /// Where it pointed before (none for a new channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Version>,
    /// Where it points after.
    pub to: Version,
    /// What moved it.
    pub kind: MoveKind,
    /// When (RFC 3339).
    pub at: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

impl Manifest {
    /// An empty manifest for `model`.
    pub fn new(model: &str) -> Self {
        Manifest {
            schema: SCHEMA_VERSION,
            model: model.into(),
            versions: BTreeMap::new(),
            channels: BTreeMap::new(),
            history: Vec::new(),
        }
    }

    /// Parse and validate manifest JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        // Read the schema first, so a newer manifest gets "upgrade", not a parse error.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| RegistryError::MalformedManifest(e.to_string()))?;
        let schema = value
            .get("schema")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| RegistryError::MalformedManifest("missing numeric `schema` field".into()))?;
        // Schema 1 golden checks were flat, unnamed arrays: such manifests must be republished.
        if schema != u64::from(SCHEMA_VERSION) {
            return Err(RegistryError::UnsupportedSchema {
                found: u32::try_from(schema).unwrap_or(u32::MAX),
                supported: SCHEMA_VERSION,
            });
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| RegistryError::MalformedManifest(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Serialise (pretty, stable key order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serialises")
    }

    /// Check every rule a manifest must keep.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| RegistryError::InvalidManifest { model: self.model.clone(), reason };
        if !valid_name(&self.model) {
            return Err(invalid(format!("model name `{}` must be 1-64 of [a-z0-9._-]", self.model)));
        }
        for (version, entry) in &self.versions {
            if entry.files.is_empty() {
                return Err(invalid(format!("version {version} has no files")));
            }
            for file in &entry.files {
                check_file(file)
                    .map_err(|r| invalid(format!("version {version}, file {}: {r}", file.path)))?;
            }
            if let Some(golden) = &entry.golden {
                let tensors = golden.inputs.iter().chain(&golden.outputs);
                let finite = tensors.clone().all(|t| t.to_host().is_ok());
                if golden.inputs.is_empty()
                    || golden.outputs.is_empty()
                    || !finite
                    // JSON beyond f32 (1e39) reads as infinity, which `to_json` would write
                    // as null: a manifest that could not be read back.
                    || !golden.tolerance.is_finite()
                    || golden.tolerance < 0.0
                {
                    return Err(invalid(format!("version {version} has an unusable golden check")));
                }
            }
        }
        for (name, channel) in &self.channels {
            if !valid_name(name) {
                return Err(invalid(format!("channel name `{name}` must be 1-64 of [a-z0-9._-]")));
            }
            if !self.versions.contains_key(&channel.version) {
                return Err(invalid(format!(
                    "channel `{name}` points at unpublished version {}",
                    channel.version
                )));
            }
            if let Some(rollout) = &channel.rollout {
                if !self.versions.contains_key(&rollout.version) {
                    return Err(invalid(format!(
                        "channel `{name}` rolls out unpublished version {}",
                        rollout.version
                    )));
                }
                if !(0.0..=100.0).contains(&rollout.percent) {
                    return Err(invalid(format!(
                        "channel `{name}` rollout percent {} is outside 0-100",
                        rollout.percent
                    )));
                }
            }
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !name.starts_with('.')
}

fn check_file(file: &FileEntry) -> std::result::Result<(), String> {
    if file.sha256.len() != 64
        || !file.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("sha256 must be 64 lower-case hex digits".into());
    }
    if file.size == 0 {
        return Err("size must be positive".into());
    }
    if file.size > MAX_FILE_SIZE {
        return Err(format!(
            "size {} bytes is more than a wasm32 instance can hold (4 GiB): no client could load it",
            file.size
        ));
    }
    let path = &file.path;
    let relative = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains("://")
        && !path.contains('\\')
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if !relative {
        return Err("path must be a relative URL inside the model's folder".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> FileEntry {
        FileEntry {
            path: format!("files/sha256-{}.bpk", "a".repeat(64)),
            size: 10,
            sha256: "a".repeat(64),
            format: "burnpack".into(),
            dtype: "f32".into(),
        }
    }

    fn manifest() -> Manifest {
        let mut m = Manifest::new("mnist");
        let entry = VersionEntry {
            files: vec![file()],
            signature: None,
            golden: None,
            published_at: "2026-11-25T00:00:00Z".into(),
            notes: String::new(),
        };
        m.versions.insert(Version::new(1, 0, 0), entry.clone());
        m.versions.insert(Version::new(1, 1, 0), entry);
        m.channels.insert("stable".into(), Channel { version: Version::new(1, 0, 0), rollout: None });
        m
    }

    #[test]
    fn round_trips_through_json() {
        let m = manifest();
        assert_eq!(Manifest::from_json(m.to_json().as_bytes()).unwrap(), m);
    }

    #[test]
    fn refuses_broken_manifests() {
        assert!(matches!(Manifest::from_json(b"{"), Err(RegistryError::MalformedManifest(_))));
        assert!(matches!(
            Manifest::from_json(b"{\"model\":\"x\"}"),
            Err(RegistryError::MalformedManifest(_))
        ));
        let newer = manifest().to_json().replace("\"schema\": 2", "\"schema\": 3");
        assert!(matches!(
            Manifest::from_json(newer.as_bytes()),
            Err(RegistryError::UnsupportedSchema { found: 3, .. })
        ));
        let older = manifest().to_json().replace("\"schema\": 2", "\"schema\": 1");
        assert!(matches!(
            Manifest::from_json(older.as_bytes()),
            Err(RegistryError::UnsupportedSchema { found: 1, .. })
        ));

        let mut m = manifest();
        m.channels.get_mut("stable").unwrap().version = Version::new(9, 0, 0);
        assert!(m.validate().unwrap_err().to_string().contains("unpublished version 9.0.0"));

        let mut m = manifest();
        m.channels.get_mut("stable").unwrap().rollout =
            Some(Rollout { version: Version::new(1, 1, 0), percent: 120.0 });
        assert!(m.validate().is_err());

        for bad_path in ["/etc/passwd", "../x.bpk", "https://evil/x", "files//x", ""] {
            let mut m = manifest();
            m.versions.values_mut().next().unwrap().files[0].path = bad_path.into();
            assert!(m.validate().is_err(), "{bad_path}");
        }
        let mut m = manifest();
        m.versions.values_mut().next().unwrap().files[0].sha256 = "XYZ".into();
        assert!(m.validate().is_err());
        // No wasm32 instance can hold a file of 4 GiB or more: the fetcher would fail to
        // allocate it ("Invalid typed array length") instead of refusing the manifest.
        for size in [1u64 << 32, 1_000_000_000_000, u64::MAX] {
            let mut m = manifest();
            m.versions.values_mut().next().unwrap().files[0].size = size;
            let err = m.validate().unwrap_err();
            assert!(matches!(err, RegistryError::InvalidManifest { .. }), "{err:?}");
            assert!(err.to_string().contains("files/sha256-") && err.to_string().contains("4 GiB"), "{err}");
        }
        let mut m = manifest();
        m.versions.values_mut().next().unwrap().files[0].size = MAX_FILE_SIZE;
        m.validate().unwrap();
        let unknown_field = manifest().to_json().replacen("\"model\"", "\"surprise\": 1, \"model\"", 1);
        assert!(Manifest::from_json(unknown_field.as_bytes()).is_err());
    }

    /// Inputs the fuzzer (`fuzz/`, target `manifest`) found, in `tests/fuzz/manifest-*`: each
    /// is refused with a manifest error, or parses, and what `to_json` writes of it parses
    /// back to the same manifest (`brasa registry publish` rewrites the file every time).
    #[test]
    fn fuzz_regressions() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.file_name().unwrap().to_string_lossy().starts_with("manifest-") {
                continue;
            }
            seen += 1;
            let Ok(m) = Manifest::from_json(&std::fs::read(&path).unwrap()) else { continue };
            let again = Manifest::from_json(m.to_json().as_bytes());
            assert_eq!(again.as_ref(), Ok(&m), "{}", path.display());
        }
        assert!(seen > 0, "no regression inputs in {}", dir.display());
    }

    /// A tolerance beyond f32 (found with the fuzz target's round-trip check) is refused.
    #[test]
    fn infinite_tolerance_is_refused() {
        let bytes = include_bytes!("../tests/fuzz/manifest-infinite-tolerance.json");
        let err = Manifest::from_json(bytes).unwrap_err();
        assert!(err.to_string().contains("version 1.0.0 has an unusable golden check"), "{err}");
    }
}
