use anyhow::Result;

use crate::build::{MODELS, ONNX_MODELS};
use crate::paths;
use crate::util::in_root;

/// Print raw, gzip (level 9) and brotli (quality 11) sizes of each model package's builds
/// (wasm and JS glue): each build holds only its model.
pub fn report() -> Result<()> {
    let models = MODELS.iter().map(|(name, ..)| *name).chain(ONNX_MODELS.iter().map(|(name, ..)| *name));
    for model in models {
        for name in ["cpu", "cpu-relaxed", "cpu-threads", "cpu-threads-relaxed", "webgpu"] {
            let dir = paths::packages().join(model).join(name);
            if !dir.exists() {
                continue;
            }
            let label = format!("{model}/{name}");
            let status = in_root("node").arg("-e").arg(SCRIPT).arg(&label).arg(dir).status()?;
            anyhow::ensure!(status.success(), "measuring {label} failed");
        }
    }
    Ok(())
}

const SCRIPT: &str = r#"
const fs = require('fs'), zlib = require('zlib'), path = require('path');
const [name, dir] = process.argv.slice(1);
for (const file of ['model_bg.wasm', 'model.js']) {
  const bytes = fs.readFileSync(path.join(dir, file));
  const gz = zlib.gzipSync(bytes, { level: 9 }).length;
  const br = zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  const mb = (n) => (n / 1048576).toFixed(2) + ' MiB';
  console.log(`${name.padEnd(36)} ${file.padEnd(14)} raw ${mb(bytes.length)}  gzip ${mb(gz)}  brotli ${mb(br)}`);
}
"#;
