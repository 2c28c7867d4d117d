//! The registry's pure logic for the JS fetcher: it does the I/O (fetch, cache), Rust decides
//! what a manifest means, which version a client gets, and whether bytes are intact. It needs
//! no model, so it also runs alone (the npm package's core module), before a model's code is
//! there: to find that code in a registry.

use std::collections::BTreeSet;

use brasa_registry::{
    BuildFiles, CachedFile, FileEntry, GoldenCheck, Manifest, ModelSpec, PackageCard, RegistryError,
    Selector, bucket, plan_eviction, resolve, verify_bytes, verify_digest,
};
use brasa_types::WeightsDtype;
use js_sys::Reflect;
use serde::Serialize;
use wasm_bindgen::prelude::*;

fn brasa_error(code: &str, message: &str) -> JsValue {
    let js = js_sys::Error::new(message);
    js.set_name("BrasaError");
    let _ = Reflect::set(&js, &"code".into(), &code.into());
    js.into()
}

fn registry_error(err: &RegistryError) -> JsValue {
    let code = match err {
        RegistryError::Integrity { .. } => "integrity",
        RegistryError::InvalidSpec { .. } => "invalid_spec",
        RegistryError::UnknownChannel { .. } | RegistryError::NoMatchingVersion { .. } => "not_found",
        RegistryError::ModelMismatch { .. } => "invalid_spec",
        _ => "invalid_manifest",
    };
    let js = js_sys::Error::new(&err.to_string());
    js.set_name("BrasaError");
    let _ = Reflect::set(&js, &"code".into(), &code.into());
    js.into()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResolvedVersion<'a> {
    model: &'a str,
    version: String,
    channel: Option<String>,
    via_rollout: bool,
    bucket: f64,
    /// The chosen weights first, then the version's other files: all a client fetches.
    files: Vec<FileEntry>,
    /// The dtype of the chosen weights.
    dtype: WeightsDtype,
    /// The golden check, with the chosen weights' tolerance.
    golden: Option<GoldenCheck>,
    /// The hash of the signature the version's weights implement (as `Signature::hash`, the
    /// `signatureHash` of model packages), when the manifest records it: a client whose build
    /// has another refuses the version (`incompatible`) before downloading anything.
    signature_hash: Option<String>,
    /// The signature itself (what a client that takes the version's code from the registry runs).
    signature: Option<&'a brasa_types::Signature>,
    published_at: &'a str,
    notes: &'a str,
    /// The version's compiled builds by backend, when it ships its code: fetched only by a
    /// client without a bundled build, and only the one it runs on.
    builds: &'a std::collections::BTreeMap<String, BuildFiles>,
    /// The model card of those builds.
    package: Option<&'a PackageCard>,
}

/// Validate `manifest` (JSON text) and resolve `spec` for the client `clientId`, taking its
/// weights of `dtype` (`f32`, `f16`, `q8`; none: the smallest listed). Resolves to
/// `{ model, version, channel, viaRollout, bucket, files, dtype, golden, signatureHash,
/// publishedAt, notes, builds, package }`
/// with only the chosen weights in `files` and their tolerance in `golden`. A version without
/// weights of that dtype is `not_found`, naming the dtypes it has.
#[wasm_bindgen(js_name = registryResolve)]
pub fn registry_resolve(
    manifest: &str,
    spec: &str,
    client_id: &str,
    dtype: Option<String>,
) -> Result<JsValue, JsValue> {
    let dtype = dtype
        .filter(|d| d != "auto")
        .map(|d| d.parse::<WeightsDtype>())
        .transpose()
        .map_err(|reason| brasa_error("invalid_spec", &format!("option `dtype`: {reason} (or auto)")))?;
    let spec: ModelSpec = spec.parse().map_err(|e| registry_error(&e))?;
    let manifest = Manifest::from_json(manifest.as_bytes()).map_err(|e| registry_error(&e))?;
    let channel = match &spec.selector {
        Selector::Channel(c) => c.as_str(),
        _ => "",
    };
    let client_bucket = bucket(client_id, &spec.name, channel);
    let resolution = resolve(&manifest, &spec, client_bucket).map_err(|e| registry_error(&e))?;
    let entry = manifest.versions.get(&resolution.version).ok_or_else(|| {
        registry_error(&RegistryError::NoMatchingVersion {
            model: manifest.model.clone(),
            wanted: resolution.version.to_string(),
            available: String::new(),
        })
    })?;
    let selected = entry.select(dtype).map_err(|has| {
        brasa_error(
            "not_found",
            &format!(
                "{}@{} has no {} weights; it has {has}",
                manifest.model,
                resolution.version,
                dtype.map_or("", |d| d.as_str())
            ),
        )
    })?;
    let out = ResolvedVersion {
        model: &manifest.model,
        version: resolution.version.to_string(),
        channel: resolution.channel,
        via_rollout: resolution.via_rollout,
        bucket: client_bucket,
        files: selected.files,
        dtype: selected.dtype,
        golden: selected.golden,
        signature_hash: entry.signature.as_ref().map(|s| s.hash()),
        signature: entry.signature.as_ref(),
        published_at: &entry.published_at,
        notes: &entry.notes,
        builds: &entry.builds,
        package: entry.package.as_ref(),
    };
    // Plain objects (not `Map`s) for `builds` and JSON metadata: the fetcher stores it as JSON.
    out.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsValue::from_str(&e.to_string()))
}

/// Check `bytes` against a file entry `{ path, size, sha256, format, dtype }`; throws a
/// `BrasaError` with code `integrity` on a mismatch.
#[wasm_bindgen(js_name = registryVerify)]
pub fn registry_verify(entry: JsValue, bytes: &[u8]) -> Result<(), JsValue> {
    let entry: FileEntry =
        serde_wasm_bindgen::from_value(entry).map_err(|e| JsValue::from_str(&e.to_string()))?;
    verify_bytes(&entry, bytes).map_err(|e| registry_error(&e))
}

#[derive(Serialize)]
struct ParsedSpec {
    name: String,
    /// `name@selector`: the same spec always gives the same key (`mnist` is `mnist@stable`).
    canonical: String,
    kind: &'static str,
    channel: Option<String>,
}

/// Parse a model spec: `{ name, canonical, kind: 'channel'|'exact'|'range', channel }`.
#[wasm_bindgen(js_name = registryParseSpec)]
pub fn registry_parse_spec(spec: &str) -> Result<JsValue, JsValue> {
    let parsed: ModelSpec = spec.parse().map_err(|e| registry_error(&e))?;
    let (kind, channel) = match &parsed.selector {
        Selector::Channel(c) => ("channel", Some(c.clone())),
        Selector::Exact(_) => ("exact", None),
        Selector::Range(_) => ("range", None),
    };
    let out = ParsedSpec { canonical: parsed.to_string(), name: parsed.name, kind, channel };
    serde_wasm_bindgen::to_value(&out).map_err(|e| JsValue::from_str(&e.to_string()))
}

/// Which cached files to evict: `files` is `[{ key, size, lastUsed }]`, `keep` the keys that
/// must stay, `budget` the size in bytes. Returns the keys to delete, least recently used first.
#[wasm_bindgen(js_name = registryPlanEviction)]
pub fn registry_plan_eviction(
    files: JsValue,
    keep: Vec<String>,
    budget: f64,
) -> Result<Vec<String>, JsValue> {
    let files: Vec<CachedFile> =
        serde_wasm_bindgen::from_value(files).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let keep: BTreeSet<String> = keep.into_iter().collect();
    Ok(plan_eviction(&files, &keep, budget.max(0.0) as u64))
}

/// Check a file entry against its size and a sha256 (hex) the caller computed with the
/// platform's WebCrypto; throws a `BrasaError` with code `integrity` on a mismatch.
#[wasm_bindgen(js_name = registryVerifyDigest)]
pub fn registry_verify_digest(entry: JsValue, size: f64, sha256: &str) -> Result<(), JsValue> {
    let entry: FileEntry =
        serde_wasm_bindgen::from_value(entry).map_err(|e| JsValue::from_str(&e.to_string()))?;
    verify_digest(&entry, size as u64, sha256).map_err(|e| registry_error(&e))
}
