use crate::servable::OutputKind;

/// The result of one forward pass over a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Items in the batch.
    pub batch: usize,
    /// Values per item in `logits` and `probabilities`.
    pub classes: usize,
    /// Raw model outputs, row-major `[batch, classes]` (for a model whose graph ends in a
    /// softmax, these are already probabilities).
    pub logits: Vec<f32>,
    /// Softmax of each row of `logits`, or `logits` themselves when they are probabilities.
    pub probabilities: Vec<f32>,
    /// The arg-max class of each row.
    pub labels: Vec<u32>,
}

impl Prediction {
    /// Build a prediction from row-major logits, computing probabilities and labels.
    pub fn from_logits(logits: Vec<f32>, classes: usize) -> Self {
        Self::from_outputs(logits, classes, OutputKind::Logits)
    }

    /// Build a prediction from row-major model outputs of the given kind.
    pub fn from_outputs(logits: Vec<f32>, classes: usize, kind: OutputKind) -> Self {
        let batch = logits.len().checked_div(classes).unwrap_or(0);
        let probabilities = match kind {
            OutputKind::Logits => softmax_rows(&logits, classes),
            OutputKind::Probabilities => logits.clone(),
        };
        let labels = logits
            .chunks_exact(classes.max(1))
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
                    .0 as u32
            })
            .collect();
        Prediction { batch, classes, logits, probabilities, labels }
    }
}

/// Numerically stable softmax over each row of a row-major matrix.
///
/// Done on the host, not on the backend: it is ten values a row, and doing it here makes the
/// probabilities bit-identical across backends for identical logits.
pub fn softmax_rows(values: &[f32], row_len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    for row in values.chunks_exact(row_len.max(1)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        out.extend(exps.iter().map(|&e| (e / sum) as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_survive_large_logits() {
        let p = softmax_rows(&[1000.0, 1001.0, 999.0, -5.0, 0.0, 5.0], 3);
        for row in p.chunks(3) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "{row:?}");
            assert!(row.iter().all(|v| v.is_finite()));
        }
        assert!(p[1] > p[0] && p[0] > p[2]);
    }

    #[test]
    fn probabilities_are_not_normalised_twice() {
        let pred = Prediction::from_outputs(vec![0.7, 0.2, 0.1], 3, OutputKind::Probabilities);
        assert_eq!(pred.probabilities, vec![0.7, 0.2, 0.1]);
        assert_eq!(pred.labels, vec![0]);
        let pred = Prediction::from_outputs(vec![0.7, 0.2, 0.1], 3, OutputKind::Logits);
        assert!((pred.probabilities[0] - 0.4640).abs() < 1e-4, "{:?}", pred.probabilities);
    }

    #[test]
    fn labels_are_row_argmax() {
        let pred = Prediction::from_logits(vec![0.1, 0.9, 0.0, 3.0, -1.0, 2.0], 3);
        assert_eq!(pred.batch, 2);
        assert_eq!(pred.labels, vec![1, 0]);
    }
}
