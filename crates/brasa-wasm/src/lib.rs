//! wasm-bindgen bindings: the JS-facing surface of brasa.
//!
//! Two builds come from this crate: `--features cpu` (burn-flex with simd128; small, for
//! edge workers and browsers without WebGPU) and `--features webgpu` (burn's wgpu backend on
//! the browser's WebGPU). The npm package's loader picks one; this crate never panics on bad
//! input, because a panic aborts the wasm instance.

mod registry;
mod serving;

use std::cell::RefCell;
use std::rc::Rc;

use brasa::{BackendKind, BrasaError, Prediction, Session};
use brasa_mnist::Mnist;
use brasa_squeezenet::Squeezenet;
use js_sys::{Float32Array, Object, Promise, Reflect, Uint32Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
unsafe extern "C" {
    /// Runs the static constructors cubecl and its dependencies register.
    fn __wasm_call_ctors();
}

/// Runs once when the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    // When nothing calls the constructors explicitly, the linker runs them at the start of
    // EVERY exported function (measured: ~1.8 ms per call). Calling them once here stops that.
    #[cfg(target_arch = "wasm32")]
    #[allow(unsafe_code)]
    // SAFETY: called once, before any other export, as the linker's own prologue would.
    unsafe {
        __wasm_call_ctors()
    };
    console_error_panic_hook::set_once();
}

/// The backends compiled into this build, best first (`"webgpu"`, `"cpu"`).
#[wasm_bindgen(js_name = compiledBackends)]
pub fn compiled_backends() -> Vec<String> {
    brasa::compiled_backends().iter().map(|b| b.as_str().to_string()).collect()
}

/// The model names this build serves.
#[wasm_bindgen(js_name = modelNames)]
pub fn model_names() -> Vec<String> {
    vec![
        <Mnist as brasa::Architecture>::NAME.to_string(),
        <Squeezenet as brasa::Architecture>::NAME.to_string(),
    ]
}

/// A session of any architecture this build serves.
// One per loaded model, behind an `Rc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum AnySession {
    Mnist(Session<Mnist>),
    Squeezenet(Session<Squeezenet>),
}

impl AnySession {
    async fn run(&self, input: &[f32]) -> Result<Prediction, BrasaError> {
        match self {
            AnySession::Mnist(s) => s.run(input).await,
            AnySession::Squeezenet(s) => s.run(input).await,
        }
    }

    fn with_weights(&self, weights: &[u8]) -> Result<AnySession, BrasaError> {
        match self {
            AnySession::Mnist(s) => s.with_weights(weights).map(AnySession::Mnist),
            AnySession::Squeezenet(s) => s.with_weights(weights).map(AnySession::Squeezenet),
        }
    }

    fn info(&self) -> ModelInfo {
        match self {
            AnySession::Mnist(s) => {
                ModelInfo::new(<Mnist as brasa::Architecture>::NAME, s.backend(), s.signature(), s.weights())
            }
            AnySession::Squeezenet(s) => ModelInfo::new(
                <Squeezenet as brasa::Architecture>::NAME,
                s.backend(),
                s.signature(),
                s.weights(),
            ),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TensorInfo {
    name: String,
    shape: Vec<usize>,
    datatype: String,
    description: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo {
    name: String,
    backend: String,
    input: TensorInfo,
    output: TensorInfo,
    output_kind: &'static str,
    labels: Vec<String>,
    parameters: usize,
    weight_bytes: usize,
    max_batch: usize,
}

impl ModelInfo {
    fn new(
        name: &str,
        backend: BackendKind,
        sig: &brasa::Signature,
        weights: &brasa::WeightsSummary,
    ) -> Self {
        let tensor = |t: &brasa::TensorSpec| TensorInfo {
            name: t.name.into(),
            shape: t.shape.clone(),
            datatype: t.datatype.into(),
            description: t.description.into(),
        };
        ModelInfo {
            name: name.into(),
            backend: backend.as_str().into(),
            input: tensor(&sig.input),
            output: tensor(&sig.output),
            output_kind: match sig.output_kind {
                brasa::OutputKind::Logits => "logits",
                brasa::OutputKind::Probabilities => "probabilities",
            },
            labels: sig.labels.clone(),
            parameters: weights.parameters,
            weight_bytes: weights.bytes,
            max_batch: brasa::MAX_BATCH,
        }
    }
}

/// Convert a brasa error into a JS `Error` named `BrasaError` with a stable `code`.
fn js_error(err: &BrasaError) -> JsValue {
    let js = js_sys::Error::new(&err.to_string());
    js.set_name("BrasaError");
    let _ = Reflect::set(&js, &"code".into(), &err.code().as_str().into());
    js.into()
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &key.into(), value);
}

fn prediction_to_js(p: &Prediction) -> JsValue {
    let obj = Object::new();
    set(&obj, "batch", &(p.batch as u32).into());
    set(&obj, "classes", &(p.classes as u32).into());
    set(&obj, "logits", &Float32Array::from(&p.logits[..]).into());
    set(&obj, "probabilities", &Float32Array::from(&p.probabilities[..]).into());
    set(&obj, "labels", &Uint32Array::from(&p.labels[..]).into());
    obj.into()
}

/// A loaded model. Runs may overlap; replacing weights swaps the session atomically, and runs
/// already in flight finish on the weights they started with.
#[wasm_bindgen]
pub struct WasmModel {
    session: RefCell<Rc<AnySession>>,
}

/// Load `name` with burnpack `weights` on `backend` (`"cpu"` or `"webgpu"`).
#[wasm_bindgen(js_name = loadModel)]
pub async fn load_model(name: String, weights: Vec<u8>, backend: String) -> Result<WasmModel, JsValue> {
    let kind = match backend.as_str() {
        "cpu" => BackendKind::Cpu,
        "webgpu" => BackendKind::WebGpu,
        other => {
            return Err(js_error(&BrasaError::BackendUnavailable {
                backend: other.into(),
                reason: "expected 'cpu' or 'webgpu'".into(),
            }));
        }
    };
    let session = match name.as_str() {
        "mnist" => AnySession::Mnist(Session::<Mnist>::load(&weights, kind).await.map_err(|e| js_error(&e))?),
        "squeezenet" => AnySession::Squeezenet(
            Session::<Squeezenet>::load(&weights, kind).await.map_err(|e| js_error(&e))?,
        ),
        other => {
            return Err(js_error(&BrasaError::UnknownModel {
                name: other.into(),
                known: model_names().join(", "),
            }));
        }
    };
    Ok(WasmModel { session: RefCell::new(Rc::new(session)) })
}

#[wasm_bindgen]
impl WasmModel {
    /// Run a flat batch; resolves to `{ batch, classes, logits, probabilities, labels }`.
    pub fn run(&self, input: Vec<f32>) -> Promise {
        let session = self.session.borrow().clone();
        future_to_promise(async move {
            let prediction = session.run(&input).await.map_err(|e| js_error(&e))?;
            Ok(prediction_to_js(&prediction))
        })
    }

    /// Replace the weights. Validated completely before the swap; on error nothing changes.
    #[wasm_bindgen(js_name = setWeights)]
    pub fn set_weights(&self, weights: Vec<u8>) -> Result<(), JsValue> {
        let next = self.session.borrow().with_weights(&weights).map_err(|e| js_error(&e))?;
        *self.session.borrow_mut() = Rc::new(next);
        Ok(())
    }

    /// Name, backend, signature and weight summary.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        serde_wasm_bindgen::to_value(&self.session.borrow().info())
            .map_err(|e| JsValue::from_str(&e.to_string()))
    }
}
