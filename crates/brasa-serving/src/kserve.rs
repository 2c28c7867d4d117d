//! The Open Inference Protocol (KServe v2), as Triton, KServe, Seldon MLServer and TorchServe
//! speak it: `POST /v2/models/{name}[/versions/{v}]/infer` and `GET /v2/models/{name}`, for
//! any [`Signature`]: named tensors of any brasa dtype, in JSON or in Triton's binary tensor
//! data extension (what `tritonclient` sends by default). Text is `BYTES` (brasa's `string`):
//! JSON strings, or in binary each element's 4-byte little-endian length and its UTF-8
//! bytes; both are decoded and validated here (UTF-8, lengths, a spec's `max_bytes`).
//!
//! The layer knows no task: it turns a request into validated feeds ([`parse_infer`]) and a
//! model's fetches into a response ([`infer_response`]).

use brasa_types::{
    BytesError, DType, Dim, HostTensor, Limits, Signature, TensorError, TensorMap, TensorSpec, Values,
    strings_from_bytes,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value, json};

/// The HTTP header that carries the length of the JSON part of a binary-extension request or
/// response; the tensors' bytes follow the JSON.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// Why a request is refused. [`RequestError::code`] is stable, [`RequestError::status`] the
/// HTTP status; the message names the tensor (and index or axis) at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The body is not an infer request: bad JSON, a missing field, inconsistent binary data,
    /// an unsupported extension.
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
    /// The tensors do not fit the signature (unknown or missing input, dtype, shape, element
    /// count, finiteness, declared range, batch or size limits).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A datatype brasa does not have, or one the input cannot take.
    #[error("input `{name}` has datatype {got}; the model takes {want}")]
    WrongDatatype {
        /// The input.
        name: String,
        /// As sent.
        got: String,
        /// What the input takes.
        want: String,
    },
    /// A shape that cannot be one (a negative or oversized dimension).
    #[error(
        "input `{name}` has shape {shape:?}, which is not a shape (a dimension is negative or too large); the model takes {want}"
    )]
    WrongShape {
        /// The input.
        name: String,
        /// As sent.
        shape: Vec<i64>,
        /// The declared dims, as text.
        want: String,
    },
    /// A value of a float tensor that is not a finite number (or overflows FP32).
    #[error("input `{name}`: data[{index}] is {value}; {datatype} data must be finite numbers")]
    NonFinite {
        /// The input.
        name: String,
        /// Flat index.
        index: usize,
        /// What was there.
        value: String,
        /// The datatype sent.
        datatype: String,
    },
    /// An integer outside the range of the tensor's datatype.
    #[error("input `{name}`: data[{index}] is {value}, outside the range of {datatype}")]
    OutOfRange {
        /// The input.
        name: String,
        /// Flat index.
        index: usize,
        /// What was there.
        value: String,
        /// The datatype sent.
        datatype: String,
    },
    /// A value of the wrong kind: not an integer for an integer tensor, not a boolean for a
    /// BOOL one.
    #[error("input `{name}`: data[{index}] is {value}; {datatype} data must be {expected}")]
    WrongValue {
        /// The input.
        name: String,
        /// Flat index.
        index: usize,
        /// What was there.
        value: String,
        /// The datatype sent.
        datatype: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Binary `BYTES` data that is not a list of length-prefixed UTF-8 strings.
    #[error("input `{name}`: its binary BYTES data is not length-prefixed UTF-8 text: {source}")]
    Bytes {
        /// The input.
        name: String,
        /// What is wrong, and at which element.
        source: BytesError,
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
    /// A stable, machine-readable code: `malformed_request`, `body_too_large`,
    /// `unknown_input`, `wrong_datatype`, `wrong_shape`, `wrong_element_count`, `non_finite`,
    /// `out_of_range`, `batch_too_large` or `unknown_output` (binary `BYTES` whose lengths do
    /// not add up: `malformed_request`; that are not UTF-8: `wrong_datatype`).
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Malformed(_) => "malformed_request",
            RequestError::BodyTooLarge { .. } => "body_too_large",
            RequestError::Tensor(e) => e.kserve_code(),
            RequestError::WrongDatatype { .. } | RequestError::WrongValue { .. } => "wrong_datatype",
            RequestError::WrongShape { .. } => "wrong_shape",
            RequestError::NonFinite { .. } => "non_finite",
            RequestError::OutOfRange { .. } => "out_of_range",
            RequestError::UnknownOutput { .. } => "unknown_output",
            RequestError::Bytes { source: BytesError::NotUtf8 { .. }, .. } => "wrong_datatype",
            RequestError::Bytes { .. } => "malformed_request",
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
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    inputs: Vec<RequestInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestOutput>>,
}

#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// One output a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedOutput {
    /// The output's name in the signature.
    pub name: String,
    /// Whether it goes back as binary data after the JSON (Triton's extension) rather than
    /// as JSON `data`.
    #[serde(default)]
    pub binary: bool,
}

/// A validated infer request.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedInfer {
    /// The request id, echoed in the response.
    pub id: Option<String>,
    /// Every input of the signature, validated. Float inputs hold the declared float dtype
    /// (FP16, FP32 and FP64 data are converted); other dtypes are as declared.
    pub inputs: TensorMap,
    /// Outputs to return, in the order asked (every output of the signature, in its order,
    /// when the request names none).
    pub outputs: Vec<RequestedOutput>,
    /// The batch size, when the signature has a batch dimension.
    pub batch: Option<usize>,
}

/// How an input's data arrives: a brasa dtype, or FP64 (narrowed to FP32).
#[derive(Clone, Copy)]
enum Wire {
    Is(DType),
    Fp64,
}

/// Parse and validate an infer request against `sig` and `limits`. `header_length` is the
/// value of the [`HEADER_LENGTH`] HTTP header: when given, the body is that many bytes of
/// JSON followed by the binary data of the inputs that have `parameters.binary_data_size`,
/// in order. Never panics; every refusal names what is wrong.
pub fn parse_infer(
    body: &[u8],
    header_length: Option<usize>,
    sig: &Signature,
    limits: &Limits,
    max_body: usize,
) -> Result<ParsedInfer, RequestError> {
    if body.len() > max_body {
        return Err(RequestError::BodyTooLarge { size: body.len(), limit: max_body });
    }
    let (header, mut blobs) = match header_length {
        None => (body, None),
        Some(n) => match body.split_at_checked(n) {
            Some((header, rest)) => (header, Some(rest)),
            None => {
                return Err(RequestError::Malformed(format!(
                    "{HEADER_LENGTH} is {n}, but the body holds only {} bytes",
                    body.len()
                )));
            }
        },
    };
    let request: InferRequest =
        serde_json::from_slice(header).map_err(|e| RequestError::Malformed(e.to_string()))?;

    let mut feeds = TensorMap::new();
    for input in &request.inputs {
        let name = input.name.as_str();
        let spec = sig.input(name).ok_or_else(|| TensorError::UnknownInput {
            name: name.to_owned(),
            expected: quoted_names(&sig.inputs),
        })?;
        if feeds.contains_key(name) {
            return Err(RequestError::Malformed(format!("input `{name}` appears twice")));
        }
        let params = input.parameters.as_ref();
        if params.is_some_and(|p| p.get("shared_memory_region").is_some_and(|v| !v.is_null())) {
            return Err(RequestError::Malformed(format!(
                "input `{name}`: shared memory is not supported; send `data` or binary data"
            )));
        }
        let wire = wire_type(name, &input.datatype, spec)?;
        let dims =
            input.shape.iter().map(|&d| usize::try_from(d)).collect::<Result<Vec<_>, _>>().map_err(|_| {
                RequestError::WrongShape {
                    name: name.to_owned(),
                    shape: input.shape.clone(),
                    want: spec.dims_text(),
                }
            })?;
        let binary_size = usize_param(params, "binary_data_size", &format!("input `{name}`"))?;
        let values = match (&input.data, binary_size) {
            (Some(_), Some(_)) => {
                return Err(RequestError::Malformed(format!(
                    "input `{name}` has both `data` and parameters.binary_data_size; send one"
                )));
            }
            (None, None) => {
                return Err(RequestError::Malformed(format!(
                    "input `{name}` has no data: neither `data` nor parameters.binary_data_size"
                )));
            }
            (Some(data), None) => json_values(name, &input.datatype, wire, data)?,
            (None, Some(size)) => {
                let Some(rest) = blobs else {
                    return Err(RequestError::Malformed(format!(
                        "input `{name}` has parameters.binary_data_size, but the request has no \
                         {HEADER_LENGTH} header saying where its JSON ends"
                    )));
                };
                let Some((blob, rest)) = rest.split_at_checked(size) else {
                    return Err(RequestError::Malformed(format!(
                        "input `{name}` has binary_data_size {size}, but only {} bytes of binary data remain",
                        rest.len()
                    )));
                };
                blobs = Some(rest);
                binary_values(name, &input.datatype, wire, blob)?
            }
        };
        // Floats reach the model in its declared width, whatever width was sent.
        let values = if spec.dtype.is_float() && values.dtype() != spec.dtype {
            values.cast(spec.dtype)
        } else {
            values
        };
        feeds.insert(name.to_owned(), HostTensor::new(dims, values));
    }
    if let Some(rest) = blobs
        && !rest.is_empty()
    {
        return Err(RequestError::Malformed(format!(
            "{} bytes of binary data follow the inputs' binary_data_size; the sizes do not add up",
            rest.len()
        )));
    }
    let resolved = sig.validate_inputs(&feeds, limits)?;

    let binary_default = bool_param(request.parameters.as_ref(), "binary_data_output", "the request")?;
    let outputs = match request.outputs {
        Some(asked) if !asked.is_empty() => {
            let mut outputs: Vec<RequestedOutput> = Vec::with_capacity(asked.len());
            for o in asked {
                let what = format!("output `{}`", o.name);
                if sig.output(&o.name).is_none() {
                    return Err(RequestError::UnknownOutput {
                        name: o.name,
                        available: quoted_names(&sig.outputs),
                    });
                }
                if outputs.iter().any(|r| r.name == o.name) {
                    return Err(RequestError::Malformed(format!("{what} is asked twice")));
                }
                let params = o.parameters.as_ref();
                for unsupported in ["shared_memory_region", "classification"] {
                    if params.is_some_and(|p| p.get(unsupported).is_some_and(|v| !v.is_null())) {
                        return Err(RequestError::Malformed(format!(
                            "{what}: parameters.{unsupported} is not supported"
                        )));
                    }
                }
                let binary = bool_param(params, "binary_data", &what)?.or(binary_default).unwrap_or(false);
                outputs.push(RequestedOutput { name: o.name, binary });
            }
            outputs
        }
        _ => sig
            .outputs
            .iter()
            .map(|o| RequestedOutput { name: o.name.clone(), binary: binary_default.unwrap_or(false) })
            .collect(),
    };
    Ok(ParsedInfer { id: request.id, inputs: feeds, outputs, batch: resolved.batch })
}

/// The tensors' names, `` `a`, `b` ``.
fn quoted_names(specs: &[TensorSpec]) -> String {
    let names: Vec<String> = specs.iter().map(|t| format!("`{}`", t.name)).collect();
    names.join(", ")
}

/// The datatype's wire form, if `spec` takes it: its own dtype, the other float width, or
/// FP64 for a float tensor.
fn wire_type(name: &str, datatype: &str, spec: &TensorSpec) -> Result<Wire, RequestError> {
    let wire = match datatype {
        "FP64" if spec.dtype.is_float() => Some(Wire::Fp64),
        other => DType::from_kserve(other).filter(|d| spec.dtype.accepts(*d)).map(Wire::Is),
    };
    wire.ok_or_else(|| RequestError::WrongDatatype {
        name: name.to_owned(),
        got: datatype.to_owned(),
        want: if spec.dtype.is_float() {
            format!("{} (FP32, FP16 and FP64 are converted)", spec.dtype.kserve())
        } else {
            spec.dtype.kserve().to_owned()
        },
    })
}

fn param<'a>(params: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a Value> {
    params.and_then(|p| p.get(key)).filter(|v| !v.is_null())
}

fn usize_param(
    params: Option<&Map<String, Value>>,
    key: &str,
    what: &str,
) -> Result<Option<usize>, RequestError> {
    param(params, key)
        .map(|v| {
            v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                RequestError::Malformed(format!("{what}: parameters.{key} is {v}; it must be a byte count"))
            })
        })
        .transpose()
}

fn bool_param(
    params: Option<&Map<String, Value>>,
    key: &str,
    what: &str,
) -> Result<Option<bool>, RequestError> {
    param(params, key)
        .map(|v| {
            v.as_bool().ok_or_else(|| {
                RequestError::Malformed(format!("{what}: parameters.{key} is {v}; it must be true or false"))
            })
        })
        .transpose()
}

/// Visit the leaves of flat or nested arrays, row-major (a bare scalar is one leaf). The
/// depth is bounded by serde_json's recursion limit.
fn for_each_leaf<'a, F>(value: &'a Value, f: &mut F) -> Result<(), RequestError>
where
    F: FnMut(&'a Value) -> Result<(), RequestError>,
{
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| for_each_leaf(v, f)),
        leaf => f(leaf),
    }
}

/// Every leaf of `data` converted by `convert(leaf, index)`.
fn collect<T>(
    data: &Value,
    mut convert: impl FnMut(&Value, usize) -> Result<T, RequestError>,
) -> Result<Vec<T>, RequestError> {
    let mut out = Vec::new();
    for_each_leaf(data, &mut |leaf| {
        out.push(convert(leaf, out.len())?);
        Ok(())
    })?;
    Ok(out)
}

/// A JSON value for an error message (long strings cut short).
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() > 40 => {
            format!("the string {:?}…", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

/// What integer a JSON number is.
enum Integer {
    Is(i64),
    /// Integral, beyond i64.
    Huge,
    /// Fractional (or not a number at all).
    Not,
}

fn integer(n: &Number) -> Integer {
    if let Some(i) = n.as_i64() {
        return Integer::Is(i);
    }
    if n.as_u64().is_some() {
        return Integer::Huge;
    }
    match n.as_f64() {
        // `1e3` or `2.0`: integral, written as a float.
        Some(f) if f.is_finite() && f.fract() == 0.0 => {
            // -2^63 is i64::MIN; 2^63 is beyond i64::MAX.
            if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
                Integer::Is(f as i64)
            } else {
                Integer::Huge
            }
        }
        _ => Integer::Not,
    }
}

/// Decode JSON `data` (flat or nested arrays) of `datatype`.
fn json_values(name: &str, datatype: &str, wire: Wire, data: &Value) -> Result<Values, RequestError> {
    let wrong = |leaf: &Value, index: usize, expected: &'static str| RequestError::WrongValue {
        name: name.to_owned(),
        index,
        value: describe(leaf),
        datatype: datatype.to_owned(),
        expected,
    };
    let dtype = match wire {
        Wire::Fp64 => DType::Float32,
        Wire::Is(d) => d,
    };
    let int = |leaf: &Value, index: usize| -> Result<i64, RequestError> {
        let out_of_range = || RequestError::OutOfRange {
            name: name.to_owned(),
            index,
            value: leaf.to_string(),
            datatype: datatype.to_owned(),
        };
        let i = match leaf {
            Value::Number(n) => match integer(n) {
                Integer::Is(i) => i,
                Integer::Huge => return Err(out_of_range()),
                Integer::Not => return Err(wrong(leaf, index, "integers")),
            },
            _ => return Err(wrong(leaf, index, "integers")),
        };
        let fits = match dtype {
            DType::Int32 => i32::try_from(i).is_ok(),
            DType::Uint8 => u8::try_from(i).is_ok(),
            _ => true,
        };
        if fits { Ok(i) } else { Err(out_of_range()) }
    };
    Ok(match dtype {
        DType::Float32 | DType::Float16 => {
            let floats = collect(data, |leaf, index| {
                let non_finite = || RequestError::NonFinite {
                    name: name.to_owned(),
                    index,
                    value: describe(leaf),
                    datatype: datatype.to_owned(),
                };
                match leaf {
                    // Narrowed to f32 first: FP64 values beyond f32 become infinite, so refused.
                    Value::Number(n) => match n.as_f64().map(|x| x as f32) {
                        Some(x) if x.is_finite() => Ok(x),
                        _ => Err(non_finite()),
                    },
                    // How serialisers write what JSON cannot: NaN and infinities.
                    Value::Null => Err(non_finite()),
                    Value::String(t) if is_non_finite_word(t) => Err(non_finite()),
                    _ => Err(wrong(leaf, index, "numbers")),
                }
            })?;
            Values::Float32(floats).cast(dtype)
        }
        // `int` has checked each value fits the dtype, so the casts are exact.
        DType::Int64 => Values::Int64(collect(data, int)?),
        DType::Int32 => Values::Int32(collect(data, |leaf, index| int(leaf, index).map(|i| i as i32))?),
        DType::Uint8 => Values::Uint8(collect(data, |leaf, index| int(leaf, index).map(|i| i as u8))?),
        DType::Bool => Values::Bool(collect(data, |leaf, index| {
            leaf.as_bool().ok_or_else(|| wrong(leaf, index, "true or false"))
        })?),
        // JSON strings are UTF-8 already (serde_json checked); numbers are no text.
        DType::String => Values::String(collect(data, |leaf, index| {
            leaf.as_str().map(str::to_owned).ok_or_else(|| wrong(leaf, index, "strings"))
        })?),
    })
}

/// `NaN`, `Infinity`, `-inf`…: a string some JSON writers put where a float was not finite.
fn is_non_finite_word(text: &str) -> bool {
    let word = text.trim().trim_start_matches(['+', '-']).to_ascii_lowercase();
    matches!(word.as_str(), "nan" | "inf" | "infinity")
}

/// Decode an input's binary data: little endian, the datatype's element size (BOOL: one byte,
/// 0 or 1; FP16: the bits; BYTES: each element's u32 length, then its UTF-8 bytes).
fn binary_values(name: &str, datatype: &str, wire: Wire, blob: &[u8]) -> Result<Values, RequestError> {
    if let Wire::Is(DType::String) = wire {
        return strings_from_bytes(blob)
            .map(Values::String)
            .map_err(|source| RequestError::Bytes { name: name.to_owned(), source });
    }
    let size = match wire {
        Wire::Fp64 => 8,
        Wire::Is(d) => d.byte_size(),
    };
    if !blob.len().is_multiple_of(size) {
        return Err(RequestError::Malformed(format!(
            "input `{name}` has binary_data_size {}, not a whole number of {datatype} elements ({size} bytes each)",
            blob.len()
        )));
    }
    match wire {
        Wire::Fp64 => Ok(Values::Float32(
            blob.chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
                .collect(),
        )),
        Wire::Is(dtype) => Values::from_le_bytes(dtype, blob).ok_or_else(|| {
            // The size is whole, so only a BOOL byte other than 0 or 1 gets here.
            let index = blob.iter().position(|&b| b > 1).unwrap_or(0);
            RequestError::WrongValue {
                name: name.to_owned(),
                index,
                value: format!("the byte {}", blob.get(index).copied().unwrap_or(0)),
                datatype: datatype.to_owned(),
                expected: "bytes 0 or 1",
            }
        }),
    }
}

/// A response body: JSON, followed by the binary outputs' bytes when any output is binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferResponse {
    /// The body to send.
    pub body: Vec<u8>,
    /// The length of its JSON part, for the [`HEADER_LENGTH`] header; `None` when the body is
    /// all JSON (send no such header).
    pub header_length: Option<usize>,
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<ResponseOutput<'a>>,
}

#[derive(Serialize)]
struct ResponseOutput<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutputData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutputData<'a> {
    // f32 is serialised in its own shortest form (0.1, not 0.10000000149011612).
    Float(&'a [f32]),
    Widened(Vec<f32>),
    Int64(&'a [i64]),
    Int32(&'a [i32]),
    Uint8(&'a [u8]),
    Bool(&'a [bool]),
    Strings(&'a [String]),
}

impl<'a> OutputData<'a> {
    fn of(values: &'a Values) -> Self {
        match values {
            Values::Float32(v) => OutputData::Float(v),
            Values::Float16(_) => OutputData::Widened(values.to_f32()),
            Values::Int64(v) => OutputData::Int64(v),
            Values::Int32(v) => OutputData::Int32(v),
            Values::Uint8(v) => OutputData::Uint8(v),
            Values::Bool(v) => OutputData::Bool(v),
            Values::String(v) => OutputData::Strings(v),
        }
    }
}

/// The response to an infer request: the `outputs` asked, in order, taken from `fetches`
/// (their dtype and dims as the model gave them). Binary outputs go after the JSON, in the
/// same order, and set [`InferResponse::header_length`]. A missing fetch is an error (a
/// model or handler bug, not the client's).
pub fn infer_response(
    model: &str,
    version: &str,
    id: Option<&str>,
    outputs: &[RequestedOutput],
    fetches: &TensorMap,
) -> Result<InferResponse, String> {
    let mut binary = Vec::new();
    let mut entries = Vec::with_capacity(outputs.len());
    for out in outputs {
        let tensor = fetches
            .get(&out.name)
            .ok_or_else(|| format!("output `{}` is asked for but was not computed", out.name))?;
        let (data, parameters) = if out.binary {
            let bytes = tensor.values.to_le_bytes();
            let size = bytes.len();
            binary.extend_from_slice(&bytes);
            (None, Some(BinaryParameters { binary_data_size: size }))
        } else {
            (Some(OutputData::of(&tensor.values)), None)
        };
        entries.push(ResponseOutput {
            name: &out.name,
            datatype: tensor.dtype().kserve(),
            shape: &tensor.dims,
            data,
            parameters,
        });
    }
    let response = ResponseJson { model_name: model, model_version: version, id, outputs: entries };
    let mut body =
        serde_json::to_vec(&response).map_err(|e| format!("cannot serialise the response: {e}"))?;
    let header_length = outputs.iter().any(|o| o.binary).then_some(body.len());
    body.extend_from_slice(&binary);
    Ok(InferResponse { body, header_length })
}

/// What an endpoint accepts beyond one call's [`Limits`], stated in metadata so that a client
/// can size its requests before sending them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointLimits {
    /// Largest request body (bytes); larger ones get 413.
    pub max_body_bytes: Option<usize>,
    /// Most rows waiting for a forward pass; beyond, 503 with `Retry-After`.
    pub max_queue_rows: Option<usize>,
}

/// `GET /v2/models/{name}`: versions, platform, and every input and output with its KServe
/// datatype and shape (-1 where a dimension varies). brasa adds `parameters`: the limits of
/// one call (`max_batch`, `max_elements`), the endpoint's (`max_body_bytes`,
/// `max_queue_rows`, when given) and the bounds of every named dimension
/// (`dims: { seq: { min, max } }`, `max` null when unbounded), and the byte limit of each
/// string input that has one (`max_bytes: { text: 16384 }`).
pub fn model_metadata(
    name: &str,
    versions: &[String],
    sig: &Signature,
    limits: &Limits,
    endpoint: &EndpointLimits,
) -> Value {
    let tensors = |specs: &[TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|t| {
                let shape: Vec<i64> = t.dims.iter().map(|d| d.kserve()).collect();
                json!({ "name": t.name, "datatype": t.dtype.kserve(), "shape": shape })
            })
            .collect()
    };
    let mut dims = Map::new();
    for spec in sig.inputs.iter().chain(&sig.outputs) {
        for dim in &spec.dims {
            if let Dim::Dynamic { name, min, max } = dim {
                // Validation refuses a size of 0 unless a minimum says otherwise.
                dims.entry(name.clone()).or_insert_with(|| json!({ "min": min.unwrap_or(1), "max": max }));
            }
        }
    }
    let mut parameters = json!({ "max_batch": limits.max_batch, "max_elements": limits.max_elements });
    if let Some(n) = endpoint.max_body_bytes {
        parameters["max_body_bytes"] = json!(n);
    }
    if let Some(n) = endpoint.max_queue_rows {
        parameters["max_queue_rows"] = json!(n);
    }
    parameters["dims"] = Value::Object(dims);
    let max_bytes: Map<String, Value> =
        sig.inputs.iter().filter_map(|t| Some((t.name.clone(), json!(t.max_bytes?)))).collect();
    if !max_bytes.is_empty() {
        parameters["max_bytes"] = Value::Object(max_bytes);
    }
    json!({
        "name": name,
        "versions": versions,
        "platform": "brasa",
        "inputs": tensors(&sig.inputs),
        "outputs": tensors(&sig.outputs),
        "parameters": parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An image model and a two-input model, with every dtype between them.
    fn mnist() -> Signature {
        Signature {
            inputs: vec![TensorSpec::new(
                "pixels",
                DType::Float32,
                vec![Dim::Batch, Dim::Fixed(1), Dim::Fixed(28), Dim::Fixed(28)],
            )],
            outputs: vec![
                TensorSpec::new("logits", DType::Float32, vec![Dim::Batch, Dim::Fixed(10)]),
                TensorSpec::new("label", DType::Int64, vec![Dim::Batch]),
            ],
        }
    }

    fn text() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec::new("x", DType::Float32, vec![Dim::Batch, Dim::Fixed(2)]),
                TensorSpec::new("ids", DType::Int64, vec![Dim::Batch, Dim::bounded("seq", 1, 8)])
                    .range(0.0, 99.0),
                TensorSpec::new("mask", DType::Bool, vec![Dim::Batch, Dim::dynamic("seq")]),
                TensorSpec::new("half", DType::Float16, vec![Dim::Batch]),
                TensorSpec::new("small", DType::Int32, vec![Dim::Batch]),
                TensorSpec::new("bytes", DType::Uint8, vec![Dim::Batch]),
            ],
            outputs: vec![
                TensorSpec::new("y", DType::Float32, vec![Dim::Batch, Dim::Fixed(2)]),
                TensorSpec::new("cls", DType::Int64, vec![Dim::Batch]),
                TensorSpec::new("ok", DType::Bool, vec![Dim::Batch]),
            ],
        }
    }

    /// A valid `text()` request with `x` replaced by `x_json` (the other inputs of batch 2).
    fn text_body(x: &str) -> String {
        format!(
            r#"{{"inputs":[{x},
            {{"name":"ids","shape":[2,3],"datatype":"INT64","data":[[1,2,3],[4,5,6]]}},
            {{"name":"mask","shape":[2,3],"datatype":"BOOL","data":[true,true,false,true,false,false]}},
            {{"name":"half","shape":[2],"datatype":"FP16","data":[1.5,-2]}},
            {{"name":"small","shape":[2],"datatype":"INT32","data":[-7,2147483647]}},
            {{"name":"bytes","shape":[2],"datatype":"UINT8","data":[0,255]}}]}}"#
        )
    }

    /// The valid `text()` request with `extra` fields after `inputs`.
    fn with_extra(extra: &str) -> String {
        let body = text_body(X);
        format!("{}{extra}}}", &body[..body.len() - 1])
    }

    const X: &str = r#"{"name":"x","shape":[2,2],"datatype":"FP32","data":[[0.1,0.2],[0.3,0.4]]}"#;

    fn parse_text(body: &str) -> Result<ParsedInfer, RequestError> {
        parse_infer(body.as_bytes(), None, &text(), &Limits::default(), 1 << 20)
    }

    #[test]
    fn multi_input_request_with_every_dtype() {
        let parsed = parse_text(&text_body(X)).unwrap();
        assert_eq!(parsed.batch, Some(2));
        assert_eq!(parsed.id, None);
        let t = &parsed.inputs;
        assert_eq!(t["x"], HostTensor::new(vec![2, 2], Values::Float32(vec![0.1, 0.2, 0.3, 0.4])));
        assert_eq!(t["ids"], HostTensor::new(vec![2, 3], Values::Int64(vec![1, 2, 3, 4, 5, 6])));
        assert_eq!(t["mask"].values, Values::Bool(vec![true, true, false, true, false, false]));
        assert_eq!(t["half"].values, Values::Float32(vec![1.5, -2.0]).cast(DType::Float16));
        assert_eq!(t["half"].values, Values::Float16(vec![0x3e00, 0xc000]));
        assert_eq!(t["small"].values, Values::Int32(vec![-7, i32::MAX]));
        assert_eq!(t["bytes"].values, Values::Uint8(vec![0, 255]));
        let names: Vec<&str> = parsed.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["y", "cls", "ok"]);
        assert!(parsed.outputs.iter().all(|o| !o.binary));

        // FP64 for an FP32 tensor is narrowed; FP32 for the FP16 one is converted.
        let x64 = r#"{"name":"x","shape":[2,2],"datatype":"FP64","data":[0.1,0.2,0.3,1e3]}"#;
        let parsed = parse_text(&text_body(x64).replace(r#""FP16""#, r#""FP32""#)).unwrap();
        assert_eq!(parsed.inputs["x"].values, Values::Float32(vec![0.1, 0.2, 0.3, 1000.0]));
        assert_eq!(parsed.inputs["half"].values, Values::Float16(vec![0x3e00, 0xc000]));
        // Integral floats are integers.
        let parsed = parse_text(&text_body(X).replace("[[1,2,3]", "[[1.0,2e0,3]")).unwrap();
        assert_eq!(parsed.inputs["ids"].values, Values::Int64(vec![1, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn every_refusal_has_its_code_and_names_the_tensor() {
        let cases: Vec<(String, &str, &str)> = vec![
            ("{".into(), "malformed_request", "EOF"),
            (text_body(X).replace(r#""id"#, r#""idz"#), "unknown_input", "idz"),
            (text_body(X).replace(r#"{"name":"bytes","shape":[2],"datatype":"UINT8","data":[0,255]}"#, r#"{"name":"bytes","shape":[2],"datatype":"UINT8","data":[0,255]},{"name":"bytes","shape":[2],"datatype":"UINT8","data":[0,255]}"#), "malformed_request", "`bytes` appears twice"),
            (r#"{"inputs":[]}"#.into(), "unknown_input", "missing input `x`"),
            (text_body(X).replace(r#""FP32""#, r#""INT8""#), "wrong_datatype", "`x` has datatype INT8"),
            (text_body(X).replace(r#""INT32""#, r#""INT64""#), "wrong_datatype", "`small` has datatype INT64; the model takes INT32"),
            (text_body(X).replace("[2,2]", "[2,-2]"), "wrong_shape", "`x` has shape [2, -2]"),
            (text_body(X).replace("[2,2]", "[2,3]"), "wrong_shape", "`x` has dims [2, 3]: dimension 1 is 3"),
            (text_body(X).replace("[2,2]", "[2,2,1]"), "wrong_shape", "`x` has dims [2, 2, 1]"),
            (text_body(X).replace("[[0.1,0.2],[0.3,0.4]]", "[0.1,0.2,0.3]"), "wrong_element_count", "`x` has dims [2, 2] = 4 elements, but its data holds 3"),
            (text_body(X).replace("0.3", "1e39"), "non_finite", "`x`: data[2] is 1e+39"),
            (text_body(X).replace("0.3", r#""NaN""#), "non_finite", r#"`x`: data[2] is the string "NaN""#),
            (text_body(X).replace("0.3", "null"), "non_finite", "`x`: data[2] is null"),
            (text_body(X).replace("0.3", r#""-Infinity""#), "non_finite", r#"`x`: data[2] is the string "-Infinity""#),
            (text_body(X).replace("0.3", r#""0.3""#), "wrong_datatype", "`x`"),
            (text_body(X).replace("0.3", "true"), "wrong_datatype", "`x`"),
            (text_body(X).replace("0.3", "{}"), "wrong_datatype", "`x`"),
            (text_body(X).replace("1.5,-2", "1.5,1e5"), "non_finite", "`half`: element 1 is inf"),
            (text_body(X).replace("[4,5,6]", "[4,5.5,6]"), "wrong_datatype", "`ids`: data[4] is 5.5; INT64 data must be integers"),
            (text_body(X).replace("[4,5,6]", "[4,true,6]"), "wrong_datatype", "`ids`: data[4] is true"),
            (text_body(X).replace("[4,5,6]", "[4,1e19,6]"), "out_of_range", "`ids`: data[4] is 1e+19, outside the range of INT64"),
            (text_body(X).replace("[4,5,6]", "[4,18446744073709551615,6]"), "out_of_range", "`ids`: data[4]"),
            (text_body(X).replace("[4,5,6]", "[4,500,6]"), "out_of_range", "`ids`: element 4 is 500, outside the declared range [0, 99]"),
            (text_body(X).replace("2147483647", "2147483648"), "out_of_range", "`small`: data[1] is 2147483648, outside the range of INT32"),
            (text_body(X).replace("[0,255]", "[0,256]"), "out_of_range", "`bytes`: data[1] is 256"),
            (text_body(X).replace("[0,255]", "[-1,2]"), "out_of_range", "`bytes`: data[0] is -1"),
            (text_body(X).replace("true,true,false", "true,1,false"), "wrong_datatype", "`mask`: data[1] is 1; BOOL data must be true or false"),
            (text_body(X).replace(r#","data":[[1,2,3],[4,5,6]]"#, ""), "malformed_request", "`ids` has no data"),
            (text_body(X).replace(r#","data":[[1,2,3],[4,5,6]]"#, r#","data":[1,2,3,4,5,6],"parameters":{"binary_data_size":48}"#), "malformed_request", "`ids` has both"),
            (text_body(X).replace(r#","data":[[1,2,3],[4,5,6]]"#, r#","parameters":{"binary_data_size":48}"#), "malformed_request", "no Inference-Header-Content-Length"),
            (text_body(X).replace(r#","data":[[1,2,3],[4,5,6]]"#, r#","parameters":{"shared_memory_region":"r"}"#), "malformed_request", "`ids`: shared memory"),
            (text_body(X).replace("[2,3]", "[2,9]").replace("[true,true,false,true,false,false]", "[true]"), "wrong_shape", "`seq` must be at most 8"),
            (with_extra(r#","outputs":[{"name":"boxes"}]"#), "unknown_output", "`boxes`; the model has: `y`, `cls`, `ok`"),
            (with_extra(r#","outputs":[{"name":"y"},{"name":"y"}]"#), "malformed_request", "`y` is asked twice"),
            (with_extra(r#","outputs":[{"name":"cls","parameters":{"classification":3}}]"#), "malformed_request", "classification is not supported"),
            (with_extra(r#","outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]"#), "malformed_request", "binary_data is \"yes\""),
            (with_extra(r#","parameters":{"binary_data_output":1}"#), "malformed_request", "binary_data_output is 1"),
            (text_body(X).replace(r#"{"inputs""#, r#"{"id":7,"inputs""#), "malformed_request", "invalid type"),
        ];
        for (body, code, needle) in cases {
            let err = parse_text(&body).unwrap_err();
            assert_eq!(err.code(), code, "{body}: {err}");
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(needle), "`{needle}` not in: {err}");
        }
        let big = parse_infer(&[b' '; 100], None, &text(), &Limits::default(), 10).unwrap_err();
        assert_eq!((big.code(), big.status()), ("body_too_large", 413));
    }

    #[test]
    fn nhwc_sent_to_nchw_is_a_wrong_shape() {
        let data = vec!["0"; 784].join(",");
        let body = format!(
            r#"{{"inputs":[{{"name":"pixels","shape":[1,28,28,1],"datatype":"FP32","data":[{data}]}}]}}"#
        );
        let err = parse_infer(body.as_bytes(), None, &mnist(), &Limits::default(), 1 << 20).unwrap_err();
        assert_eq!(err.code(), "wrong_shape");
        let msg = err.to_string();
        assert!(msg.contains("`pixels`") && msg.contains("dimension 1 is 28, but it must be 1"), "{msg}");
        assert!(msg.contains("[batch, 1, 28, 28]"), "{msg}");
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits { max_batch: 1, ..Limits::default() };
        let err = parse_infer(text_body(X).as_bytes(), None, &text(), &limits, 1 << 20).unwrap_err();
        assert_eq!(err.code(), "batch_too_large");
        assert!(err.to_string().contains("limit of 1"), "{err}");
        let limits = Limits { max_elements: 5, ..Limits::default() };
        let err = parse_infer(text_body(X).as_bytes(), None, &text(), &limits, 1 << 20).unwrap_err();
        assert_eq!(err.code(), "batch_too_large");
    }

    /// Exactly what `tritonclient.http` sends (it serialises with rapidjson, compact) for
    /// `set_data_from_numpy(x, binary_data=False)` and
    /// `InferRequestedOutput("label", binary_data=False)`.
    #[test]
    fn tritonclient_json_request() {
        let data: Vec<String> = (0..784).map(|i| format!("{:?}", f64::from(i as f32 / 784.0))).collect();
        let body = format!(
            r#"{{"id":"42","inputs":[{{"name":"pixels","shape":[1,1,28,28],"datatype":"FP32","data":[{}]}}],"outputs":[{{"name":"label","parameters":{{"binary_data":false}}}}]}}"#,
            data.join(",")
        );
        let parsed = parse_infer(body.as_bytes(), None, &mnist(), &Limits::default(), 1 << 20).unwrap();
        assert_eq!(parsed.id.as_deref(), Some("42"));
        assert_eq!(parsed.batch, Some(1));
        let expected: Vec<f32> = (0..784).map(|i| i as f32 / 784.0).collect();
        assert_eq!(parsed.inputs["pixels"].values, Values::Float32(expected));
        assert_eq!(parsed.outputs, [RequestedOutput { name: "label".into(), binary: false }]);

        // Without outputs, tritonclient asks for every output in binary.
        let body = format!(
            r#"{{"inputs":[{{"name":"pixels","shape":[1,1,28,28],"datatype":"FP32","data":[{}]}}],"parameters":{{"binary_data_output":true}}}}"#,
            data.join(",")
        );
        let parsed = parse_infer(body.as_bytes(), None, &mnist(), &Limits::default(), 1 << 20).unwrap();
        assert_eq!(
            parsed.outputs,
            [
                RequestedOutput { name: "logits".into(), binary: true },
                RequestedOutput { name: "label".into(), binary: true }
            ]
        );
    }

    /// A binary-extension request as tritonclient builds it: the JSON header, then each
    /// input's bytes in order.
    fn binary_request(inputs: &[(&str, &str, Vec<usize>, Vec<u8>)], extra: &str) -> (Vec<u8>, usize) {
        let tensors: Vec<String> = inputs
            .iter()
            .map(|(name, datatype, shape, bytes)| {
                format!(
                    r#"{{"name":"{name}","shape":{shape:?},"datatype":"{datatype}","parameters":{{"binary_data_size":{}}}}}"#,
                    bytes.len()
                )
            })
            .collect();
        let header = format!(r#"{{"inputs":[{}]{extra}}}"#, tensors.join(","));
        let mut body = header.clone().into_bytes();
        for (.., bytes) in inputs {
            body.extend_from_slice(bytes);
        }
        (body, header.len())
    }

    fn binary_inputs() -> Vec<(&'static str, &'static str, Vec<usize>, Vec<u8>)> {
        vec![
            ("x", "FP32", vec![2, 2], Values::Float32(vec![0.5, -1.0, 2.0, 3.25]).to_le_bytes()),
            ("ids", "INT64", vec![2, 1], Values::Int64(vec![7, 99]).to_le_bytes()),
            ("mask", "BOOL", vec![2, 1], vec![1, 0]),
            ("half", "FP16", vec![2], Values::Float16(vec![0x3c00, 0x4000]).to_le_bytes()),
            ("small", "INT32", vec![2], Values::Int32(vec![-1, 1]).to_le_bytes()),
            ("bytes", "UINT8", vec![2], vec![9, 200]),
        ]
    }

    #[test]
    fn binary_requests() {
        let (body, n) = binary_request(&binary_inputs(), "");
        let parsed = parse_infer(&body, Some(n), &text(), &Limits::default(), 1 << 20).unwrap();
        let t = &parsed.inputs;
        assert_eq!(t["x"], HostTensor::new(vec![2, 2], Values::Float32(vec![0.5, -1.0, 2.0, 3.25])));
        assert_eq!(t["ids"].values, Values::Int64(vec![7, 99]));
        assert_eq!(t["mask"].values, Values::Bool(vec![true, false]));
        assert_eq!(t["half"].values, Values::Float16(vec![0x3c00, 0x4000]));
        assert_eq!(t["small"].values, Values::Int32(vec![-1, 1]));
        assert_eq!(t["bytes"].values, Values::Uint8(vec![9, 200]));

        // Binary and JSON inputs mix; FP64 binary is narrowed.
        let mut inputs = binary_inputs();
        inputs[0] =
            ("x", "FP64", vec![2, 2], [0.5f64, 1.0, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect());
        let (body, n) = binary_request(&inputs, "");
        let parsed = parse_infer(&body, Some(n), &text(), &Limits::default(), 1 << 20).unwrap();
        assert_eq!(parsed.inputs["x"].values, Values::Float32(vec![0.5, 1.0, 2.0, 3.0]));

        let refuse = |body: &[u8], n: Option<usize>, needle: &str| {
            let err = parse_infer(body, n, &text(), &Limits::default(), 1 << 20).unwrap_err();
            assert!(err.to_string().contains(needle), "`{needle}` not in: {err}");
            err.code()
        };
        let (body, n) = binary_request(&binary_inputs(), "");
        assert_eq!(refuse(&body, Some(body.len() + 1), "but the body holds only"), "malformed_request");
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(refuse(&longer, Some(n), "1 bytes of binary data follow"), "malformed_request");
        assert_eq!(
            refuse(&body[..body.len() - 1], Some(n), "`bytes` has binary_data_size 2, but only 1"),
            "malformed_request"
        );
        assert_eq!(refuse(&body, None, "malformed request"), "malformed_request");

        let mut inputs = binary_inputs();
        inputs[0].3.pop();
        let (body, n) = binary_request(&inputs, "");
        assert_eq!(
            refuse(&body, Some(n), "`x` has binary_data_size 15, not a whole number of FP32"),
            "malformed_request"
        );
        let mut inputs = binary_inputs();
        inputs[0].3.truncate(12);
        let (body, n) = binary_request(&inputs, "");
        assert_eq!(
            refuse(&body, Some(n), "`x` has dims [2, 2] = 4 elements, but its data holds 3"),
            "wrong_element_count"
        );
        let mut inputs = binary_inputs();
        inputs[2].3 = vec![1, 2];
        let (body, n) = binary_request(&inputs, "");
        assert_eq!(refuse(&body, Some(n), "`mask`: data[1] is the byte 2"), "wrong_datatype");
        let mut inputs = binary_inputs();
        inputs[0].3 = Values::Float32(vec![0.0, f32::NAN, 0.0, 0.0]).to_le_bytes();
        let (body, n) = binary_request(&inputs, "");
        assert_eq!(refuse(&body, Some(n), "`x`: element 1 is NaN"), "non_finite");
    }

    #[test]
    fn outputs_selection() {
        let with = |extra: &str| {
            let (body, n) = binary_request(&binary_inputs(), extra);
            parse_infer(&body, Some(n), &text(), &Limits::default(), 1 << 20).unwrap().outputs
        };
        let out = |name: &str, binary: bool| RequestedOutput { name: name.into(), binary };
        assert_eq!(with(""), [out("y", false), out("cls", false), out("ok", false)]);
        assert_eq!(with(r#","outputs":[]"#), [out("y", false), out("cls", false), out("ok", false)]);
        assert_eq!(
            with(r#","parameters":{"binary_data_output":true}"#),
            [out("y", true), out("cls", true), out("ok", true)]
        );
        assert_eq!(
            with(r#","outputs":[{"name":"ok"},{"name":"y","parameters":{"binary_data":true}}]"#),
            [out("ok", false), out("y", true)]
        );
        assert_eq!(
            with(
                r#","outputs":[{"name":"cls","parameters":{"binary_data":false}},{"name":"y"}],"parameters":{"binary_data_output":true}"#
            ),
            [out("cls", false), out("y", true)]
        );
    }

    fn fetches() -> TensorMap {
        let mut m = TensorMap::new();
        m.insert("y".into(), HostTensor::new(vec![2, 2], Values::Float32(vec![0.1, 2.0, -0.5, 1e-7])));
        m.insert("cls".into(), HostTensor::new(vec![2], Values::Int64(vec![3, -9_007_199_254_740_993])));
        m.insert("ok".into(), HostTensor::new(vec![2], Values::Bool(vec![true, false])));
        m.insert("h".into(), HostTensor::new(vec![1], Values::Float16(vec![0x3e00])));
        m.insert("u".into(), HostTensor::new(vec![2], Values::Uint8(vec![1, 255])));
        m
    }

    #[test]
    fn json_responses() {
        let outputs: Vec<RequestedOutput> = ["cls", "y", "ok", "h", "u"]
            .into_iter()
            .map(|n| RequestedOutput { name: n.into(), binary: false })
            .collect();
        let response = infer_response("m", "1.0.0", Some("r1"), &outputs, &fetches()).unwrap();
        assert_eq!(response.header_length, None);
        let text = String::from_utf8(response.body).unwrap();
        assert!(text.contains("[0.1,2.0,-0.5,1e-7]"), "f32 written short: {text}");
        assert!(text.contains("-9007199254740993"), "exact int64: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["model_name"], "m");
        assert_eq!(v["model_version"], "1.0.0");
        assert_eq!(v["id"], "r1");
        assert_eq!(
            v["outputs"][0],
            json!({"name":"cls","datatype":"INT64","shape":[2],"data":[3,-9_007_199_254_740_993i64]})
        );
        assert_eq!(v["outputs"][1]["datatype"], "FP32");
        assert_eq!(v["outputs"][1]["shape"], json!([2, 2]));
        assert_eq!(v["outputs"][2]["data"], json!([true, false]));
        assert_eq!(v["outputs"][3], json!({"name":"h","datatype":"FP16","shape":[1],"data":[1.5]}));
        assert_eq!(v["outputs"][4]["data"], json!([1, 255]));

        let none = infer_response("m", "1", None, &outputs[..1], &fetches()).unwrap();
        assert!(!String::from_utf8(none.body).unwrap().contains("\"id\""));
        let missing = [RequestedOutput { name: "nope".into(), binary: false }];
        assert!(infer_response("m", "1", None, &missing, &fetches()).unwrap_err().contains("`nope`"));
    }

    #[test]
    fn binary_responses() {
        let outputs = [
            RequestedOutput { name: "y".into(), binary: true },
            RequestedOutput { name: "cls".into(), binary: false },
            RequestedOutput { name: "ok".into(), binary: true },
            RequestedOutput { name: "h".into(), binary: true },
        ];
        let response = infer_response("m", "1", None, &outputs, &fetches()).unwrap();
        let n = response.header_length.unwrap();
        let header: Value = serde_json::from_slice(&response.body[..n]).unwrap();
        assert_eq!(
            header["outputs"][0],
            json!({"name":"y","datatype":"FP32","shape":[2,2],"parameters":{"binary_data_size":16}})
        );
        assert_eq!(header["outputs"][1]["data"], json!([3, -9_007_199_254_740_993i64]));
        assert_eq!(header["outputs"][2]["parameters"]["binary_data_size"], 2);
        assert_eq!(header["outputs"][3]["parameters"]["binary_data_size"], 2);
        let blobs = &response.body[n..];
        assert_eq!(blobs.len(), 16 + 2 + 2);
        assert_eq!(Values::from_le_bytes(DType::Float32, &blobs[..16]), Some(fetches()["y"].values.clone()));
        assert_eq!(&blobs[16..18], &[1, 0]);
        assert_eq!(&blobs[18..], &0x3e00u16.to_le_bytes());
    }

    #[test]
    fn metadata_states_shapes_and_limits() {
        let limits = Limits { max_batch: 16, max_elements: 1000 };
        let meta = model_metadata("t", &["1.0.0".into()], &text(), &limits, &EndpointLimits::default());
        assert_eq!(meta["platform"], "brasa");
        assert_eq!(meta["versions"], json!(["1.0.0"]));
        assert_eq!(meta["inputs"][0], json!({"name":"x","datatype":"FP32","shape":[-1,2]}));
        assert_eq!(meta["inputs"][1], json!({"name":"ids","datatype":"INT64","shape":[-1,-1]}));
        assert_eq!(meta["inputs"][3]["datatype"], "FP16");
        assert_eq!(meta["outputs"][2], json!({"name":"ok","datatype":"BOOL","shape":[-1]}));
        assert_eq!(
            meta["parameters"],
            json!({"max_batch":16,"max_elements":1000,"dims":{"seq":{"min":1,"max":8}}})
        );
        let endpoint = EndpointLimits { max_body_bytes: Some(8 << 20), max_queue_rows: Some(64) };
        let meta = model_metadata("mnist", &[], &mnist(), &limits, &endpoint);
        assert_eq!(meta["inputs"][0]["shape"], json!([-1, 1, 28, 28]));
        assert_eq!(
            meta["parameters"],
            json!({"max_batch":16,"max_elements":1000,"max_body_bytes":8388608,"max_queue_rows":64,"dims":{}})
        );
    }

    /// A text endpoint's signature: strings in (at most 16 bytes each), vectors out.
    fn sentences() -> Signature {
        Signature::new(
            vec![TensorSpec::new("text", DType::String, vec![Dim::Batch]).max_bytes(16)],
            vec![TensorSpec::new("embeddings", DType::Float32, vec![Dim::Batch, Dim::Fixed(3)])],
        )
    }

    fn parse_sentences(body: &[u8], n: Option<usize>) -> Result<ParsedInfer, RequestError> {
        parse_infer(body, n, &sentences(), &Limits { max_batch: 4, ..Limits::default() }, 1 << 20)
    }

    /// Strings as tritonclient sends a `np.object_` array with `binary_data=True`.
    fn bytes_blob(texts: &[&[u8]]) -> Vec<u8> {
        texts
            .iter()
            .flat_map(|t| (t.len() as u32).to_le_bytes().into_iter().chain(t.iter().copied()))
            .collect()
    }

    #[test]
    fn bytes_inputs_in_json_and_binary() {
        let want = Values::String(vec!["A man eats.".into(), String::new(), "日本 🎉".into()]);
        let json = r#"{"inputs":[{"name":"text","shape":[3],"datatype":"BYTES","data":["A man eats.","","日本 🎉"]}]}"#;
        let parsed = parse_sentences(json.as_bytes(), None).unwrap();
        assert_eq!(parsed.batch, Some(3));
        assert_eq!(parsed.inputs["text"], HostTensor::new(vec![3], want.clone()));
        // Nested as [3, 1] is still one string per element, and [3, 1] is not the shape.
        let nested = json
            .replace(r#""shape":[3]"#, r#""shape":[3,1]"#)
            .replace(r#"["A man eats.","","日本 🎉"]"#, r#"[["A man eats."],[""],["日本 🎉"]]"#);
        assert_eq!(parse_sentences(nested.as_bytes(), None).unwrap_err().code(), "wrong_shape");

        let blob = bytes_blob(&[b"A man eats.", b"", "日本 🎉".as_bytes()]);
        assert_eq!(blob, want.to_le_bytes());
        let (body, n) = binary_request(&[("text", "BYTES", vec![3], blob.clone())], "");
        let parsed = parse_sentences(&body, Some(n)).unwrap();
        assert_eq!(parsed.inputs["text"].values, want);

        // Metadata says BYTES and the byte limit.
        let meta = model_metadata("m", &[], &sentences(), &Limits::default(), &EndpointLimits::default());
        assert_eq!(meta["inputs"][0], json!({"name":"text","datatype":"BYTES","shape":[-1]}));
        assert_eq!(meta["parameters"]["max_bytes"], json!({"text": 16}));
        // A string output goes back as JSON strings or in the same binary layout.
        let mut fetches = TensorMap::new();
        fetches.insert("text".into(), HostTensor::new(vec![3], want.clone()));
        let out = |binary| [RequestedOutput { name: "text".into(), binary }];
        let response = infer_response("m", "1", None, &out(false), &fetches).unwrap();
        let v: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            v["outputs"][0],
            json!({"name":"text","datatype":"BYTES","shape":[3],"data":["A man eats.","","日本 🎉"]})
        );
        let response = infer_response("m", "1", None, &out(true), &fetches).unwrap();
        assert_eq!(&response.body[response.header_length.unwrap()..], blob.as_slice());
    }

    #[test]
    fn bad_bytes_inputs_are_refused_naming_the_input() {
        let json = |shape: &str, data: &str| {
            format!(r#"{{"inputs":[{{"name":"text","shape":{shape},"datatype":"BYTES","data":{data}}}]}}"#)
        };
        let cases: Vec<(String, &str, &str)> = vec![
            (json("[2]", r#"["a",3]"#), "wrong_datatype", "`text`: data[1] is 3; BYTES data must be strings"),
            (json("[1]", "[null]"), "wrong_datatype", "`text`: data[0] is null"),
            (
                json("[2]", r#"["a"]"#),
                "wrong_element_count",
                "`text` has dims [2] = 2 elements, but its data holds 1",
            ),
            (
                json("[5]", r#"["a","b","c","d","e"]"#),
                "batch_too_large",
                "batch of 5 items exceeds the limit of 4",
            ),
            (
                json("[2]", r#"["short","seventeen bytes.."]"#),
                "out_of_range",
                "`text`: element 1 is 17 bytes of UTF-8; the limit is 16",
            ),
            (json("[0]", "[]"), "wrong_shape", "at least one item"),
            (
                json("[1]", r#"["a"]"#).replace("BYTES", "FP32"),
                "wrong_datatype",
                "`text` has datatype FP32; the model takes BYTES",
            ),
        ];
        for (body, code, needle) in cases {
            let err = parse_sentences(body.as_bytes(), None).unwrap_err();
            assert_eq!((err.code(), err.status()), (code, 400), "{body}: {err}");
            assert!(err.to_string().contains(needle), "`{needle}` not in: {err}");
        }
        // 16 bytes of multi-byte UTF-8 fit; a 17th byte does not.
        assert!(
            parse_sentences(
                json("[1]", r#"["ééééééééé"]"#).replace("ééééééééé", "éééééééé").as_bytes(),
                None
            )
            .is_ok()
        );

        let binary = |blob: Vec<u8>| {
            let (body, n) = binary_request(&[("text", "BYTES", vec![2], blob)], "");
            parse_sentences(&body, Some(n)).unwrap_err()
        };
        let err = binary(bytes_blob(&[b"ok", b"\xff\xfe"]));
        assert_eq!(err.code(), "wrong_datatype");
        assert!(err.to_string().contains("`text`: its binary BYTES data is not length-prefixed UTF-8 text: element 1 is not valid UTF-8"), "{err}");
        let mut past = bytes_blob(&[b"ok"]);
        past.extend_from_slice(&[40, 0, 0, 0, b'x']);
        let err = binary(past);
        assert_eq!(err.code(), "malformed_request");
        assert!(
            err.to_string().contains("`text`")
                && err.to_string().contains("element 1 says it is 40 bytes long, but only 1"),
            "{err}"
        );
        let mut short = bytes_blob(&[b"ok"]);
        short.extend_from_slice(&[1, 0]);
        let err = binary(short);
        assert!(
            err.to_string()
                .contains("element 1's 4-byte length prefix starts at byte 6, but only 2 bytes remain"),
            "{err}"
        );
        assert_eq!(binary(bytes_blob(&[b"ok", b"seventeen bytes.."])).code(), "out_of_range");
        assert_eq!(binary(bytes_blob(&[b"ok"])).code(), "wrong_element_count");
        // A numeric input never takes strings.
        let (body, n) =
            binary_request(&[("x", "BYTES", vec![2, 2], bytes_blob(&[b"1", b"2", b"3", b"4"]))], "");
        let err = parse_infer(&body, Some(n), &text(), &Limits::default(), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("`x` has datatype BYTES; the model takes FP32"), "{err}");
    }

    /// Arbitrary JSON, biased toward request-like shapes.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z_]{0,8}".prop_map(Value::String),
            prop_oneof![Just("x"), Just("ids"), Just("FP32"), Just("BOOL"), Just("binary_data_size")]
                .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("inputs"),
                            Just("outputs"),
                            Just("name"),
                            Just("shape"),
                            Just("datatype"),
                            Just("data"),
                            Just("parameters"),
                            Just("binary_data_size"),
                            Just("binary_data_output"),
                            Just("id"),
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512), n in prop::option::of(0usize..600)) {
            let _ = parse_infer(&body, n, &text(), &Limits::default(), 1 << 20);
        }

        #[test]
        fn never_panics_on_json(value in json_value(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut body = serde_json::to_vec(&value).unwrap();
            let n = body.len();
            let _ = parse_infer(&body, None, &text(), &Limits::default(), 1 << 20);
            body.extend_from_slice(&tail);
            let _ = parse_infer(&body, Some(n), &text(), &Limits::default(), 1 << 20);
        }

        /// Any strings go through the binary BYTES layout and back unchanged; any bytes parse
        /// or are refused, never panic.
        #[test]
        fn bytes_round_trip(texts in prop::collection::vec(".{0,12}", 1..4), junk in prop::collection::vec(any::<u8>(), 0..40)) {
            let blob = Values::String(texts.clone()).to_le_bytes();
            let (body, n) = binary_request(&[("text", "BYTES", vec![texts.len()], blob)], "");
            let parsed = parse_infer(&body, Some(n), &sentences(), &Limits::default(), 1 << 20);
            let fits = texts.iter().all(|t| t.len() <= 16);
            prop_assert_eq!(parsed.is_ok(), fits);
            if fits {
                prop_assert_eq!(&parsed.unwrap().inputs["text"].values, &Values::String(texts));
            }
            let (body, n) = binary_request(&[("text", "BYTES", vec![1], junk)], "");
            let _ = parse_infer(&body, Some(n), &sentences(), &Limits::default(), 1 << 20);
        }

        /// Every tensor a request can carry comes back in the response as it went in.
        #[test]
        fn binary_round_trip(x in prop::collection::vec(-1e30f32..1e30, 4), ids in prop::collection::vec(0i64..100, 2)) {
            let mut inputs = binary_inputs();
            inputs[0].3 = Values::Float32(x.clone()).to_le_bytes();
            inputs[1].3 = Values::Int64(ids.clone()).to_le_bytes();
            let (body, n) = binary_request(&inputs, r#","parameters":{"binary_data_output":true}"#);
            let parsed = parse_infer(&body, Some(n), &text(), &Limits::default(), 1 << 20).unwrap();
            let mut fetches = TensorMap::new();
            fetches.insert("y".into(), parsed.inputs["x"].clone());
            fetches.insert("cls".into(), HostTensor::new(vec![2], parsed.inputs["ids"].values.clone()));
            fetches.insert("ok".into(), HostTensor::new(vec![2], parsed.inputs["mask"].values.clone()));
            let response = infer_response("m", "1", None, &parsed.outputs, &fetches).unwrap();
            let h = response.header_length.unwrap();
            let blobs = &response.body[h..];
            prop_assert_eq!(Values::from_le_bytes(DType::Float32, &blobs[..16]), Some(Values::Float32(x)));
            prop_assert_eq!(Values::from_le_bytes(DType::Int64, &blobs[16..32]), Some(Values::Int64(ids)));
            prop_assert_eq!(&blobs[32..], &[1u8, 0][..]);
        }
    }
}
