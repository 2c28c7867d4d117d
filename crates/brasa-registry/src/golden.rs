use serde::Serialize;

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
    /// Compare `output` (the model's flat output on [`GoldenCheck::input`]) with the
    /// expected output.
    pub fn compare(&self, output: &[f32]) -> GoldenOutcome {
        if output.len() != self.expected.len() {
            return GoldenOutcome {
                passed: false,
                max_abs_diff: f64::INFINITY,
                reason: format!(
                    "output has {} values, the golden check expects {}",
                    output.len(),
                    self.expected.len()
                ),
            };
        }
        let mut worst = 0.0f64;
        for (got, want) in output.iter().zip(&self.expected) {
            let diff = (f64::from(*got) - f64::from(*want)).abs();
            // NaN compares false: treat it as an infinite difference.
            worst = if diff.is_nan() { f64::INFINITY } else { worst.max(diff) };
        }
        let passed = worst <= f64::from(self.tolerance);
        let reason = if passed {
            String::new()
        } else {
            format!("output differs from the golden output by {worst:e} (tolerance {:e})", self.tolerance)
        };
        GoldenOutcome { passed, max_abs_diff: worst, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> GoldenCheck {
        GoldenCheck { input: vec![0.0; 4], expected: vec![1.0, -2.0], tolerance: 1e-3 }
    }

    #[test]
    fn passes_within_tolerance() {
        let outcome = check().compare(&[1.0005, -2.0]);
        assert!(outcome.passed, "{outcome:?}");
        assert!(outcome.reason.is_empty());
    }

    #[test]
    fn fails_outside_tolerance_on_nan_and_on_length() {
        assert!(!check().compare(&[1.01, -2.0]).passed);
        assert!(!check().compare(&[f32::NAN, -2.0]).passed);
        assert_eq!(check().compare(&[f32::NAN, -2.0]).max_abs_diff, f64::INFINITY);
        assert!(!check().compare(&[1.0]).passed);
    }
}
