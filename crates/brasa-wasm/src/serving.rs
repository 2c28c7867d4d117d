//! The serving logic for the JS endpoint handler: the HTTP layer (Request/Response, timers,
//! the queue of promises) is JS; parsing and validating KServe v2 requests, building
//! responses, the batching policy and the metrics are Rust.

use std::collections::BTreeMap;

use brasa_serving::kserve::{infer_response, model_metadata, parse_infer};
use brasa_serving::{Admission, BatchPolicy, Metrics, ModelSignature, ParsedInfer, RequestError};
use js_sys::{Float32Array, Object, Reflect};
use wasm_bindgen::prelude::*;

fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value).map_err(|e| JsValue::from_str(&format!("invalid {what}: {e}")))
}

fn request_error(err: &RequestError) -> JsValue {
    let js = js_sys::Error::new(&err.to_string());
    js.set_name("BrasaError");
    let _ = Reflect::set(&js, &"code".into(), &err.code().into());
    let _ = Reflect::set(&js, &"status".into(), &err.status().into());
    js.into()
}

/// Parse and validate a KServe v2 infer request body against a signature
/// `{ input, output, maxBatch }`. Resolves to `{ id, rows, data: Float32Array, outputs }`;
/// throws a `BrasaError` with `code` and HTTP `status` naming the problem.
#[wasm_bindgen(js_name = kserveParseInfer)]
pub fn kserve_parse_infer(body: &[u8], signature: JsValue, max_body: f64) -> Result<JsValue, JsValue> {
    let sig: ModelSignature = from_js(signature, "signature")?;
    let parsed = parse_infer(body, &sig, max_body as usize).map_err(|e| request_error(&e))?;
    let out = Object::new();
    let _ = Reflect::set(&out, &"id".into(), &parsed.id.map(JsValue::from).unwrap_or(JsValue::NULL));
    let _ = Reflect::set(&out, &"rows".into(), &(parsed.rows as u32).into());
    let _ = Reflect::set(&out, &"data".into(), &Float32Array::from(&parsed.data[..]).into());
    let outputs: js_sys::Array = parsed.outputs.iter().map(|o| JsValue::from_str(o)).collect();
    let _ = Reflect::set(&out, &"outputs".into(), &outputs.into());
    Ok(out.into())
}

/// The JSON response to an infer request with `rows`, `id` and asked `outputs`.
#[wasm_bindgen(js_name = kserveInferResponse)]
#[allow(clippy::too_many_arguments)]
pub fn kserve_infer_response(
    model: &str,
    version: &str,
    id: Option<String>,
    rows: u32,
    outputs: Vec<String>,
    signature: JsValue,
    logits: &[f32],
    probabilities: &[f32],
) -> Result<String, JsValue> {
    let sig: ModelSignature = from_js(signature, "signature")?;
    let request = ParsedInfer { id, rows: rows as usize, data: Vec::new(), outputs };
    Ok(infer_response(model, version, &request, &sig, logits, probabilities))
}

/// `GET /v2/models/{name}` as JSON text.
#[wasm_bindgen(js_name = kserveModelMetadata)]
pub fn kserve_model_metadata(
    name: &str,
    versions: Vec<String>,
    signature: JsValue,
) -> Result<String, JsValue> {
    let sig: ModelSignature = from_js(signature, "signature")?;
    Ok(model_metadata(name, &versions, &sig).to_string())
}

/// A model's dynamic batching policy (`{ maxBatch, maxQueueDelayUs, maxQueueRows }`).
#[wasm_bindgen]
pub struct WasmBatchPolicy {
    policy: BatchPolicy,
}

#[wasm_bindgen]
impl WasmBatchPolicy {
    /// Validate and keep a policy.
    #[wasm_bindgen(constructor)]
    pub fn new(policy: JsValue) -> Result<WasmBatchPolicy, JsValue> {
        let policy: BatchPolicy = from_js(policy, "batching policy")?;
        policy.validate().map_err(|e| JsValue::from_str(&e))?;
        Ok(WasmBatchPolicy { policy })
    }

    /// 0 when a request of `rows` may join `queuedRows`; else the seconds for `Retry-After`.
    pub fn admit(&self, queued_rows: u32, rows: u32, rows_per_sec: f64) -> u32 {
        match self.policy.admit(queued_rows as usize, rows as usize, rows_per_sec) {
            Admission::Accept => 0,
            Admission::Reject { retry_after_secs } => retry_after_secs.max(1),
        }
    }

    /// Microseconds until the next batch should run (0: now); -1 when the queue is empty.
    #[wasm_bindgen(js_name = dispatchIn)]
    pub fn dispatch_in(&self, queued_rows: u32, oldest_wait_us: f64) -> f64 {
        match self.policy.dispatch_in(queued_rows as usize, oldest_wait_us.max(0.0) as u64) {
            Some(us) => us as f64,
            None => -1.0,
        }
    }

    /// How many requests from the head of the queue (rows each) form the next batch.
    #[wasm_bindgen(js_name = nextBatch)]
    pub fn next_batch(&self, queued: Vec<u32>) -> u32 {
        let rows: Vec<usize> = queued.into_iter().map(|r| r as usize).collect();
        self.policy.next_batch(&rows) as u32
    }
}

/// Counters, gauges and histograms of one handler or model (labels: a plain object).
#[wasm_bindgen]
#[derive(Default)]
pub struct WasmMetrics {
    metrics: Metrics,
}

fn labels(value: JsValue) -> Result<Vec<(String, String)>, JsValue> {
    let map: BTreeMap<String, String> = from_js(value, "labels")?;
    Ok(map.into_iter().collect())
}

#[wasm_bindgen]
impl WasmMetrics {
    /// An empty registry.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmMetrics {
        WasmMetrics::default()
    }

    /// Add to a counter.
    pub fn inc(&mut self, name: &str, labels_: JsValue, by: f64) -> Result<(), JsValue> {
        self.metrics.inc(name, &labels(labels_)?, by).map_err(|e| JsValue::from_str(&e))
    }

    /// Set a gauge.
    pub fn set(&mut self, name: &str, labels_: JsValue, value: f64) -> Result<(), JsValue> {
        self.metrics.set(name, &labels(labels_)?, value).map_err(|e| JsValue::from_str(&e))
    }

    /// Observe a histogram value.
    pub fn observe(&mut self, name: &str, labels_: JsValue, value: f64) -> Result<(), JsValue> {
        self.metrics.observe(name, &labels(labels_)?, value).map_err(|e| JsValue::from_str(&e))
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        self.metrics.render()
    }

    /// Every series as a plain object.
    pub fn snapshot(&self) -> Result<JsValue, JsValue> {
        let json = self.metrics.snapshot().to_string();
        js_sys::JSON::parse(&json)
    }
}
