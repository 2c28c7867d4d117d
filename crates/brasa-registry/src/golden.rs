use serde::Serialize;

use brasa_types::{TensorJson, TensorMap};

use crate::manifest::GoldenCheck;

/// How a model's output on a golden input compares with what the publisher recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GoldenOutcome {
    /// Whether every value is within the tolerance (and finite, and the lengths agree).
    pub passed: bool,
    /// Largest absolute difference (infinite for non-finite output or a length mismatch).
    pub max_abs_diff: f64,
    /// Why it failed, for the event a client emits; empty when it passed.
    pub reason: String,
}

impl GoldenCheck {
    /// The golden feeds, by name.
    pub fn feeds(&self) -> Result<TensorMap, String> {
        TensorJson::to_map(&self.inputs)
    }

    /// Compare a model's `fetches` on [`GoldenCheck::inputs`] with the expected outputs: every
    /// expected output must be present with the same dims, every value within the tolerance.
    pub fn compare(&self, fetches: &TensorMap) -> GoldenOutcome {
        let fail = |reason: String| GoldenOutcome { passed: false, max_abs_diff: f64::INFINITY, reason };
        let mut worst = 0.0f64;
        // Where the largest difference is: output, flat index, value got, value expected.
        let mut at: Option<(&str, usize, f64, f64)> = None;
        for expected in &self.outputs {
            let Some(got) = fetches.get(&expected.name) else {
                return fail(format!("the model gave no output `{}`", expected.name));
            };
            if got.dims != expected.dims {
                return fail(format!(
                    "output `{}` has dims {:?}, the golden check expects {:?}",
                    expected.name, got.dims, expected.dims
                ));
            }
            let got = TensorJson::from_host(&expected.name, got);
            for (index, (&g, &w)) in got.data.iter().zip(&expected.data).enumerate() {
                // NaN compares false: treat it as an infinite difference.
                let diff = match (g - w).abs() {
                    d if d.is_nan() => f64::INFINITY,
                    d => d,
                };
                if at.is_none() || diff > worst {
                    worst = diff;
                    at = Some((&expected.name, index, g, w));
                }
            }
        }
        let passed = worst <= f64::from(self.tolerance);
        let reason = match at {
            Some((name, index, got, want)) if !passed => format!(
                "output `{name}` element {index} is {}, the golden output {}: off by {worst:.2e} (tolerance {:e})",
                short(got),
                short(want),
                self.tolerance
            ),
            _ => String::new(),
        };
        GoldenOutcome { passed, max_abs_diff: worst, reason }
    }
}

/// A value as f32 (what models compute) in its shortest form, in scientific notation when
/// very small or large.
fn short(value: f64) -> String {
    let v = value as f32;
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-3..1e7).contains(&magnitude) { format!("{v:e}") } else { v.to_string() }
}

#[cfg(test)]
mod tests {
    use brasa_types::{DType, HostTensor, Values};

    use super::*;

    fn check() -> GoldenCheck {
        let t = |name: &str, data: Vec<f64>| TensorJson {
            name: name.into(),
            dtype: DType::Float32,
            dims: vec![1, data.len()],
            data,
        };
        GoldenCheck {
            inputs: vec![t("x", vec![0.0; 4])],
            outputs: vec![t("y", vec![1.0, -2.0])],
            tolerance: 1e-3,
            source: "numpy".into(),
        }
    }

    fn fetches(values: Vec<f32>) -> TensorMap {
        let n = values.len();
        TensorMap::from([("y".to_string(), HostTensor::new(vec![1, n], Values::Float32(values)))])
    }

    #[test]
    fn passes_within_tolerance() {
        let outcome = check().compare(&fetches(vec![1.0005, -2.0]));
        assert!(outcome.passed, "{outcome:?}");
        assert!(outcome.reason.is_empty());
        assert_eq!(check().feeds().unwrap()["x"].dims, vec![1, 4]);
    }

    #[test]
    fn fails_outside_tolerance_on_nan_on_dims_and_on_missing_outputs() {
        let off = check().compare(&fetches(vec![1.0, -2.5]));
        assert!(!off.passed);
        // By how much, and where.
        assert_eq!(off.max_abs_diff, 0.5);
        assert!(off.reason.contains("output `y` element 1 is -2.5, the golden output -2"), "{}", off.reason);
        assert!(off.reason.contains("off by 5.00e-1 (tolerance 1e-3)"), "{}", off.reason);
        assert!(!check().compare(&fetches(vec![f32::NAN, -2.0])).passed);
        assert_eq!(check().compare(&fetches(vec![f32::NAN, -2.0])).max_abs_diff, f64::INFINITY);
        assert!(!check().compare(&fetches(vec![1.0])).passed);
        assert!(check().compare(&TensorMap::new()).reason.contains("no output `y`"));
    }
}
