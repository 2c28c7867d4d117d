//! The registry's pure logic for the JS fetcher: it does the I/O (fetch, cache), Rust decides
//! what a manifest means, which version a client gets, and whether bytes are intact.

use brasa_registry::{FileEntry, Manifest, ModelSpec, RegistryError, bucket, resolve, verify_bytes};
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
    golden: Option<&'a brasa_registry::GoldenCheck>,
}

/// Validate `manifest` (JSON text) and resolve `spec` for the client `clientId`. Resolves to
/// `{ model, version, channel, viaRollout, bucket, files, golden }`.
#[wasm_bindgen(js_name = registryResolve)]
pub fn registry_resolve(manifest: &str, spec: &str, client_id: &str) -> Result<JsValue, JsValue> {
    let spec: ModelSpec = spec.parse().map_err(|e| registry_error(&e))?;
    let manifest = Manifest::from_json(manifest.as_bytes()).map_err(|e| registry_error(&e))?;
    let channel = match &spec.selector {
        brasa_registry::Selector::Channel(c) => c.as_str(),
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
