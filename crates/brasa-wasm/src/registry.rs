//! A registry version's golden check, run in the model build it checks.

use brasa_registry::GoldenCheck;
use wasm_bindgen::prelude::*;

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
