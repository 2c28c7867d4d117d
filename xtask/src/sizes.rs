use anyhow::Result;

use crate::build::WASM_BUILDS;
use crate::paths;
use crate::util::in_root;

/// Print raw, gzip (level 9) and brotli (quality 11) sizes of each build's wasm and JS glue.
pub fn report() -> Result<()> {
    for (name, _) in WASM_BUILDS {
        let dir = paths::root().join("npm/wasm").join(name);
        let status = in_root("node").arg("-e").arg(SCRIPT).arg(name).arg(dir).status()?;
        anyhow::ensure!(status.success(), "measuring {name} failed");
    }
    Ok(())
}

const SCRIPT: &str = r#"
const fs = require('fs'), zlib = require('zlib'), path = require('path');
const [name, dir] = process.argv.slice(1);
for (const file of ['brasa_wasm_bg.wasm', 'brasa_wasm.js']) {
  const bytes = fs.readFileSync(path.join(dir, file));
  const gz = zlib.gzipSync(bytes, { level: 9 }).length;
  const br = zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  const mb = (n) => (n / 1048576).toFixed(2) + ' MiB';
  console.log(`${name.padEnd(7)} ${file.padEnd(20)} raw ${mb(bytes.length)}  gzip ${mb(gz)}  brotli ${mb(br)}`);
}
"#;
