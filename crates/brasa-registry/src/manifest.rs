use std::collections::BTreeMap;

use semver::Version;
use serde::{Deserialize, Serialize};

use brasa_types::WeightsDtype;

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
    /// The model's compiled code for this version, per backend (`cpu`, `webgpu`): the
    /// wasm-bindgen glue and the wasm of `brasa build`, content-addressed like the weights.
    /// A client without a bundled build downloads the one it runs on, and nothing else.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub builds: BTreeMap<String, BuildFiles>,
    /// What those builds are (their `model.json` without the file list); present with `builds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PackageCard>,
}

/// One compiled build of a version: its JS glue and its wasm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildFiles {
    /// The wasm-bindgen glue, an ES module (`format` `js`).
    pub glue: FileEntry,
    /// The wasm module (`format` `wasm`).
    pub wasm: FileEntry,
}

/// The model card of a version's builds: what `brasa build` wrote in `model.json`, less the
/// paths of its files (the signature is the version's own `signature`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackageCard {
    /// The package format (`brasa-model@1`).
    pub format: String,
    /// The model's name: the manifest's `model`.
    pub name: String,
    /// The package's version.
    pub version: String,
    /// The brasa version that built it.
    pub brasa: String,
    /// `Signature::hash` of the version's signature, which the builds' `modelCard()` give.
    pub signature_hash: String,
    /// Free-form facts for task layers (labels, which inputs take token ids, …).
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// The backends a version's `builds` may name.
pub const BUILD_BACKENDS: [&str; 2] = ["cpu", "webgpu"];

/// A file of a version, content-addressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// How a weights file stores its float tensors (`f32`, `f16`, `q8`); manifests written
    /// before quantised weights say nothing, which means `f32`. A version lists at most one
    /// weights file of each dtype, and a client loads one of them ([`VersionEntry::select`]).
    #[serde(default)]
    pub dtype: WeightsDtype,
    /// A file tasks read by name (an asset, e.g. `tokenizer` for a text model's
    /// tokenizer.json), fetched and verified with the weights; weights have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The golden check's tolerance for this file, when it differs from the version's
    /// (quantised weights are further from the f32 reference): set by `brasa registry
    /// publish --dtype` from the error it measured, or by `--golden-tolerance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f32>,
}

/// What a client loads of a version: its weights file of one dtype, the version's other
/// files, and the golden check with that file's tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// The files to fetch: the chosen weights, then any non-weights files.
    pub files: Vec<FileEntry>,
    /// The dtype of the chosen weights.
    pub dtype: WeightsDtype,
    /// The golden check to run, with the chosen file's tolerance.
    pub golden: Option<GoldenCheck>,
}

/// The weights a client takes when it asks for no dtype: the smallest file the version
/// lists. brasa's CPU and WebGPU builds both widen f16 and q8 to f32 at load, so on either
/// backend the choice changes the download, not the speed; each quantised file carries its
/// own measured golden tolerance, checked before a client adopts it.
pub const DEFAULT_DTYPE_ORDER: [WeightsDtype; 3] = [WeightsDtype::Q8, WeightsDtype::F16, WeightsDtype::F32];

impl VersionEntry {
    /// The weights file of `dtype` (none: the first of [`DEFAULT_DTYPE_ORDER`] listed) with
    /// the other files and the golden check at that file's tolerance. `Err` (the dtypes it
    /// has) when the version lists no weights of that dtype.
    pub fn select(&self, dtype: Option<WeightsDtype>) -> std::result::Result<Selected, String> {
        let weights = |d: WeightsDtype| self.files.iter().find(|f| f.format == "burnpack" && f.dtype == d);
        let chosen = match dtype {
            Some(d) => weights(d),
            None => DEFAULT_DTYPE_ORDER.into_iter().find_map(weights),
        };
        let Some(chosen) = chosen else {
            let listed: Vec<String> =
                self.files.iter().filter(|f| f.format == "burnpack").map(|f| f.dtype.to_string()).collect();
            return Err(if listed.is_empty() { "no weights".into() } else { listed.join(", ") });
        };
        let mut files = vec![chosen.clone()];
        files.extend(self.files.iter().filter(|f| f.format != "burnpack").cloned());
        let golden = self.golden.clone().map(|mut g| {
            if let Some(t) = chosen.tolerance {
                g.tolerance = t;
            }
            g
        });
        Ok(Selected { files, dtype: chosen.dtype, golden })
    }
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
            let mut dtypes = std::collections::BTreeSet::new();
            let mut names = std::collections::BTreeSet::new();
            for file in &entry.files {
                check_file(file)
                    .map_err(|r| invalid(format!("version {version}, file {}: {r}", file.path)))?;
                if file.format == "burnpack" && !dtypes.insert(file.dtype) {
                    return Err(invalid(format!(
                        "version {version} lists two {} weights files: a client could not choose",
                        file.dtype
                    )));
                }
                match (&file.name, file.format == "burnpack") {
                    (Some(_), true) => {
                        return Err(invalid(format!(
                            "version {version}, file {}: weights files have no name",
                            file.path
                        )));
                    }
                    (Some(name), false) if !valid_name(name) || !names.insert(name.as_str()) => {
                        return Err(invalid(format!(
                            "version {version}: file name `{name}` must be 1-64 of [a-z0-9._-], once"
                        )));
                    }
                    _ => {}
                }
            }
            self.check_builds(version, entry).map_err(invalid)?;
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

impl Manifest {
    /// A version's builds: known backends, a glue of format `js` and a wasm of format `wasm`,
    /// and a package card of this model for the version's signature.
    fn check_builds(&self, version: &Version, entry: &VersionEntry) -> std::result::Result<(), String> {
        if entry.builds.is_empty() {
            return match entry.package {
                Some(_) => Err(format!("version {version} has a package card but no builds")),
                None => Ok(()),
            };
        }
        for (backend, build) in &entry.builds {
            if !BUILD_BACKENDS.contains(&backend.as_str()) {
                return Err(format!("version {version}: unknown build `{backend}` (cpu or webgpu)"));
            }
            for (file, format) in [(&build.glue, "js"), (&build.wasm, "wasm")] {
                check_file(file)
                    .map_err(|r| format!("version {version}, {backend} build, {}: {r}", file.path))?;
                if file.format != format {
                    return Err(format!(
                        "version {version}, {backend} build: {} has format `{}`, expected `{format}`",
                        file.path, file.format
                    ));
                }
            }
        }
        let Some(card) = &entry.package else {
            return Err(format!("version {version} has builds but no package card"));
        };
        if card.name != self.model {
            return Err(format!(
                "version {version}: its builds are of `{}`, not `{}`",
                card.name, self.model
            ));
        }
        let Some(signature) = &entry.signature else {
            return Err(format!("version {version} has builds but no signature"));
        };
        if card.signature_hash != signature.hash() {
            return Err(format!(
                "version {version}: its builds implement another signature than the version's"
            ));
        }
        Ok(())
    }
}

fn check_file(file: &FileEntry) -> std::result::Result<(), String> {
    if file.sha256.len() != 64
        || !file.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("sha256 must be 64 lower-case hex digits".into());
    }
    if let Some(t) = file.tolerance
        && !(t.is_finite() && t >= 0.0)
    {
        return Err(format!("golden tolerance {t} must be a finite number >= 0"));
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
            dtype: WeightsDtype::F32,
            tolerance: None,
            name: None,
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
            builds: Default::default(),
            package: None,
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

    /// Quantised weights beside f32: a client asks for a dtype or gets the smallest; the
    /// golden check takes the chosen file's tolerance; manifests from before dtypes read as
    /// f32; two files of one dtype, an unknown dtype and a bad tolerance are refused.
    #[test]
    fn weights_of_several_dtypes() {
        let golden = GoldenCheck {
            inputs: vec![brasa_types::TensorJson::from_host(
                "x",
                &brasa_types::HostTensor::new(vec![1], brasa_types::Values::Float32(vec![1.0])),
            )],
            outputs: vec![brasa_types::TensorJson::from_host(
                "y",
                &brasa_types::HostTensor::new(vec![1], brasa_types::Values::Float32(vec![2.0])),
            )],
            tolerance: 1e-4,
            source: "numpy".into(),
        };
        let mut m = manifest();
        let entry = m.versions.values_mut().next().unwrap();
        entry.golden = Some(golden);
        let mut q8 = file();
        q8.sha256 = "b".repeat(64);
        q8.path = format!("files/sha256-{}.bpk", q8.sha256);
        q8.dtype = WeightsDtype::Q8;
        q8.tolerance = Some(0.05);
        entry.files.push(q8.clone());
        let entry = entry.clone();
        let m = Manifest::from_json(m.to_json().as_bytes()).unwrap();
        assert!(m.to_json().contains("\"dtype\": \"q8\"") && m.to_json().contains("\"tolerance\": 0.05"));

        let default = entry.select(None).unwrap();
        assert_eq!((default.dtype, default.files.clone()), (WeightsDtype::Q8, vec![q8.clone()]));
        assert_eq!(default.golden.unwrap().tolerance, 0.05);
        let f32 = entry.select(Some(WeightsDtype::F32)).unwrap();
        assert_eq!((f32.dtype, f32.files.len()), (WeightsDtype::F32, 1));
        assert_eq!(f32.golden.unwrap().tolerance, 1e-4);
        assert_eq!(entry.select(Some(WeightsDtype::F16)).unwrap_err(), "f32, q8");

        // Written before dtypes: f32.
        let old = manifest().to_json().replace(",\n          \"dtype\": \"f32\"", "");
        assert!(!old.contains("dtype"), "{old}");
        let m = Manifest::from_json(old.as_bytes()).unwrap();
        assert_eq!(m.versions.values().next().unwrap().files[0].dtype, WeightsDtype::F32);

        let mut m = manifest();
        let files = &mut m.versions.values_mut().next().unwrap().files;
        files.push(files[0].clone());
        assert!(m.validate().unwrap_err().to_string().contains("two f32 weights files"));
        let unknown = manifest().to_json().replace("\"dtype\": \"f32\"", "\"dtype\": \"int4\"");
        assert!(matches!(Manifest::from_json(unknown.as_bytes()), Err(RegistryError::MalformedManifest(_))));
        let mut m = manifest();
        m.versions.values_mut().next().unwrap().files[0].tolerance = Some(-1.0);
        assert!(m.validate().unwrap_err().to_string().contains("tolerance -1"));
    }

    /// A tolerance beyond f32 (found with the fuzz target's round-trip check) is refused.
    #[test]
    fn infinite_tolerance_is_refused() {
        let bytes = include_bytes!("../tests/fuzz/manifest-infinite-tolerance.json");
        let err = Manifest::from_json(bytes).unwrap_err();
        assert!(err.to_string().contains("version 1.0.0 has an unusable golden check"), "{err}");
    }
    /// A version's code: builds per backend with a package card of the version's signature;
    /// assets by name. Each inconsistency is refused naming what is wrong.
    #[test]
    fn builds_and_assets() {
        let signature = brasa_types::Signature {
            inputs: vec![brasa_types::TensorSpec::new(
                "x",
                brasa_types::DType::Float32,
                vec![brasa_types::Dim::Batch],
            )],
            outputs: vec![brasa_types::TensorSpec::new(
                "y",
                brasa_types::DType::Float32,
                vec![brasa_types::Dim::Batch],
            )],
        };
        let with = |format: &str, n: char| FileEntry {
            path: format!("files/sha256-{}.{format}", n.to_string().repeat(64)),
            sha256: n.to_string().repeat(64),
            format: format.into(),
            ..file()
        };
        let good = || {
            let mut m = manifest();
            let entry = m.versions.get_mut(&Version::new(1, 0, 0)).unwrap();
            entry.signature = Some(signature.clone());
            entry.builds.insert("cpu".into(), BuildFiles { glue: with("js", 'b'), wasm: with("wasm", 'c') });
            entry.package = Some(PackageCard {
                format: "brasa-model@1".into(),
                name: "mnist".into(),
                version: "0.1.0".into(),
                brasa: "0.1.0".into(),
                signature_hash: signature.hash(),
                metadata: serde_json::json!({ "task": "classification" }),
            });
            entry.files.push(FileEntry { name: Some("tokenizer".into()), ..with("json", 'd') });
            m
        };
        let m = good();
        m.validate().unwrap();
        assert_eq!(Manifest::from_json(m.to_json().as_bytes()).unwrap(), m);
        // Assets are fetched with the weights; builds are not.
        let selected = m.versions[&Version::new(1, 0, 0)].select(None).unwrap();
        assert_eq!(selected.files.len(), 2);
        assert_eq!(selected.files[1].name.as_deref(), Some("tokenizer"));

        let refused = |change: &dyn Fn(&mut VersionEntry), why: &str| {
            let mut m = good();
            change(m.versions.get_mut(&Version::new(1, 0, 0)).unwrap());
            let err = m.validate().unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        };
        refused(&|e| drop(e.builds.insert("tpu".into(), e.builds["cpu"].clone())), "unknown build `tpu`");
        refused(&|e| e.builds.get_mut("cpu").unwrap().wasm.format = "js".into(), "expected `wasm`");
        refused(&|e| e.package.as_mut().unwrap().name = "other".into(), "builds are of `other`");
        refused(&|e| e.package.as_mut().unwrap().signature_hash = "0".repeat(64), "another signature");
        refused(&|e| e.package = None, "no package card");
        refused(&|e| e.signature = None, "no signature");
        refused(&|e| e.builds.clear(), "a package card but no builds");
        refused(&|e| e.files[0].name = Some("weights".into()), "weights files have no name");
        refused(&|e| e.files.push(FileEntry { name: Some("tokenizer".into()), ..with("json", 'e') }), "once");
        refused(&|e| e.files[1].name = Some("Bad Name".into()), "must be 1-64");
        refused(&|e| e.builds.get_mut("cpu").unwrap().glue.path = "../escape.js".into(), "relative URL");
    }
}
