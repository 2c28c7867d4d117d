use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dim::Dim;
use crate::dtype::DType;

/// One named tensor of a model's signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TensorSpec {
    /// Its name: the key in `run` feeds and fetches, and KServe's tensor name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Every dimension, the batch included when the model has one (always first).
    pub dims: Vec<Dim>,
    /// What the values mean, for people (units, layout, range).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Values outside `[min, max]` are refused before the model runs (inputs) or reported as
    /// a failed run (outputs). Floats are always checked for NaN and infinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
    /// For `string` tensors: the most UTF-8 bytes one element may hold; longer ones are
    /// refused before the model runs (inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
}

impl TensorSpec {
    /// A spec without description or range.
    pub fn new(name: impl Into<String>, dtype: DType, dims: Vec<Dim>) -> Self {
        TensorSpec {
            name: name.into(),
            dtype,
            dims,
            description: String::new(),
            range: None,
            max_bytes: None,
        }
    }

    /// With a description.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// With a value range.
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.range = Some([min, max]);
        self
    }

    /// With a limit on each element's UTF-8 bytes (`string` tensors).
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = Some(max);
        self
    }

    /// The dims as text, e.g. `[batch, 1, 28, 28]`.
    pub fn dims_text(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(ToString::to_string).collect();
        format!("[{}]", dims.join(", "))
    }

    /// Whether its first dimension is the batch.
    pub fn is_batched(&self) -> bool {
        self.dims.first() == Some(&Dim::Batch)
    }
}

/// What a model takes and gives: named, typed tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Signature {
    /// The feeds a run needs, every one of them.
    pub inputs: Vec<TensorSpec>,
    /// The fetches a run returns.
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// A signature of these inputs and outputs.
    pub fn new(inputs: Vec<TensorSpec>, outputs: Vec<TensorSpec>) -> Self {
        Signature { inputs, outputs }
    }

    /// The input named `name`.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// The output named `name`.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }

    /// Whether requests can be batched together: every input and output has the batch as
    /// its first dimension.
    pub fn is_batched(&self) -> bool {
        !self.inputs.is_empty() && self.inputs.iter().chain(&self.outputs).all(TensorSpec::is_batched)
    }

    /// Check the signature itself: at least one input and output, unique non-empty names,
    /// ranges that are ranges (on numbers), byte limits only on strings.
    pub fn check(&self) -> Result<(), String> {
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err("a signature needs at least one input and one output".into());
        }
        for (kind, list) in [("input", &self.inputs), ("output", &self.outputs)] {
            for (i, t) in list.iter().enumerate() {
                if t.name.is_empty() {
                    return Err(format!("{kind} {i} has no name"));
                }
                if list[..i].iter().any(|o| o.name == t.name) {
                    return Err(format!("{kind} `{}` is declared twice", t.name));
                }
                // NaN bounds fail too: partial_cmp gives None.
                if let Some([lo, hi]) = t.range
                    && !matches!(
                        lo.partial_cmp(&hi),
                        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                    )
                {
                    return Err(format!("{kind} `{}`: range [{lo}, {hi}] is empty", t.name));
                }
                let strings = t.dtype == DType::String;
                if strings && t.range.is_some() {
                    return Err(format!(
                        "{kind} `{}` is string: a range bounds numbers (use maxBytes)",
                        t.name
                    ));
                }
                if !strings && t.max_bytes.is_some() {
                    return Err(format!("{kind} `{}` is {}: maxBytes bounds strings only", t.name, t.dtype));
                }
            }
        }
        Ok(())
    }

    /// A stable hash of the signature (sha256 of its canonical JSON, hex): two builds with
    /// the same hash take and give the same tensors. Descriptions count too.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec::new("x", DType::Float32, vec![Dim::Batch, Dim::dynamic("seq"), Dim::Fixed(4)]),
                TensorSpec::new("ids", DType::Int64, vec![Dim::Batch, Dim::Fixed(3)]),
            ],
            outputs: vec![TensorSpec::new("y", DType::Float32, vec![Dim::Batch, Dim::Fixed(6)])],
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let json = serde_json::to_string(&sig()).unwrap();
        assert_eq!(
            json,
            r#"{"inputs":[{"name":"x","dtype":"float32","dims":["batch","seq",4]},{"name":"ids","dtype":"int64","dims":["batch",3]}],"outputs":[{"name":"y","dtype":"float32","dims":["batch",6]}]}"#
        );
        assert_eq!(serde_json::from_str::<Signature>(&json).unwrap(), sig());
        assert_eq!(sig().hash().len(), 64);
        assert!(sig().is_batched());
    }

    #[test]
    fn check_refuses_bad_signatures() {
        assert!(sig().check().is_ok());
        let mut s = sig();
        s.inputs[1].name = "x".into();
        assert!(s.check().unwrap_err().contains("twice"));
        // The batch may sit on any axis (a recurrent state `[layers, batch, hidden]`).
        let mut s = sig();
        s.inputs[0].dims[1] = Dim::Batch;
        assert!(s.check().is_ok());
        let mut s = sig();
        s.outputs.clear();
        assert!(s.check().is_err());
        let mut s = sig();
        s.inputs[1] = TensorSpec::new("text", DType::String, vec![Dim::Batch]).max_bytes(100);
        assert!(s.check().is_ok());
        assert!(
            serde_json::to_string(&s)
                .unwrap()
                .contains(r#""dtype":"string","dims":["batch"],"maxBytes":100"#)
        );
        s.inputs[1].range = Some([0.0, 1.0]);
        assert!(s.check().unwrap_err().contains("use maxBytes"));
        let mut s = sig();
        s.inputs[0].max_bytes = Some(3);
        assert!(s.check().unwrap_err().contains("strings only"));
    }
}
