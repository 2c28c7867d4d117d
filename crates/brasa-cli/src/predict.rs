use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use brasa::{BackendKind, BackendPreference, Session};
use brasa_mnist::{IMAGE_SIDE, Mnist};
use image::imageops::FilterType;

/// Load a PNG as 28x28 intensities in [0, 1].
pub fn load_digit(path: &Path, invert: bool) -> Result<Vec<f32>> {
    let img = image::open(path).with_context(|| format!("reading {}", path.display()))?;
    let side = IMAGE_SIDE as u32;
    let gray = img.resize_exact(side, side, FilterType::Triangle).to_luma8();
    Ok(gray
        .pixels()
        .map(|p| {
            let v = f32::from(p.0[0]) / 255.0;
            if invert { 1.0 - v } else { v }
        })
        .collect())
}

pub fn run(
    model: &str,
    weights: &Path,
    backend: &str,
    invert: bool,
    json: bool,
    images: &[PathBuf],
) -> Result<()> {
    if model != "mnist" {
        bail!("unknown model `{model}`; this CLI serves: mnist");
    }
    let bytes = std::fs::read(weights).with_context(|| format!("reading {}", weights.display()))?;
    let session = match backend.parse::<BackendPreference>()? {
        BackendPreference::Cpu => pollster::block_on(Session::<Mnist>::load(&bytes, BackendKind::Cpu))?,
        BackendPreference::WebGpu => pollster::block_on(Session::<Mnist>::load(&bytes, BackendKind::WebGpu))?,
        // As in the browser: the GPU when there is one, else the CPU, saying why.
        BackendPreference::Auto => {
            match pollster::block_on(Session::<Mnist>::load(&bytes, BackendKind::WebGpu)) {
                Ok(session) => session,
                Err(err @ brasa::BrasaError::BackendUnavailable { .. }) => {
                    eprintln!("note: running on CPU: {err}");
                    pollster::block_on(Session::<Mnist>::load(&bytes, BackendKind::Cpu))?
                }
                Err(err) => return Err(err.into()),
            }
        }
    };
    let kind = session.backend();
    let mut batch = Vec::new();
    for path in images {
        batch.extend(load_digit(path, invert)?);
    }
    let prediction = pollster::block_on(session.run(&batch))?;
    let rows = images.iter().zip(prediction.probabilities.chunks(prediction.classes));
    if json {
        let items: Vec<_> = rows
            .zip(&prediction.labels)
            .zip(prediction.logits.chunks(prediction.classes))
            .map(|(((path, probs), label), logits)| {
                serde_json::json!({
                    "image": path.display().to_string(),
                    "label": label,
                    "probabilities": probs,
                    "logits": logits,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "backend": kind.as_str(), "predictions": items }));
    } else {
        for ((path, probs), label) in rows.zip(&prediction.labels) {
            println!("{}: {label} ({:.1}% on {kind})", path.display(), probs[*label as usize] * 100.0);
        }
    }
    Ok(())
}
