//! The TypeScript declarations of this crate's types, for the npm package.
//!
//! `npm/src/generated/types.ts` is this function's output, committed; the test below fails
//! when it is stale (`BRASA_BLESS=1 cargo test -p brasa-types` rewrites it). One definition,
//! no hand-kept copy to drift.

use std::fmt::Write;

use crate::dtype::DType;
use crate::error::ErrorCode;
use crate::weights_dtype::WeightsDtype;

/// The declarations, as a TypeScript module.
pub fn declarations() -> String {
    let mut ts = String::new();
    ts.push_str(
        "// Generated from crates/brasa-types by `BRASA_BLESS=1 cargo test -p brasa-types`. Do not edit.\n\n",
    );

    ts.push_str("/** Element type of a tensor (onnxruntime-web's names). */\n");
    let dtypes: Vec<String> = DType::ALL.iter().map(|d| format!("'{d}'")).collect();
    let _ = writeln!(ts, "export type DType = {};\n", dtypes.join(" | "));
    ts.push_str("/** Every dtype, in the order brasa lists them. */\n");
    let _ = writeln!(ts, "export const DTYPES = [{}] as const;\n", dtypes.join(", "));

    ts.push_str("/** The typed array that carries each dtype. */\n");
    ts.push_str("export interface TypedArrayOf {\n");
    for d in DType::ALL {
        let _ = writeln!(ts, "  {d}: {};", d.typed_array());
    }
    ts.push_str("}\n\n");
    ts.push_str("/** Bytes per element of each dtype. */\n");
    ts.push_str("export const DTYPE_BYTES: Record<DType, number> = {\n");
    for d in DType::ALL {
        let _ = writeln!(ts, "  {d}: {},", d.byte_size());
    }
    ts.push_str("};\n\n");
    ts.push_str("/** The Open Inference Protocol (KServe v2) datatype of each dtype. */\n");
    ts.push_str("export const KSERVE_DATATYPE: Record<DType, string> = {\n");
    for d in DType::ALL {
        let _ = writeln!(ts, "  {d}: '{}',", d.kserve());
    }
    ts.push_str("};\n\n");

    ts.push_str(
        "/**\n * One dimension: a fixed size, `'batch'`, a named dynamic dimension, or a bounded one.\n * Dimensions of one name agree across every tensor of a call.\n */\n",
    );
    ts.push_str(
        "export type Dim = number | 'batch' | string | { name: string; min?: number; max?: number };\n\n",
    );

    ts.push_str("/** One named tensor of a signature. */\n");
    ts.push_str("export interface TensorSpec {\n");
    ts.push_str("  /** The key in feeds and fetches; KServe's tensor name. */\n  name: string;\n");
    ts.push_str("  dtype: DType;\n");
    ts.push_str("  /** Every dimension, the batch first when there is one. */\n  dims: Dim[];\n");
    ts.push_str("  description?: string;\n");
    ts.push_str(
        "  /** Values outside `[min, max]` are refused (`invalid_input`). */\n  range?: [number, number];\n",
    );
    ts.push_str(
        "  /** `string` tensors: the most UTF-8 bytes of one element; longer ones are refused. */\n  maxBytes?: number;\n",
    );
    ts.push_str("}\n\n");
    ts.push_str("/** What a model takes and gives. */\n");
    ts.push_str("export interface Signature {\n  inputs: TensorSpec[];\n  outputs: TensorSpec[];\n}\n\n");

    ts.push_str(
        "/** How a weights file stores its float parameters (a manifest file's `dtype`, the `dtype` load option). */\n",
    );
    let wdtypes: Vec<String> = WeightsDtype::ALL.iter().map(|d| format!("'{d}'")).collect();
    let _ = writeln!(ts, "export type WeightsDtype = {};\n", wdtypes.join(" | "));
    ts.push_str("/** Every weights dtype. */\n");
    let _ = writeln!(ts, "export const WEIGHTS_DTYPES = [{}] as const;\n", wdtypes.join(", "));

    ts.push_str("/** Stable categories of `BrasaError`; match on `code`, not on the message. */\n");
    ts.push_str("export type BrasaErrorCode =\n");
    for (i, code) in ErrorCode::ALL.iter().enumerate() {
        let _ = writeln!(ts, "  /** {} */", code.description());
        let end = if i + 1 == ErrorCode::ALL.len() { ";" } else { "" };
        let _ = writeln!(ts, "  | '{code}'{end}");
    }
    ts.push('\n');
    ts.push_str("/** Every error code. */\n");
    ts.push_str(
        "/** The wasm builds a model package may carry (`brasa build --backend`), CPU ones best last. */\n",
    );
    let builds: Vec<String> = crate::BUILD_NAMES.iter().map(|b| format!("'{b}'")).collect();
    let _ = writeln!(ts, "export const BUILD_NAMES = [{}] as const;\n", builds.join(", "));
    let codes: Vec<String> = ErrorCode::ALL.iter().map(|c| format!("'{c}'")).collect();
    let _ = writeln!(ts, "export const ERROR_CODES: readonly BrasaErrorCode[] = [{}];", codes.join(", "));
    ts
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn committed_declarations_are_current() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../npm/src/generated/types.ts");
        let want = super::declarations();
        if std::env::var_os("BRASA_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `BRASA_BLESS=1 cargo test -p brasa-types` and commit it",
            path.display()
        );
    }
}
