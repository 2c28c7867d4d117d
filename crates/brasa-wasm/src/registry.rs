//! The registry's pure logic for the JS fetcher: it does the I/O (fetch, cache), Rust decides
//! what a manifest means, which version a client gets, and whether bytes are intact.

use std::collections::BTreeSet;

use brasa_registry::{
    CachedFile, FileEntry, GoldenCheck, Manifest, ModelSpec, RegistryError, Selector, bucket, plan_eviction,
    resolve, verify_bytes, verify_digest,
};
use js_sys::Reflect;
use serde::Serialize;
use wasm_bindgen::prelude::*;

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
    files: &'a [FileEntry],
    golden: Option<&'a GoldenCheck>,
    published_at: &'a str,
    notes: &'a str,
}

/// Validate `manifest` (JSON text) and resolve `spec` for the client `clientId`. Resolves to
/// `{ model, version, channel, viaRollout, bucket, files, golden, publishedAt, notes }`.
#[wasm_bindgen(js_name = registryResolve)]
pub fn registry_resolve(manifest: &str, spec: &str, client_id: &str) -> Result<JsValue, JsValue> {
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
    let out = ResolvedVersion {
        model: &manifest.model,
        version: resolution.version.to_string(),
        channel: resolution.channel,
        via_rollout: resolution.via_rollout,
        bucket: client_bucket,
        files: &entry.files,
        golden: entry.golden.as_ref(),
        published_at: &entry.published_at,
        notes: &entry.notes,
    };
    serde_wasm_bindgen::to_value(&out).map_err(|e| JsValue::from_str(&e.to_string()))
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

/// A version's golden feeds, as tensors (`[{ name, dtype, dims, data }]`) for `model.run`.
#[wasm_bindgen(js_name = registryGoldenFeeds)]
pub fn registry_golden_feeds(golden: JsValue) -> Result<js_sys::Array, JsValue> {
    let golden: GoldenCheck =
        serde_wasm_bindgen::from_value(golden).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let feeds = golden.feeds().map_err(|e| crate::error_with_code(&e, "invalid_manifest"))?;
    Ok(crate::tensors_to_js(&feeds))
}

/// Judge a model's fetches (`[{ name, dtype, dims, data }]`) on a version's golden feeds:
/// `{ passed, maxAbsDiff, reason }`.
#[wasm_bindgen(js_name = registryGoldenCheck)]
pub fn registry_golden_check(golden: JsValue, fetches: JsValue) -> Result<JsValue, JsValue> {
    let golden: GoldenCheck =
        serde_wasm_bindgen::from_value(golden).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let fetches = crate::tensors_from_js(&fetches).map_err(|e| crate::error_with_code(&e, "internal"))?;
    serde_wasm_bindgen::to_value(&golden.compare(&fetches)).map_err(|e| JsValue::from_str(&e.to_string()))
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
