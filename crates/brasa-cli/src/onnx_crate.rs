//! `brasa build --onnx`: an ONNX file becomes a model crate — the burn module burn-onnx
//! generates (with brasa's operator overrides), its burnpack weights, and the adapter that
//! implements `brasa::Model` for it: the signature from the graph's inputs and outputs, and a
//! `forward` that maps named feeds onto the generated `forward`'s arguments and its results
//! onto the output names. `brasa build` then builds that crate like any other.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use onnx_ir::{ArgType, Argument, DType, Node, OnnxGraphBuilder};

/// How one graph tensor reaches the generated code.
enum Kind {
    /// `Tensor<R>` (float), `Tensor<R, Int>`, `Tensor<R, Bool>`.
    Tensor { rank: usize, dtype: &'static str, kind: &'static str },
    /// A native scalar argument (rank 0 in the signature).
    Scalar { dtype: &'static str, rust: &'static str },
}

fn brasa_dtype(d: &DType) -> Option<(&'static str, &'static str)> {
    // (brasa dtype, burn tensor kind)
    Some(match d {
        DType::F32 | DType::F64 => ("Float32", "float"),
        DType::F16 => ("Float16", "float"),
        DType::I64 => ("Int64", "int"),
        DType::I32 => ("Int32", "int"),
        DType::U8 => ("Uint8", "int"),
        DType::Bool(_) => ("Bool", "bool"),
        _ => return None,
    })
}

fn kind_of(arg: &Argument, what: &str) -> Result<Kind> {
    let unsupported = |why: String| anyhow::anyhow!("{what} `{}`: {why}", arg.name);
    match &arg.ty {
        ArgType::Tensor(t) => {
            let (dtype, kind) = brasa_dtype(&t.dtype)
                .ok_or_else(|| unsupported(format!("element type {:?} is not supported", t.dtype)))?;
            Ok(Kind::Tensor { rank: t.rank, dtype, kind })
        }
        ArgType::ScalarTensor(d) => {
            let (dtype, kind) =
                brasa_dtype(d).ok_or_else(|| unsupported(format!("element type {d:?} is not supported")))?;
            Ok(Kind::Tensor { rank: 1, dtype, kind })
        }
        ArgType::ScalarNative(d) => match d {
            DType::I64 => Ok(Kind::Scalar { dtype: "Int64", rust: "i64" }),
            DType::F32 => Ok(Kind::Scalar { dtype: "Float32", rust: "f32" }),
            other => Err(unsupported(format!("scalar of type {other:?} is not supported"))),
        },
        ArgType::Shape(_) => {
            Err(unsupported("shape-typed graph inputs and outputs are not supported".into()))
        }
    }
}

/// The signature's dims of a graph tensor: fixed sizes where the graph knows them, the batch
/// for a symbolic first dimension (and wherever the file names a dimension `batch`), named
/// dynamic dims elsewhere.
fn dims_of(arg: &Argument, file: Option<&Vec<FileDim>>) -> String {
    let dims: Vec<String> = match &arg.ty {
        // The file's dims where it declares them with the right rank: symbolic names are kept,
        // so a dimension named alike in several tensors must agree (silero-vad's state holds
        // the batch on its second axis).
        ArgType::Tensor(t) if file.is_some_and(|f| f.len() == t.rank) => file
            .map(|f| {
                f.iter()
                    .enumerate()
                    .map(|(axis, d)| match d {
                        FileDim::Fixed(n) => format!("Dim::Fixed({n})"),
                        FileDim::Param(_) if axis == 0 => "Dim::Batch".into(),
                        FileDim::Param(p) if p == "batch" => "Dim::Batch".into(),
                        FileDim::Param(p) if p.is_empty() => {
                            format!("Dim::dynamic({:?})", format!("{}_{axis}", arg.name))
                        }
                        FileDim::Param(p) => format!("Dim::dynamic({p:?})"),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ArgType::Tensor(t) => {
            let shape = t.static_shape.clone().unwrap_or_else(|| vec![None; t.rank]);
            shape
                .iter()
                .enumerate()
                .map(|(axis, d)| match d {
                    Some(n) => format!("Dim::Fixed({n})"),
                    None if axis == 0 => "Dim::Batch".into(),
                    None => format!("Dim::dynamic({:?})", format!("{}_{axis}", arg.name)),
                })
                .collect()
        }
        ArgType::ScalarTensor(_) => vec!["Dim::Fixed(1)".into()],
        _ => vec![],
    };
    format!("vec![{}]", dims.join(", "))
}

/// Every operator of the graph brasa cannot import, as `op (node)`, and the graph itself.
fn parse(onnx: &Path) -> Result<onnx_ir::OnnxGraph> {
    let graph = OnnxGraphBuilder::new()
        .parse_file(onnx)
        .map_err(|e| anyhow::anyhow!("{} is not an ONNX graph brasa can read: {e}", onnx.display()))?;
    let custom: Vec<(String, String)> = graph
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Custom(c) => Some((c.domain.clone(), c.op_type.clone())),
            _ => None,
        })
        .collect();
    let show = |domain: &str, op: &str, node: &str| {
        format!(
            "{}{op} (node `{node}`)",
            if domain.is_empty() { String::new() } else { format!("{domain}::") }
        )
    };
    // Name each node as the file does (onnx-ir renames them); fall back to onnx-ir's names.
    let in_file: Vec<String> = onnx_nodes(onnx)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, op, domain)| custom.iter().any(|(d, o)| d == domain && o == op))
        .map(|(name, op, domain)| show(&domain, &op, &name))
        .collect();
    let unsupported: Vec<String> = if in_file.is_empty() {
        graph
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Custom(c) => Some(show(&c.domain, &c.op_type, &c.name)),
                _ => None,
            })
            .collect()
    } else {
        in_file
    };
    if !unsupported.is_empty() {
        bail!(
            "{} uses {} operator(s) burn-onnx cannot import:\n  {}",
            onnx.display(),
            unsupported.len(),
            unsupported.join("\n  ")
        );
    }
    Ok(graph)
}

/// Read one protobuf varint at `*at`.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The length-delimited fields `wanted` of a protobuf message, in order.
fn fields(bytes: &[u8], wanted: u64) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        match key & 7 {
            0 => {
                varint(bytes, &mut at)?;
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                let field = bytes.get(at..at.checked_add(len)?)?;
                if key >> 3 == wanted {
                    out.push(field);
                }
                at += len;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A dimension as the ONNX file declares it.
#[derive(Debug, Clone, PartialEq)]
enum FileDim {
    /// `dim_value`.
    Fixed(usize),
    /// `dim_param` (a symbolic name), or nothing.
    Param(String),
}

/// A graph input or output as the file declares it: its name and, when the file says, its
/// dims.
type FileTensor = (String, Option<Vec<FileDim>>);

/// The first varint field `wanted` of a protobuf message.
fn varint_field(bytes: &[u8], wanted: u64) -> Option<u64> {
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        match key & 7 {
            0 => {
                let v = varint(bytes, &mut at)?;
                if key >> 3 == wanted {
                    return Some(v);
                }
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                at = at.checked_add(len)?;
            }
            _ => return None,
        }
    }
    None
}

/// The dims of a ValueInfoProto (type = 2; TypeProto.tensor_type = 1; shape = 2;
/// TensorShapeProto.dim = 1; Dimension.dim_value = 1, dim_param = 2).
fn file_dims(value_info: &[u8]) -> Option<Vec<FileDim>> {
    let ty = *fields(value_info, 2)?.first()?;
    let tensor = *fields(ty, 1)?.first()?;
    let shape = *fields(tensor, 2)?.first()?;
    let dims = fields(shape, 1)?
        .iter()
        .map(|d| match varint_field(d, 1) {
            Some(n) if n > 0 => FileDim::Fixed(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => FileDim::Param(
                fields(d, 2)
                    .and_then(|p| p.first().map(|p| String::from_utf8_lossy(p).into_owned()))
                    .unwrap_or_default(),
            ),
        })
        .collect();
    Some(dims)
}

/// The graph's inputs (without initializers) and outputs as the ONNX file declares them:
/// onnx-ir renames graph outputs after the node producing them and keeps no symbolic dim
/// names, and clients use the file's. (ModelProto.graph = 7; GraphProto.input = 11,
/// output = 12, initializer = 5; ValueInfoProto.name = 1, TensorProto.name = 8.)
fn onnx_io(onnx: &Path) -> Option<(Vec<FileTensor>, Vec<FileTensor>)> {
    let bytes = std::fs::read(onnx).ok()?;
    let graph = *fields(&bytes, 7)?.first()?;
    let name = |msg: &[u8], field: u64| -> Option<String> {
        fields(msg, field)?.first().map(|n| String::from_utf8_lossy(n).into_owned())
    };
    let initializers: Vec<String> = fields(graph, 5)?.iter().filter_map(|t| name(t, 8)).collect();
    let tensor = |v: &&[u8]| name(v, 1).map(|n| (n, file_dims(v)));
    let inputs =
        fields(graph, 11)?.iter().filter_map(tensor).filter(|(n, _)| !initializers.contains(n)).collect();
    let outputs = fields(graph, 12)?.iter().filter_map(tensor).collect();
    Some((inputs, outputs))
}

/// Every node of the file's graph as (name, op_type, domain). (GraphProto.node = 1;
/// NodeProto.name = 3, op_type = 4, domain = 7.)
fn onnx_nodes(onnx: &Path) -> Option<Vec<(String, String, String)>> {
    let bytes = std::fs::read(onnx).ok()?;
    let graph = *fields(&bytes, 7)?.first()?;
    let text = |msg: &[u8], field: u64| -> String {
        fields(msg, field)
            .and_then(|f| f.first().map(|n| String::from_utf8_lossy(n).into_owned()))
            .unwrap_or_default()
    };
    Some(fields(graph, 1)?.iter().map(|n| (text(n, 3), text(n, 4), text(n, 7))).collect())
}

/// burn-onnx's burnpack records each parameter's `ParamId`, drawn at random per run (training
/// state's identity, unused when serving). Drop them, so one ONNX file always gives the same
/// weights: the same bytes in a registry, and the same build cache key in every clone.
fn without_param_ids(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let reader =
        burn_store::burn_pack::Reader::from_bytes(burn_store::burn_pack::Bytes::from_bytes_vec(bytes))
            .map_err(|e| anyhow::anyhow!("reading the generated weights: {e:?}"))?;
    let metadata = reader.metadata().clone();
    let scalars = reader.scalars().clone();
    let mut tensors =
        reader.into_tensors().map_err(|e| anyhow::anyhow!("reading the generated weights: {e:?}"))?;
    for tensor in &mut tensors {
        tensor.param_id = None;
    }
    let mut writer = burn_store::burn_pack::Writer::new(tensors);
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    for (key, value) in scalars {
        writer = writer.with_scalar(&key, value);
    }
    let bytes = writer.into_bytes().map_err(|e| anyhow::anyhow!("writing the weights: {e:?}"))?;
    std::fs::write(path, &*bytes)?;
    Ok(())
}

/// Generate the model crate of `onnx` in `dir` (replaced); returns the crate folder.
pub fn generate(onnx: &Path, name: &str, dir: &Path, brasa: &Path) -> Result<PathBuf> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        bail!("--name `{name}` must be 1 or more of [a-z0-9-]");
    }
    let mut graph = parse(onnx)?;
    // Serve the tensors under the file's names and dims. onnx-ir keeps inputs' names
    // (sanitised) but may order them otherwise, so inputs are matched by name; outputs,
    // renamed after the nodes producing them, by position.
    let mut declared: std::collections::BTreeMap<String, Vec<FileDim>> = Default::default();
    if let Some((inputs, outputs)) = onnx_io(onnx) {
        let sanitise = |n: &str| -> String {
            n.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
        };
        for arg in graph.inputs.iter_mut() {
            let matches: Vec<&FileTensor> =
                inputs.iter().filter(|(n, _)| *n == arg.name || sanitise(n) == sanitise(&arg.name)).collect();
            if let [(name, dims)] = matches.as_slice() {
                arg.name = name.clone();
                if let Some(dims) = dims {
                    declared.insert(name.clone(), dims.clone());
                }
            }
        }
        if outputs.len() == graph.outputs.len() {
            for (arg, (name, dims)) in graph.outputs.iter_mut().zip(outputs) {
                arg.name = name.clone();
                if let Some(dims) = dims {
                    declared.insert(name, dims);
                }
            }
        }
    }
    let inputs: Vec<(&Argument, Kind)> =
        graph.inputs.iter().map(|a| kind_of(a, "input").map(|k| (a, k))).collect::<Result<_>>()?;
    let outputs: Vec<(&Argument, Kind)> =
        graph.outputs.iter().map(|a| kind_of(a, "output").map(|k| (a, k))).collect::<Result<_>>()?;
    if let Some((a, _)) = outputs.iter().find(|(_, k)| matches!(k, Kind::Scalar { .. })) {
        bail!("output `{}` is a scalar; brasa serves tensor outputs", a.name);
    }

    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    crate::import::onnx(onnx, &src, true)?;
    let stem = onnx.file_stem().and_then(|s| s.to_str()).context("the ONNX file has no name")?;
    std::fs::rename(src.join(format!("{stem}.rs")), src.join("generated.rs"))?;
    std::fs::rename(src.join(format!("{stem}.bpk")), dir.join("weights.bpk"))?;
    without_param_ids(&dir.join("weights.bpk"))?;

    let package = format!("brasa-onnx-{name}");
    // The file's name only: the generated sources (and the build's cache key) must not depend
    // on where the file lies.
    let file_name = onnx.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let manifest = format!(
        r#"# Generated by `brasa build --onnx {onnx}`; do not edit.
[package]
name = "{package}"
version = "0.1.0"
edition = "2024"
publish = false

[package.metadata.brasa]
model = "{lib}::Model"

[dependencies]
brasa = {{ path = "{brasa}/crates/brasa", default-features = false }}
burn = {{ version = "=0.22.1", default-features = false, features = ["std"] }}

[workspace]
"#,
        onnx = file_name,
        lib = package.replace('-', "_"),
        brasa = brasa.to_string_lossy().replace('\\', "/"),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest)?;

    let spec = |(arg, kind): &(&Argument, Kind)| {
        let dtype = match kind {
            Kind::Tensor { dtype, .. } | Kind::Scalar { dtype, .. } => dtype,
        };
        format!("TensorSpec::new({:?}, DType::{dtype}, {})", arg.name, dims_of(arg, declared.get(&arg.name)))
    };
    let reads: Vec<String> = inputs
        .iter()
        .map(|(arg, kind)| match kind {
            Kind::Tensor { rank, kind, .. } => format!("inputs.{kind}::<{rank}>({:?})?", arg.name),
            Kind::Scalar { rust, .. } => format!("inputs.scalar_{rust}({:?})?", arg.name),
        })
        .collect();
    let results: Vec<String> = if outputs.len() == 1 {
        vec!["out".into()]
    } else {
        (0..outputs.len()).map(|i| format!("out.{i}")).collect()
    };
    let writes: Vec<String> = outputs
        .iter()
        .zip(&results)
        .map(|((arg, kind), value)| match kind {
            Kind::Tensor { kind, .. } => format!(".{kind}({:?}, {value})", arg.name),
            // Refused above.
            Kind::Scalar { .. } => String::new(),
        })
        .collect();
    let lib = format!(
        r#"//! Generated by `brasa build --onnx {onnx}`: the burn module burn-onnx generated from the
//! graph, and its `brasa::Model` adapter. Do not edit.

#![allow(clippy::all, missing_docs, unused, unused_qualifications)]

use brasa::{{DType, Dim, Inputs, Outputs, Signature, TensorSpec}};
use burn::tensor::Device;

mod generated {{
    include!("generated.rs");
}}

pub use generated::Model;

impl brasa::Model for Model {{
    const NAME: &'static str = {name:?};

    fn signature() -> Signature {{
        Signature {{
            inputs: vec![{inputs}],
            outputs: vec![{outputs}],
        }}
    }}

    fn init(device: &Device) -> Self {{
        Model::new(device)
    }}

    fn forward(&self, mut inputs: Inputs) -> brasa::Result<Outputs> {{
        let out = Model::forward(self, {reads});
        Ok(Outputs::new(){writes})
    }}
}}
"#,
        onnx = file_name,
        inputs = inputs.iter().map(spec).collect::<Vec<_>>().join(", "),
        outputs = outputs.iter().map(spec).collect::<Vec<_>>().join(", "),
        reads = reads.join(", "),
        writes = writes.join(""),
    );
    std::fs::write(src.join("lib.rs"), lib)?;
    Ok(dir.to_path_buf())
}
