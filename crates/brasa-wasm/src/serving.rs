//! The serving logic for the JS endpoint handler: the HTTP layer (Request/Response, timers,
//! the queue of promises) is JS; parsing and validating KServe v2 requests (JSON and Triton's
//! binary tensor data extension), building responses and metadata, Triton's model
//! configuration and statistics, the batching policy and the metrics are Rust. Tensors cross as `{ name, dtype, dims, data }` (see
//! [`crate::tensors`]).

use std::collections::BTreeMap;

use brasa_serving::kserve::{infer_response, model_metadata, parse_infer};
use brasa_serving::triton::model_config;
use brasa_serving::{
    Admission, BatchPolicy, EndpointLimits, HEADER_LENGTH, Metrics, RequestError, RequestedOutput,
    Statistics, StatsEvent, VersionPolicy,
};
use brasa_types::{Limits, Signature};
use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::tensors::{tensors_from_js, tensors_to_js};

/// Deserialise an argument the JS runtime (not the client) built; a failure is its bug.
fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| crate::error_with_code(&format!("invalid {what}: {e}"), "internal"))
}

/// A `BrasaError` with the KServe `code` and the HTTP `status` to answer with.
fn http_error(message: &str, code: &str, status: u16) -> JsValue {
    let js = crate::error_with_code(message, code);
    let _ = Reflect::set(&js, &"status".into(), &JsValue::from(status));
    js
}

fn request_error(err: &RequestError) -> JsValue {
    http_error(&err.to_string(), err.code(), err.status())
}

/// `{ maxBatch, maxElements, maxBodyBytes?, maxQueueRows? }`; any (or the whole object) may
/// be left out for brasa's defaults (the last two: not stated).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct JsLimits {
    max_batch: usize,
    max_elements: usize,
    max_body_bytes: Option<usize>,
    max_queue_rows: Option<usize>,
}

impl Default for JsLimits {
    fn default() -> Self {
        let d = Limits::default();
        JsLimits {
            max_batch: d.max_batch,
            max_elements: d.max_elements,
            max_body_bytes: None,
            max_queue_rows: None,
        }
    }
}

fn read_limits(value: JsValue) -> Result<JsLimits, JsValue> {
    if value.is_undefined() || value.is_null() { Ok(JsLimits::default()) } else { from_js(value, "limits") }
}

fn limits_from_js(value: JsValue) -> Result<Limits, JsValue> {
    let l = read_limits(value)?;
    Ok(Limits { max_batch: l.max_batch, max_elements: l.max_elements })
}

fn set(target: &Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(target, &key.into(), value);
}

/// Parse and validate a KServe v2 infer request against a model's `signature` (the serde
/// form of `brasa_types::Signature`, as `modelCard().signature` gives it) and `limits`
/// (`{ maxBatch, maxElements }`). `headerLength` is the `Inference-Header-Content-Length`
/// header as a number (undefined when absent): the body is then that much JSON followed by
/// binary tensor data. Returns `{ id: string | null, batch: number | null, inputs: Array<{
/// name, dtype, dims, data }>, outputs: Array<{ name, binary }> }`; throws a `BrasaError`
/// with the KServe `code` and HTTP `status` naming the problem.
#[wasm_bindgen(js_name = kserveParseInfer)]
pub fn kserve_parse_infer(
    body: &[u8],
    header_length: Option<f64>,
    signature: JsValue,
    limits: JsValue,
    max_body: f64,
) -> Result<JsValue, JsValue> {
    let sig: Signature = from_js(signature, "signature")?;
    let limits = limits_from_js(limits)?;
    let header_length = match header_length {
        None => None,
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= usize::MAX as f64 => Some(n as usize),
        Some(n) => {
            return Err(request_error(&RequestError::Malformed(format!(
                "{HEADER_LENGTH} is {n}; it must be a byte count"
            ))));
        }
    };
    // `as` saturates (NaN gives 0): a nonsense limit refuses everything rather than nothing.
    let max_body = max_body as usize;
    let parsed = parse_infer(body, header_length, &sig, &limits, max_body).map_err(|e| request_error(&e))?;
    let out = Object::new();
    set(&out, "id", &parsed.id.map_or(JsValue::NULL, JsValue::from));
    set(&out, "batch", &parsed.batch.map_or(JsValue::NULL, |b| JsValue::from_f64(b as f64)));
    set(&out, "inputs", &tensors_to_js(&parsed.inputs));
    let outputs: Array = parsed
        .outputs
        .iter()
        .map(|o| {
            let entry = Object::new();
            set(&entry, "name", &o.name.as_str().into());
            set(&entry, "binary", &JsValue::from_bool(o.binary));
            entry
        })
        .collect();
    set(&out, "outputs", &outputs);
    Ok(out.into())
}

/// The response to an infer request: `outputs` as `kserveParseInfer` returned them (the
/// order and the binary choice of each), `fetches` the model's results as `Array<{ name,
/// dtype, dims, data }>`. Returns `{ body: Uint8Array, headerLength: number | null }`; when
/// `headerLength` is a number, send it as the `Inference-Header-Content-Length` header.
/// Throws a `BrasaError` (`execution`, status 500) when a fetch asked for is missing.
#[wasm_bindgen(js_name = kserveInferResponse)]
pub fn kserve_infer_response(
    model: &str,
    version: &str,
    id: Option<String>,
    outputs: JsValue,
    fetches: JsValue,
) -> Result<JsValue, JsValue> {
    let outputs: Vec<RequestedOutput> = from_js(outputs, "outputs")?;
    let fetches = tensors_from_js(&fetches).map_err(|e| http_error(&e, "execution", 500))?;
    let response = infer_response(model, version, id.as_deref(), &outputs, &fetches)
        .map_err(|e| http_error(&e, "execution", 500))?;
    let out = Object::new();
    set(&out, "body", &Uint8Array::from(response.body.as_slice()));
    set(&out, "headerLength", &response.header_length.map_or(JsValue::NULL, |n| JsValue::from_f64(n as f64)));
    Ok(out.into())
}

/// `GET /v2/models/{name}` as JSON text: versions, platform, inputs and outputs (-1 where a
/// dimension varies), and brasa's `parameters` stating `limits` and dimension bounds.
#[wasm_bindgen(js_name = kserveModelMetadata)]
pub fn kserve_model_metadata(
    name: &str,
    versions: Vec<String>,
    signature: JsValue,
    limits: JsValue,
) -> Result<String, JsValue> {
    let sig: Signature = from_js(signature, "signature")?;
    let l = read_limits(limits)?;
    let endpoint = EndpointLimits { max_body_bytes: l.max_body_bytes, max_queue_rows: l.max_queue_rows };
    let limits = Limits { max_batch: l.max_batch, max_elements: l.max_elements };
    Ok(model_metadata(name, &versions, &sig, &limits, &endpoint).to_string())
}

/// `GET /v2/models/{name}/config` as JSON text: Triton's `ModelConfig` of a model served with
/// `policy` (the endpoint's batching policy, `{ maxBatch, maxQueueDelayUs, maxQueueRows }`
/// with its effective `maxBatch`; null when requests are not batched together),
/// `versionPolicy` (Triton's form: `{ latest: { num_versions } }`, `{ all: {} }` or
/// `{ specific: { versions } }`) and `backend` (`cpu` or `webgpu`).
#[wasm_bindgen(js_name = tritonModelConfig)]
pub fn triton_model_config(
    name: &str,
    signature: JsValue,
    policy: JsValue,
    version_policy: JsValue,
    backend: &str,
) -> Result<String, JsValue> {
    let sig: Signature = from_js(signature, "signature")?;
    let policy: Option<BatchPolicy> = from_js(policy, "batching policy")?;
    let versions: VersionPolicy = from_js(version_policy, "version policy")?;
    Ok(model_config(name, &sig, policy.as_ref(), &versions, backend).to_string())
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

/// Counters, gauges and histograms of one handler or model (labels: a plain object), and
/// the handler's Triton statistics per model version.
#[wasm_bindgen]
#[derive(Default)]
pub struct WasmMetrics {
    metrics: Metrics,
    stats: Statistics,
}

/// A model version `tritonStatistics` reports on.
#[derive(Deserialize)]
struct Served {
    name: String,
    version: String,
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

    /// Count a request or a forward pass of a model version in its statistics: `{ kind:
    /// 'success', model, version, rows, request, queue, phases: { input, infer, output }, at }`,
    /// `{ kind: 'failure', model, version, request, at }` or `{ kind: 'execution', model,
    /// version, batch, phases }` (durations in seconds, `at` in ms since the epoch).
    #[wasm_bindgen(js_name = statsRecord)]
    pub fn stats_record(&mut self, event: JsValue) -> Result<(), JsValue> {
        let event: StatsEvent = from_js(event, "statistics event")?;
        self.stats.record(event);
        Ok(())
    }

    /// Triton's statistics (`{ model_stats: [...] }`, JSON text) of `served`: `Array<{ name,
    /// version }>`, in that order.
    #[wasm_bindgen(js_name = tritonStatistics)]
    pub fn triton_statistics(&self, served: JsValue) -> Result<String, JsValue> {
        let served: Vec<Served> = from_js(served, "served versions")?;
        let served: Vec<(String, String)> = served.into_iter().map(|s| (s.name, s.version)).collect();
        Ok(self.stats.report(&served).to_string())
    }
}
