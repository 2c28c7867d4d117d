use serde::{Deserialize, Serialize};

use crate::dtype::DType;
use crate::tensor::{HostTensor, TensorMap, Values};

/// A named tensor as JSON: `{ "name", "dtype", "dims", "data": [numbers] }` (booleans as 0/1,
/// float16 as its value). The form of golden checks in manifests, golden files given to
/// `brasa registry publish --golden`, and reference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorJson {
    /// The tensor's name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Every dimension.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<f64>,
}

impl TensorJson {
    /// The host tensor it describes; an error names the tensor when the data does not fit
    /// its dims or dtype (a non-integral integer, a bool other than 0/1, a non-finite
    /// float).
    pub fn to_host(&self) -> Result<HostTensor, String> {
        let want = self.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if want != Some(self.data.len()) {
            return Err(format!(
                "tensor `{}` has dims {:?} but {} values",
                self.name,
                self.dims,
                self.data.len()
            ));
        }
        let bad = |i: usize| {
            format!("tensor `{}`: value {} at {i} is not a {}", self.name, self.data[i], self.dtype)
        };
        let ints = |lo: f64, hi: f64| -> Result<Vec<i64>, String> {
            self.data
                .iter()
                .enumerate()
                .map(
                    |(i, &v)| {
                        if v.fract() == 0.0 && (lo..=hi).contains(&v) { Ok(v as i64) } else { Err(bad(i)) }
                    },
                )
                .collect()
        };
        let values = match self.dtype {
            DType::Float32 | DType::Float16 => {
                if let Some(i) =
                    self.data.iter().position(|v| !v.is_finite() || v.abs() > f64::from(f32::MAX))
                {
                    return Err(bad(i));
                }
                Values::Float32(self.data.iter().map(|&v| v as f32).collect()).cast(self.dtype)
            }
            DType::Int64 => Values::Int64(ints(-9.007_199_254_740_992e15, 9.007_199_254_740_992e15)?),
            DType::Int32 => Values::Int64(ints(f64::from(i32::MIN), f64::from(i32::MAX))?).cast(DType::Int32),
            DType::Uint8 => Values::Int64(ints(0.0, 255.0)?).cast(DType::Uint8),
            DType::Bool => Values::Int64(ints(0.0, 1.0)?).cast(DType::Bool),
            DType::String => {
                return Err(format!("tensor `{}` is string: this JSON form holds numbers only", self.name));
            }
        };
        Ok(HostTensor::new(self.dims.clone(), values))
    }

    /// The JSON form of a host tensor (strings have none: their data comes out NaN, which
    /// [`TensorJson::to_host`] refuses).
    pub fn from_host(name: &str, tensor: &HostTensor) -> TensorJson {
        let data = match &tensor.values {
            Values::Float32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Values::Int64(v) => v.iter().map(|&x| x as f64).collect(),
            other => other.to_f32().into_iter().map(f64::from).collect(),
        };
        TensorJson { name: name.into(), dtype: tensor.dtype(), dims: tensor.dims.clone(), data }
    }

    /// Tensors by name; an error on a bad tensor or a name given twice.
    pub fn to_map(list: &[TensorJson]) -> Result<TensorMap, String> {
        let mut map = TensorMap::new();
        for t in list {
            if map.insert(t.name.clone(), t.to_host()?).is_some() {
                return Err(format!("tensor `{}` is given twice", t.name));
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_misfits() {
        let t = TensorJson { name: "ids".into(), dtype: DType::Int64, dims: vec![2], data: vec![3.0, -1.0] };
        let host = t.to_host().unwrap();
        assert_eq!(host.values, Values::Int64(vec![3, -1]));
        assert_eq!(TensorJson::from_host("ids", &host), t);
        let bad = TensorJson { data: vec![0.5, 1.0], ..t.clone() };
        assert!(bad.to_host().unwrap_err().contains("`ids`"));
        let short = TensorJson { dims: vec![3], ..t.clone() };
        assert!(short.to_host().is_err());
        let b = TensorJson { name: "m".into(), dtype: DType::Bool, dims: vec![2], data: vec![1.0, 2.0] };
        assert!(b.to_host().is_err());
        assert!(TensorJson::to_map(&[t.clone(), t]).is_err());
        let s = TensorJson { name: "s".into(), dtype: DType::String, dims: vec![1], data: vec![1.0] };
        assert!(s.to_host().unwrap_err().contains("`s` is string"));
    }
}
