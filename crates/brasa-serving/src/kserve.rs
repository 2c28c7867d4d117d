//! The Open Inference Protocol (KServe v2) over JSON, as Triton, KServe, Seldon MLServer and
//! TorchServe speak it: `POST /v2/models/{name}[/versions/{v}]/infer` and
//! `GET /v2/models/{name}`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One tensor of a model's signature; `shape` excludes the batch dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSignature {
    /// Its name in requests and responses.
    pub name: String,
    /// Shape of one item.
    pub shape: Vec<usize>,
    /// KServe datatype (`FP32`).
    pub datatype: String,
}

impl TensorSignature {
    /// Values in one item.
    pub fn item_len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What a served classifier takes and gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSignature {
    /// The single input.
    pub input: TensorSignature,
    /// The logits output (`probabilities` and `label` are derived from it).
    pub output: TensorSignature,
    /// Most rows in one request.
    pub max_batch: usize,
}

/// The outputs a response can carry.
pub const PROBABILITIES: &str = "probabilities";
/// The arg-max class per row (INT64).
pub const LABEL: &str = "label";

/// Why a request is refused (HTTP 400). `code()` is stable; the message names the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON of an infer request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The body is larger than the server accepts.
    #[error("request body is {size} bytes; the limit is {limit}")]
    BodyTooLarge {
        /// Bytes received (at least).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An input the model does not have, or none at all.
    #[error("{0}")]
    UnknownInput(String),
    /// A datatype other than the model's.
    #[error("input `{name}` has datatype {got}; the model takes {want}")]
    WrongDatatype {
        /// The input.
        name: String,
        /// As sent.
        got: String,
        /// As the model takes it.
        want: String,
    },
    /// A shape that does not fit the signature.
    #[error(
        "input `{name}` has shape {got:?}; the model takes [batch, {want}] (or any shape [batch, ...] of {item} values per item)"
    )]
    WrongShape {
        /// The input.
        name: String,
        /// As sent.
        got: Vec<i64>,
        /// The item shape, comma-separated.
        want: String,
        /// Values per item.
        item: usize,
    },
    /// `data` holds another number of values than `shape` says.
    #[error("input `{name}` has shape {shape:?}, which is {want} values, but data holds {got}")]
    WrongElementCount {
        /// The input.
        name: String,
        /// As sent.
        shape: Vec<i64>,
        /// Product of the shape.
        want: usize,
        /// Values in data.
        got: usize,
    },
    /// A value that is not a finite number (or overflows FP32).
    #[error("input `{name}`: data[{index}] is {value}; every value must be a finite number")]
    NonFinite {
        /// The input.
        name: String,
        /// Flat index.
        index: usize,
        /// What was there.
        value: String,
    },
    /// More rows than the model takes in one request.
    #[error("batch of {rows} rows; the model takes at most {max} per request")]
    BatchTooLarge {
        /// Rows sent.
        rows: usize,
        /// The limit.
        max: usize,
    },
    /// A requested output the model does not have.
    #[error("unknown output `{name}`; the model has: {available}")]
    UnknownOutput {
        /// As requested.
        name: String,
        /// What it has.
        available: String,
    },
}

impl RequestError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Malformed(_) => "malformed_request",
            RequestError::BodyTooLarge { .. } => "body_too_large",
            RequestError::UnknownInput(_) => "unknown_input",
            RequestError::WrongDatatype { .. } => "wrong_datatype",
            RequestError::WrongShape { .. } => "wrong_shape",
            RequestError::WrongElementCount { .. } => "wrong_element_count",
            RequestError::NonFinite { .. } => "non_finite",
            RequestError::BatchTooLarge { .. } => "batch_too_large",
            RequestError::UnknownOutput { .. } => "unknown_output",
        }
    }

    /// The HTTP status: 413 for an oversized body, else 400.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    inputs: Option<Vec<RequestInput>>,
    #[serde(default)]
    outputs: Option<Vec<RequestOutput>>,
    #[serde(default, rename = "parameters")]
    _parameters: Option<Value>,
}

#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
    #[serde(default, rename = "parameters")]
    _parameters: Option<Value>,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default, rename = "parameters")]
    _parameters: Option<Value>,
}

/// A validated infer request.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedInfer {
    /// The request id, echoed in the response.
    pub id: Option<String>,
    /// Rows (the batch dimension).
    pub rows: usize,
    /// `rows × item` values, row-major.
    pub data: Vec<f32>,
    /// Outputs to return, in the order asked (all when the request names none).
    pub outputs: Vec<String>,
}

impl ModelSignature {
    /// Every output a response can carry.
    pub fn output_names(&self) -> Vec<String> {
        vec![self.output.name.clone(), PROBABILITIES.into(), LABEL.into()]
    }
}

/// Parse and validate an infer request body against `sig`. Never panics; every refusal
/// names what is wrong.
pub fn parse_infer(body: &[u8], sig: &ModelSignature, max_body: usize) -> Result<ParsedInfer, RequestError> {
    if body.len() > max_body {
        return Err(RequestError::BodyTooLarge { size: body.len(), limit: max_body });
    }
    let request: InferRequest =
        serde_json::from_slice(body).map_err(|e| RequestError::Malformed(e.to_string()))?;
    let inputs = request.inputs.unwrap_or_default();
    let want = &sig.input;
    let input = match inputs.as_slice() {
        [] => {
            return Err(RequestError::UnknownInput(format!(
                "the request has no inputs; the model takes `{}`",
                want.name
            )));
        }
        [one] => one,
        many => {
            let extra: Vec<&str> = many.iter().map(|i| i.name.as_str()).filter(|n| *n != want.name).collect();
            return Err(RequestError::UnknownInput(format!(
                "unexpected inputs {extra:?}; the model takes one input, `{}`",
                want.name
            )));
        }
    };
    if input.name != want.name {
        return Err(RequestError::UnknownInput(format!(
            "unknown input `{}`; the model takes `{}`",
            input.name, want.name
        )));
    }
    if input.datatype != want.datatype && !(want.datatype == "FP32" && input.datatype == "FP64") {
        return Err(RequestError::WrongDatatype {
            name: input.name.clone(),
            got: input.datatype.clone(),
            want: want.datatype.clone(),
        });
    }
    let item = want.item_len();
    let wrong_shape = || RequestError::WrongShape {
        name: input.name.clone(),
        got: input.shape.clone(),
        want: want.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        item,
    };
    if input.shape.len() < 2 || input.shape.iter().any(|&d| d < 0) || input.shape[0] == 0 {
        return Err(wrong_shape());
    }
    let rows = usize::try_from(input.shape[0]).map_err(|_| wrong_shape())?;
    let per_item =
        input.shape[1..].iter().try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?));
    if per_item != Some(item) {
        return Err(wrong_shape());
    }
    if rows > sig.max_batch {
        return Err(RequestError::BatchTooLarge { rows, max: sig.max_batch });
    }
    let expected = rows * item;
    let mut data = Vec::with_capacity(expected);
    flatten(&input.data, &mut data, &input.name, expected)?;
    if data.len() != expected {
        return Err(RequestError::WrongElementCount {
            name: input.name.clone(),
            shape: input.shape.clone(),
            want: expected,
            got: data.len(),
        });
    }
    let available = sig.output_names();
    let outputs = match request.outputs {
        None => available.clone(),
        Some(asked) if asked.is_empty() => available.clone(),
        Some(asked) => {
            let mut names = Vec::with_capacity(asked.len());
            for o in asked {
                if !available.contains(&o.name) {
                    return Err(RequestError::UnknownOutput {
                        name: o.name,
                        available: available.join(", "),
                    });
                }
                names.push(o.name);
            }
            names
        }
    };
    Ok(ParsedInfer { id: request.id, rows, data, outputs })
}

/// Flatten `data` (flat or nested arrays of numbers, row-major) into `out`, stopping early
/// once it holds more than `limit` values (the count error reports the excess).
fn flatten(value: &Value, out: &mut Vec<f32>, name: &str, limit: usize) -> Result<(), RequestError> {
    match value {
        Value::Array(items) => {
            for item in items {
                flatten(item, out, name, limit)?;
                if out.len() > limit {
                    return Ok(());
                }
            }
            Ok(())
        }
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !v.is_finite() {
                return Err(RequestError::NonFinite {
                    name: name.into(),
                    index: out.len(),
                    value: n.to_string(),
                });
            }
            out.push(v);
            Ok(())
        }
        other => Err(RequestError::NonFinite {
            name: name.into(),
            index: out.len(),
            value: match other {
                Value::String(s) => format!("the string {s:?}"),
                Value::Null => "null".into(),
                Value::Bool(b) => b.to_string(),
                _ => "an object".into(),
            },
        }),
    }
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<ResponseOutput<'a>>,
}

#[derive(Serialize)]
struct ResponseOutput<'a> {
    name: &'a str,
    shape: Vec<usize>,
    datatype: &'static str,
    data: OutputData<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutputData<'a> {
    // Serialised as f32 (shortest round-trip form), not widened to f64.
    Float(&'a [f32]),
    Int(Vec<i64>),
}

/// The response to an infer request (JSON text): the asked outputs, each `[rows, …]`.
pub fn infer_response(
    model: &str,
    version: &str,
    request: &ParsedInfer,
    sig: &ModelSignature,
    logits: &[f32],
    probabilities: &[f32],
) -> String {
    let classes = sig.output.item_len();
    let outputs = request
        .outputs
        .iter()
        .map(|name| {
            if name == LABEL {
                let labels = logits
                    .chunks(classes)
                    .map(|row| {
                        let best = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                            if v > best.1 { (i, v) } else { best }
                        });
                        best.0 as i64
                    })
                    .collect();
                ResponseOutput {
                    name,
                    shape: vec![request.rows],
                    datatype: "INT64",
                    data: OutputData::Int(labels),
                }
            } else {
                let data = if name == PROBABILITIES { probabilities } else { logits };
                ResponseOutput {
                    name,
                    shape: vec![request.rows, classes],
                    datatype: "FP32",
                    data: OutputData::Float(data),
                }
            }
        })
        .collect();
    let response =
        InferResponse { model_name: model, model_version: version, id: request.id.as_deref(), outputs };
    serde_json::to_string(&response).expect("plain structs serialise")
}

/// `GET /v2/models/{name}`: versions, platform, inputs and outputs (batch dimension -1).
pub fn model_metadata(name: &str, versions: &[String], sig: &ModelSignature) -> Value {
    let dims = |t: &TensorSignature| {
        let mut shape = vec![-1i64];
        shape.extend(t.shape.iter().map(|&d| d as i64));
        shape
    };
    let classes = sig.output.item_len() as i64;
    json!({
        "name": name,
        "versions": versions,
        "platform": "brasa",
        "inputs": [{ "name": sig.input.name, "datatype": sig.input.datatype, "shape": dims(&sig.input) }],
        "outputs": [
            { "name": sig.output.name, "datatype": sig.output.datatype, "shape": dims(&sig.output) },
            { "name": PROBABILITIES, "datatype": "FP32", "shape": [-1, classes] },
            { "name": LABEL, "datatype": "INT64", "shape": [-1] },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> ModelSignature {
        ModelSignature {
            input: TensorSignature { name: "pixels".into(), shape: vec![1, 2, 2], datatype: "FP32".into() },
            output: TensorSignature { name: "logits".into(), shape: vec![3], datatype: "FP32".into() },
            max_batch: 4,
        }
    }

    fn parse(body: &str) -> Result<ParsedInfer, RequestError> {
        parse_infer(body.as_bytes(), &sig(), 1 << 20)
    }

    #[test]
    fn accepts_flat_and_nested_data_and_any_item_shape() {
        let flat = parse(r#"{"id":"a","inputs":[{"name":"pixels","shape":[2,4],"datatype":"FP32","data":[0,1,0,1,0.5,0.5,0.5,0.5]}]}"#).unwrap();
        assert_eq!((flat.rows, flat.data.len(), flat.id.as_deref()), (2, 8, Some("a")));
        assert_eq!(flat.outputs, ["logits", "probabilities", "label"]);
        let nested = parse(r#"{"inputs":[{"name":"pixels","shape":[1,1,2,2],"datatype":"FP64","data":[[[[0,1],[1,0]]]]}],"outputs":[{"name":"label"}]}"#).unwrap();
        assert_eq!(
            (nested.rows, nested.data, nested.outputs),
            (1, vec![0.0, 1.0, 1.0, 0.0], vec!["label".to_string()])
        );
    }

    #[test]
    fn names_every_problem() {
        let cases = [
            ("{", "malformed_request"),
            (r#"{"inputs":[]}"#, "unknown_input"),
            (
                r#"{"inputs":[{"name":"image","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]}]}"#,
                "unknown_input",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"INT8","data":[0,0,0,0]}]}"#,
                "wrong_datatype",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,5],"datatype":"FP32","data":[0,0,0,0,0]}]}"#,
                "wrong_shape",
            ),
            (r#"{"inputs":[{"name":"pixels","shape":[0,4],"datatype":"FP32","data":[]}]}"#, "wrong_shape"),
            (
                r#"{"inputs":[{"name":"pixels","shape":[4],"datatype":"FP32","data":[0,0,0,0]}]}"#,
                "wrong_shape",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32","data":[0,0,0]}]}"#,
                "wrong_element_count",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32","data":[0,0,0,1e39]}]}"#,
                "non_finite",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32","data":[0,0,"x",0]}]}"#,
                "non_finite",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[5,4],"datatype":"FP32","data":[]}]}"#,
                "batch_too_large",
            ),
            (
                r#"{"inputs":[{"name":"pixels","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]}],"outputs":[{"name":"boxes"}]}"#,
                "unknown_output",
            ),
        ];
        for (body, code) in cases {
            let err = parse(body).unwrap_err();
            assert_eq!(err.code(), code, "{body}: {err}");
            assert!(err.to_string().len() > 15, "{err}");
        }
        let big = parse_infer(&[b' '; 100], &sig(), 10).unwrap_err();
        assert_eq!((big.code(), big.status()), ("body_too_large", 413));
    }

    #[test]
    fn responses_carry_exactly_the_asked_outputs() {
        let request = parse(r#"{"id":"r1","inputs":[{"name":"pixels","shape":[2,4],"datatype":"FP32","data":[0,0,0,0,1,1,1,1]}],"outputs":[{"name":"label"},{"name":"logits"}]}"#).unwrap();
        let text =
            infer_response("mnist", "1.0.0", &request, &sig(), &[0.1, 2.0, 1.0, 5.0, 0.0, 1.0], &[0.0; 6]);
        assert!(text.contains("[0.1,2.0,1.0,5.0,0.0,1.0]"), "f32 written short: {text}");
        let response: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(response["id"], "r1");
        assert_eq!(response["outputs"][0]["data"], json!([1, 0]));
        assert_eq!(response["outputs"][1]["shape"], json!([2, 3]));
        assert_eq!(response["outputs"].as_array().unwrap().len(), 2);
        let meta = model_metadata("mnist", &["1.0.0".into()], &sig());
        assert_eq!(meta["inputs"][0]["shape"], json!([-1, 1, 2, 2]));
    }
}
