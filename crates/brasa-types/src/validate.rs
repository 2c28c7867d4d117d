use std::collections::BTreeMap;

use crate::dim::Dim;
use crate::dtype::DType;
use crate::error::ErrorCode;
use crate::signature::{Signature, TensorSpec};
use crate::tensor::{HostTensor, TensorMap, Values};

/// Bounds on one call, whatever the signature allows: they bound the memory a call can claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most items in the batch dimension.
    pub max_batch: usize,
    /// Most elements over all feeds of one call.
    pub max_elements: usize,
}

impl Default for Limits {
    /// 1024 items; 2^26 elements (256 MiB of f32) per call.
    fn default() -> Self {
        Limits { max_batch: 1024, max_elements: 1 << 26 }
    }
}

/// What validation found the variable dimensions to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The batch size, when the signature has a batch.
    pub batch: Option<usize>,
    /// The size of every named dynamic dimension.
    pub dims: BTreeMap<String, usize>,
}

/// Why feeds (or a model's fetches) do not fit a signature. Every variant names the tensor,
/// and where it applies the axis; [`TensorError::code`] is `invalid_input` for all of them,
/// [`TensorError::kserve_code`] the finer code the HTTP layer sends.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// A required input is absent.
    #[error("missing input `{name}` ({dtype} {dims}); the model takes {expected}")]
    MissingInput {
        /// The input.
        name: String,
        /// Its dtype.
        dtype: DType,
        /// Its dims, as text.
        dims: String,
        /// Every input name.
        expected: String,
    },
    /// A feed the model has no input for.
    #[error("unknown input `{name}`; the model takes {expected}")]
    UnknownInput {
        /// As given.
        name: String,
        /// Every input name.
        expected: String,
    },
    /// The wrong element type.
    #[error("input `{name}` is {got}; the model takes {want}")]
    WrongDtype {
        /// The tensor.
        name: String,
        /// As given.
        got: DType,
        /// As declared.
        want: DType,
    },
    /// The wrong number of dimensions.
    #[error("input `{name}` has dims {got:?} (rank {}); the model takes {want} (rank {rank})", got.len())]
    WrongRank {
        /// The tensor.
        name: String,
        /// As given.
        got: Vec<usize>,
        /// As declared, as text.
        want: String,
        /// Declared rank.
        rank: usize,
    },
    /// One dimension does not fit.
    #[error(
        "input `{name}` has dims {got:?}: dimension {axis} is {size}, but {reason}; the model takes {want}"
    )]
    WrongDim {
        /// The tensor.
        name: String,
        /// As given.
        got: Vec<usize>,
        /// The axis.
        axis: usize,
        /// Its size as given.
        size: usize,
        /// What it should be.
        reason: String,
        /// As declared, as text.
        want: String,
    },
    /// The data length does not match the dims.
    #[error("input `{name}` has dims {dims:?} = {want} elements, but its data holds {got}")]
    WrongElementCount {
        /// The tensor.
        name: String,
        /// As given.
        dims: Vec<usize>,
        /// Product of the dims.
        want: usize,
        /// Elements in the data.
        got: usize,
    },
    /// A NaN or infinite float.
    #[error("input `{name}`: element {index} is {value}; inputs must be finite numbers")]
    NonFinite {
        /// The tensor.
        name: String,
        /// Flat index.
        index: usize,
        /// As text.
        value: String,
    },
    /// A value outside the declared range.
    #[error("input `{name}`: element {index} is {value}, outside the declared range [{min}, {max}]")]
    OutOfRange {
        /// The tensor.
        name: String,
        /// Flat index.
        index: usize,
        /// The value.
        value: f64,
        /// Declared minimum.
        min: f64,
        /// Declared maximum.
        max: f64,
    },
    /// A string element longer than its spec's `max_bytes`.
    #[error(
        "input `{name}`: element {index} is {bytes} bytes of UTF-8; the limit is {max} bytes per element"
    )]
    TooLong {
        /// The tensor.
        name: String,
        /// Flat index.
        index: usize,
        /// Its UTF-8 length.
        bytes: usize,
        /// The spec's `max_bytes`.
        max: usize,
    },
    /// More items than one call takes.
    #[error("batch of {batch} items exceeds the limit of {max} per call; split it")]
    BatchTooLarge {
        /// Items given.
        batch: usize,
        /// The limit.
        max: usize,
    },
    /// More elements than one call takes.
    #[error("the feeds hold {elements} elements; one call takes at most {max}")]
    TooManyElements {
        /// Elements given.
        elements: usize,
        /// The limit.
        max: usize,
    },
    /// The model produced a NaN or infinity (usually from extreme inputs).
    #[error(
        "output `{name}`: element {index} is {value}; the model's result is not finite (inputs out of the range it was trained on?)"
    )]
    NonFiniteOutput {
        /// The output.
        name: String,
        /// Flat index.
        index: usize,
        /// As text.
        value: String,
    },
    /// The model's output does not match its own signature (a bug in the model crate).
    #[error("output `{name}`: {detail}")]
    BadOutput {
        /// The output.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

impl TensorError {
    /// The error's stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            TensorError::BadOutput { .. } => ErrorCode::Execution,
            _ => ErrorCode::InvalidInput,
        }
    }

    /// The KServe-level code an HTTP endpoint sends (400 for all but `BadOutput`).
    pub fn kserve_code(&self) -> &'static str {
        match self {
            TensorError::MissingInput { .. } | TensorError::UnknownInput { .. } => "unknown_input",
            TensorError::WrongDtype { .. } => "wrong_datatype",
            TensorError::WrongRank { .. } | TensorError::WrongDim { .. } => "wrong_shape",
            TensorError::WrongElementCount { .. } => "wrong_element_count",
            TensorError::NonFinite { .. } | TensorError::NonFiniteOutput { .. } => "non_finite",
            TensorError::OutOfRange { .. } | TensorError::TooLong { .. } => "out_of_range",
            TensorError::BatchTooLarge { .. } | TensorError::TooManyElements { .. } => "batch_too_large",
            TensorError::BadOutput { .. } => "execution",
        }
    }
}

impl Signature {
    fn input_names(&self) -> String {
        let names: Vec<String> = self.inputs.iter().map(|t| format!("`{}`", t.name)).collect();
        names.join(", ")
    }

    /// Check feeds against the inputs, before any model code sees them: every input present
    /// and no other; per feed its dtype (the other float width is accepted), rank, each
    /// dimension (fixed size; the batch, equal across feeds and within `limits`; named
    /// dimensions, equal across feeds and within their bounds), element count, finite
    /// floats, declared ranges, strings within `max_bytes`; and the total size within
    /// `limits` (a string is one element). Returns the variable
    /// dimensions' sizes.
    pub fn validate_inputs(&self, feeds: &TensorMap, limits: &Limits) -> Result<Resolved, TensorError> {
        if let Some(name) = feeds.keys().find(|name| self.input(name).is_none()) {
            return Err(TensorError::UnknownInput { name: name.clone(), expected: self.input_names() });
        }
        let mut resolved = Resolved::default();
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        let mut elements = 0usize;
        for spec in &self.inputs {
            let tensor = feeds.get(&spec.name).ok_or_else(|| TensorError::MissingInput {
                name: spec.name.clone(),
                dtype: spec.dtype,
                dims: spec.dims_text(),
                expected: self.input_names(),
            })?;
            if !spec.dtype.accepts(tensor.dtype()) {
                return Err(TensorError::WrongDtype {
                    name: spec.name.clone(),
                    got: tensor.dtype(),
                    want: spec.dtype,
                });
            }
            check_dims(spec, tensor, limits, &mut resolved, &mut origin)?;
            let want = tensor.element_count().unwrap_or(usize::MAX);
            if want != tensor.values.len() {
                return Err(TensorError::WrongElementCount {
                    name: spec.name.clone(),
                    dims: tensor.dims.clone(),
                    want,
                    got: tensor.values.len(),
                });
            }
            elements = elements.saturating_add(want);
            if elements > limits.max_elements {
                return Err(TensorError::TooManyElements { elements, max: limits.max_elements });
            }
            if let Some((index, value)) = tensor.values.first_non_finite() {
                return Err(TensorError::NonFinite { name: spec.name.clone(), index, value });
            }
            if let Some([min, max]) = spec.range
                && let Some((index, value)) = tensor.values.first_outside(min, max)
            {
                return Err(TensorError::OutOfRange { name: spec.name.clone(), index, value, min, max });
            }
            if let (Some(max), Values::String(texts)) = (spec.max_bytes, &tensor.values)
                && let Some(index) = texts.iter().position(|t| t.len() > max)
            {
                return Err(TensorError::TooLong {
                    name: spec.name.clone(),
                    index,
                    bytes: texts[index].len(),
                    max,
                });
            }
        }
        Ok(resolved)
    }

    /// Check a model's fetches against the outputs, given what the inputs resolved: every
    /// output present in its declared dtype and dims (a dimension named by the inputs must
    /// have their size; one only outputs name is free), and every float finite.
    pub fn validate_outputs(&self, fetches: &TensorMap, resolved: &Resolved) -> Result<(), TensorError> {
        let mut resolved = resolved.clone();
        for spec in &self.outputs {
            let bad = |detail: String| TensorError::BadOutput { name: spec.name.clone(), detail };
            let tensor = fetches.get(&spec.name).ok_or_else(|| bad("the model did not produce it".into()))?;
            if tensor.dtype() != spec.dtype {
                return Err(bad(format!("is {}, the signature says {}", tensor.dtype(), spec.dtype)));
            }
            if tensor.dims.len() != spec.dims.len() {
                return Err(bad(format!(
                    "has dims {:?}, the signature says {}",
                    tensor.dims,
                    spec.dims_text()
                )));
            }
            for (axis, (dim, &size)) in spec.dims.iter().zip(&tensor.dims).enumerate() {
                let expected = match dim {
                    Dim::Fixed(n) => Some(*n),
                    Dim::Batch => resolved.batch,
                    Dim::Dynamic { name, .. } => resolved.dims.get(name).copied(),
                };
                match (expected, dim) {
                    (Some(n), _) if n != size => {
                        return Err(bad(format!(
                            "dimension {axis} ({dim}) is {size}, expected {n}; dims {:?}",
                            tensor.dims
                        )));
                    }
                    (None, Dim::Dynamic { name, .. }) => {
                        resolved.dims.insert(name.clone(), size);
                    }
                    (None, Dim::Batch) => resolved.batch = Some(size),
                    _ => {}
                }
            }
            if tensor.element_count() != Some(tensor.values.len()) {
                return Err(bad(format!("dims {:?} but {} elements", tensor.dims, tensor.values.len())));
            }
            if let Some((index, value)) = tensor.values.first_non_finite() {
                return Err(TensorError::NonFiniteOutput { name: spec.name.clone(), index, value });
            }
        }
        Ok(())
    }
}

fn check_dims(
    spec: &TensorSpec,
    tensor: &HostTensor,
    limits: &Limits,
    resolved: &mut Resolved,
    origin: &mut BTreeMap<String, String>,
) -> Result<(), TensorError> {
    if tensor.dims.len() != spec.dims.len() {
        return Err(TensorError::WrongRank {
            name: spec.name.clone(),
            got: tensor.dims.clone(),
            want: spec.dims_text(),
            rank: spec.dims.len(),
        });
    }
    for (axis, (dim, &size)) in spec.dims.iter().zip(&tensor.dims).enumerate() {
        let wrong = |reason: String| TensorError::WrongDim {
            name: spec.name.clone(),
            got: tensor.dims.clone(),
            axis,
            size,
            reason,
            want: spec.dims_text(),
        };
        match dim {
            Dim::Fixed(n) => {
                if size != *n {
                    return Err(wrong(format!("it must be {n}")));
                }
            }
            Dim::Batch => {
                if size == 0 {
                    return Err(wrong("the batch must hold at least one item".into()));
                }
                if size > limits.max_batch {
                    return Err(TensorError::BatchTooLarge { batch: size, max: limits.max_batch });
                }
                match resolved.batch {
                    Some(b) if b != size => {
                        let first = origin.get("batch").cloned().unwrap_or_default();
                        return Err(wrong(format!("the batch is {b} in `{first}`")));
                    }
                    _ => {
                        resolved.batch = Some(size);
                        origin.entry("batch".into()).or_insert_with(|| spec.name.clone());
                    }
                }
            }
            Dim::Dynamic { name, min, max } => {
                if size == 0 && min.is_none() {
                    return Err(wrong(format!("`{name}` must be at least 1")));
                }
                if let Some(lo) = min
                    && size < *lo
                {
                    return Err(wrong(format!("`{name}` must be at least {lo}")));
                }
                if let Some(hi) = max
                    && size > *hi
                {
                    return Err(wrong(format!("`{name}` must be at most {hi}")));
                }
                match resolved.dims.get(name) {
                    Some(&n) if n != size => {
                        let first = origin.get(name).cloned().unwrap_or_default();
                        return Err(wrong(format!("`{name}` is {n} in `{first}`")));
                    }
                    _ => {
                        resolved.dims.insert(name.clone(), size);
                        origin.entry(name.clone()).or_insert_with(|| spec.name.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec::new(
                    "x",
                    DType::Float32,
                    vec![Dim::Batch, Dim::bounded("seq", 1, 64), Dim::Fixed(4)],
                ),
                TensorSpec::new("ids", DType::Int64, vec![Dim::Batch, Dim::Fixed(3)]).range(0.0, 9.0),
                TensorSpec::new("mask", DType::Bool, vec![Dim::Batch, Dim::dynamic("seq")]),
            ],
            outputs: vec![
                TensorSpec::new("y", DType::Float32, vec![Dim::Batch, Dim::Fixed(6)]),
                TensorSpec::new("cls", DType::Int64, vec![Dim::Batch]),
            ],
        }
    }

    fn feeds(batch: usize, seq: usize) -> TensorMap {
        let mut m = TensorMap::new();
        m.insert(
            "x".into(),
            HostTensor::new(vec![batch, seq, 4], Values::Float32(vec![0.5; batch * seq * 4])),
        );
        m.insert("ids".into(), HostTensor::new(vec![batch, 3], Values::Int64(vec![1; batch * 3])));
        m.insert("mask".into(), HostTensor::new(vec![batch, seq], Values::Bool(vec![true; batch * seq])));
        m
    }

    #[test]
    fn accepts_and_resolves() {
        let r = sig().validate_inputs(&feeds(2, 5), &Limits::default()).unwrap();
        assert_eq!(r.batch, Some(2));
        assert_eq!(r.dims.get("seq"), Some(&5));
    }

    #[test]
    fn names_tensor_and_axis() {
        let limits = Limits::default();
        let s = sig();
        let mut f = feeds(2, 5);
        f.remove("ids");
        assert!(
            matches!(s.validate_inputs(&f, &limits), Err(TensorError::MissingInput { name, .. }) if name == "ids")
        );

        let mut f = feeds(2, 5);
        f.insert("extra".into(), HostTensor::new(vec![1], Values::Uint8(vec![0])));
        assert!(matches!(s.validate_inputs(&f, &limits), Err(TensorError::UnknownInput { .. })));

        let mut f = feeds(2, 5);
        f.insert("ids".into(), HostTensor::new(vec![2, 3], Values::Int32(vec![1; 6])));
        assert_eq!(
            s.validate_inputs(&f, &limits).unwrap_err(),
            TensorError::WrongDtype { name: "ids".into(), got: DType::Int32, want: DType::Int64 }
        );

        // NHWC sent to an NCHW-like layout: the fixed last axis catches it.
        let mut f = feeds(2, 5);
        f.insert("x".into(), HostTensor::new(vec![2, 4, 5], Values::Float32(vec![0.0; 40])));
        let err = s.validate_inputs(&f, &limits).unwrap_err();
        assert!(matches!(err, TensorError::WrongDim { axis: 2, size: 5, .. }), "{err}");
        assert!(err.to_string().contains("dimension 2 is 5, but it must be 4"), "{err}");

        // A named dimension disagreeing between feeds.
        let mut f = feeds(2, 5);
        f.insert("mask".into(), HostTensor::new(vec![2, 6], Values::Bool(vec![true; 12])));
        let err = s.validate_inputs(&f, &limits).unwrap_err();
        assert!(err.to_string().contains("`seq` is 5 in `x`"), "{err}");

        // The batch disagreeing.
        let mut f = feeds(2, 5);
        f.insert("ids".into(), HostTensor::new(vec![3, 3], Values::Int64(vec![1; 9])));
        assert!(s.validate_inputs(&f, &limits).unwrap_err().to_string().contains("the batch is 2 in `x`"));

        // Bounds.
        let err = s.validate_inputs(&feeds(1, 65), &limits).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
        let err = s.validate_inputs(&feeds(0, 5), &limits).unwrap_err();
        assert!(err.to_string().contains("at least one item"), "{err}");
        let small = Limits { max_batch: 1, ..limits };
        assert!(matches!(s.validate_inputs(&feeds(2, 5), &small), Err(TensorError::BatchTooLarge { .. })));
        let tiny = Limits { max_elements: 10, ..limits };
        assert!(matches!(s.validate_inputs(&feeds(2, 5), &tiny), Err(TensorError::TooManyElements { .. })));

        // Element count, finiteness, range.
        let mut f = feeds(1, 2);
        f.insert("x".into(), HostTensor::new(vec![1, 2, 4], Values::Float32(vec![0.0; 7])));
        assert!(matches!(
            s.validate_inputs(&f, &limits),
            Err(TensorError::WrongElementCount { want: 8, got: 7, .. })
        ));
        let mut f = feeds(1, 2);
        let mut x = vec![0.0f32; 8];
        x[3] = f32::INFINITY;
        f.insert("x".into(), HostTensor::new(vec![1, 2, 4], Values::Float32(x)));
        assert!(matches!(s.validate_inputs(&f, &limits), Err(TensorError::NonFinite { index: 3, .. })));
        let mut f = feeds(1, 2);
        f.insert("ids".into(), HostTensor::new(vec![1, 3], Values::Int64(vec![1, 10, 2])));
        assert!(matches!(s.validate_inputs(&f, &limits), Err(TensorError::OutOfRange { index: 1, .. })));

        // float16 is accepted for float32.
        let mut f = feeds(1, 2);
        f.insert(
            "x".into(),
            HostTensor::new(vec![1, 2, 4], Values::Float32(vec![1.0; 8]).cast(DType::Float16)),
        );
        assert!(s.validate_inputs(&f, &limits).is_ok());
    }

    #[test]
    fn strings_are_their_own_dtype_with_a_byte_limit() {
        let text = Signature::new(
            vec![TensorSpec::new("text", DType::String, vec![Dim::Batch]).max_bytes(5)],
            vec![TensorSpec::new("y", DType::Float32, vec![Dim::Batch, Dim::Fixed(2)])],
        );
        let feed = |texts: &[&str]| {
            let mut f = TensorMap::new();
            let values = Values::String(texts.iter().map(|t| (*t).to_owned()).collect());
            f.insert("text".into(), HostTensor::new(vec![texts.len()], values));
            f
        };
        let limits = Limits::default();
        assert_eq!(text.validate_inputs(&feed(&["", "héll"]), &limits).unwrap().batch, Some(2));
        let err = text.validate_inputs(&feed(&["ok", "héllo"]), &limits).unwrap_err();
        assert_eq!(err, TensorError::TooLong { name: "text".into(), index: 1, bytes: 6, max: 5 });
        assert_eq!(err.kserve_code(), "out_of_range");
        let small = Limits { max_batch: 1, ..limits };
        assert!(matches!(
            text.validate_inputs(&feed(&["a", "b"]), &small),
            Err(TensorError::BatchTooLarge { .. })
        ));
        // A model that does not declare strings never receives them, nor strings numbers.
        let mut f = feeds(1, 2);
        f.insert("ids".into(), HostTensor::new(vec![1, 3], Values::String(vec!["1".into(); 3])));
        assert!(matches!(
            sig().validate_inputs(&f, &limits),
            Err(TensorError::WrongDtype { got: DType::String, .. })
        ));
        let mut f = TensorMap::new();
        f.insert("text".into(), HostTensor::new(vec![1], Values::Uint8(vec![65])));
        assert!(matches!(
            text.validate_inputs(&f, &limits),
            Err(TensorError::WrongDtype { want: DType::String, .. })
        ));
    }

    #[test]
    fn outputs_are_checked() {
        let s = sig();
        let r = s.validate_inputs(&feeds(2, 5), &Limits::default()).unwrap();
        let mut out = TensorMap::new();
        out.insert("y".into(), HostTensor::new(vec![2, 6], Values::Float32(vec![0.0; 12])));
        out.insert("cls".into(), HostTensor::new(vec![2], Values::Int64(vec![0, 1])));
        assert_eq!(s.validate_outputs(&out, &r), Ok(()));
        out.insert("cls".into(), HostTensor::new(vec![3], Values::Int64(vec![0, 1, 2])));
        assert!(matches!(s.validate_outputs(&out, &r), Err(TensorError::BadOutput { .. })));
        out.insert("cls".into(), HostTensor::new(vec![2], Values::Int64(vec![0, 1])));
        let mut y = vec![0.0; 12];
        y[7] = f32::NAN;
        out.insert("y".into(), HostTensor::new(vec![2, 6], Values::Float32(y)));
        let err = s.validate_outputs(&out, &r).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert!(matches!(err, TensorError::NonFiniteOutput { index: 7, .. }));
    }
}
