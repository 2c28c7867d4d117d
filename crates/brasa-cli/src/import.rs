//! `brasa import`: a model-independent conversion of a PyTorch state dict (`.pth`, `.pt`,
//! `.bin`) or a `.safetensors` file to burnpack, renaming, transposing and dropping tensors
//! as a mapping says ([`crate::mapping`]); `brasa import-onnx`; `brasa inspect`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use brasa::burn::tensor::BoolStore;
use burn_store::burn_pack::{self, Bytes, DType};
use burn_store::pytorch_reader::{self, PytorchReader};

use crate::mapping::{Elem, MappingSpec, Plan, SourceTensor, transpose_2d};

/// `brasa import`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The checkpoint: a PyTorch state dict (`.pth`, `.pt`, `.bin`, `.ckpt`) or `.safetensors`.
    pub input: PathBuf,
    /// Where to write the burnpack file (written whole, then renamed into place).
    #[arg(short, long)]
    pub output: PathBuf,
    /// A mapping file (TOML: `rename = [[REGEX, REPLACEMENT], …]`, `transpose = [REGEX, …]`,
    /// `drop = [REGEX, …]`); its rules run before those of the flags.
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,
    /// Rename tensors: every match of REGEX is replaced (`$1`, `${name}` for groups). Rules run
    /// in order, each on the result of the previous ones. Repeatable.
    #[arg(long = "rename", value_name = "REGEX=REPLACEMENT")]
    pub renames: Vec<String>,
    /// Transpose the 2-D tensors whose new name matches (PyTorch's Linear weight is
    /// [out, in], burn's [in, out]). Repeatable.
    #[arg(long = "transpose", value_name = "REGEX")]
    pub transposes: Vec<String>,
    /// Leave out the tensors whose original name matches. Repeatable.
    #[arg(long = "drop", value_name = "REGEX")]
    pub drops: Vec<String>,
    /// PyTorch: read the state dict under this top-level key of the checkpoint
    /// (`state_dict`, `model`).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Print what would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Reads one tensor's bytes (row-major, little-endian) from the checkpoint.
type ReadFn = Arc<dyn Fn() -> std::io::Result<Vec<u8>> + Send + Sync>;

/// A checkpoint's tensors, described, with a way to read each.
struct Checkpoint {
    tensors: Vec<SourceTensor>,
    readers: HashMap<String, ReadFn>,
}

/// Convert a checkpoint to burnpack as the mapping says.
pub fn run(args: &ImportArgs) -> Result<()> {
    let mut spec = match &args.map {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            MappingSpec::from_toml(&text)
                .with_context(|| format!("{} is not a valid mapping file", path.display()))?
        }
        None => MappingSpec::default(),
    };
    spec = spec.then(MappingSpec::from_flags(&args.renames, &args.transposes, &args.drops)?);
    let mapping = spec.compile()?;

    let checkpoint = read_checkpoint(&args.input, args.key.as_deref())?;
    let plan =
        mapping.plan(&checkpoint.tensors).with_context(|| format!("mapping {}", args.input.display()))?;

    print!("{}", plan.table());
    if !plan.dropped.is_empty() {
        println!("dropped: {}", plan.dropped.join(", "));
    }
    for rule in &plan.unused_rules {
        eprintln!("warning: {rule}");
    }
    if args.dry_run {
        println!(
            "{} tensors ({} parameters, {} bytes of data) would be written to {}",
            plan.entries.len(),
            plan.elements(),
            plan.data_bytes(),
            args.output.display()
        );
        return Ok(());
    }

    let bytes = convert(&plan, &checkpoint, &args.input)?;
    // What brasa checks before loading (structure, sizes, finite values): refuse to write a
    // file it would refuse to load.
    let summary = brasa::inspect_weights(&bytes)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("the weights converted from {} do not validate", args.input.display()))?;
    write_atomically(&args.output, &bytes)?;
    println!(
        "imported {} tensors ({} parameters) from {} -> {} ({} bytes)",
        summary.tensors.len(),
        summary.parameters,
        args.input.display(),
        args.output.display(),
        summary.bytes
    );
    Ok(())
}

/// Open a checkpoint by its extension.
fn read_checkpoint(path: &Path, key: Option<&str>) -> Result<Checkpoint> {
    if !path.is_file() {
        bail!("{} is not a file", path.display());
    }
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "safetensors" => {
            if key.is_some() {
                bail!("--key applies to PyTorch checkpoints, not safetensors");
            }
            read_safetensors(path)
        }
        "pth" | "pt" | "bin" | "ckpt" => read_pytorch(path, key),
        _ => bail!(
            "{}: unknown kind of checkpoint; brasa import reads PyTorch state dicts (.pth, .pt, .bin, .ckpt) \
             and .safetensors files",
            path.display()
        ),
    }
}

fn read_pytorch(path: &Path, key: Option<&str>) -> Result<Checkpoint> {
    let reader = match key {
        Some(key) => PytorchReader::with_top_level_key(path, key),
        None => PytorchReader::new(path),
    }
    .map_err(|e| anyhow!("{e}"))
    .with_context(|| format!("reading {} as a PyTorch checkpoint", path.display()))?;
    let mut checkpoint = Checkpoint { tensors: Vec::new(), readers: HashMap::new() };
    for (_, tensor) in reader.into_tensors() {
        let (name, dtype, shape, read) = tensor.into_parts();
        checkpoint.tensors.push(SourceTensor { name: name.clone(), dtype: pytorch_elem(dtype), shape });
        checkpoint.readers.insert(name, Arc::new(read));
    }
    Ok(checkpoint)
}

fn pytorch_elem(dtype: pytorch_reader::DType) -> std::result::Result<Elem, String> {
    use pytorch_reader::DType as Pt;
    match dtype {
        Pt::F32 => Ok(Elem::Float32),
        Pt::F16 => Ok(Elem::Float16),
        Pt::I64 => Ok(Elem::Int64),
        Pt::I32 => Ok(Elem::Int32),
        Pt::U8 => Ok(Elem::Uint8),
        Pt::Bool => Ok(Elem::Bool),
        Pt::F64 => Err("float64".into()),
        Pt::BF16 => Err("bfloat16".into()),
        Pt::I16 => Err("int16".into()),
        Pt::I8 => Err("int8".into()),
        Pt::U64 => Err("uint64".into()),
        Pt::U32 => Err("uint32".into()),
        Pt::U16 => Err("uint16".into()),
    }
}

fn read_safetensors(path: &Path) -> Result<Checkpoint> {
    let bytes = Arc::new(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    let (header_len, metadata) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("reading {} as safetensors", path.display()))?;
    // The data section follows the 8-byte header length and the header.
    let data_start = 8 + header_len;
    let mut checkpoint = Checkpoint { tensors: Vec::new(), readers: HashMap::new() };
    for (name, info) in metadata.tensors() {
        let (start, end) = (data_start + info.data_offsets.0, data_start + info.data_offsets.1);
        if start > end || end > bytes.len() {
            bail!("{}: tensor `{name}` lies outside the file", path.display());
        }
        checkpoint.tensors.push(SourceTensor {
            name: name.clone(),
            dtype: safetensors_elem(info.dtype),
            shape: info.shape.clone(),
        });
        let file = bytes.clone();
        checkpoint.readers.insert(name, Arc::new(move || Ok(file[start..end].to_vec())));
    }
    Ok(checkpoint)
}

fn safetensors_elem(dtype: safetensors::Dtype) -> std::result::Result<Elem, String> {
    use safetensors::Dtype as St;
    match dtype {
        St::F32 => Ok(Elem::Float32),
        St::F16 => Ok(Elem::Float16),
        St::I64 => Ok(Elem::Int64),
        St::I32 => Ok(Elem::Int32),
        St::U8 => Ok(Elem::Uint8),
        St::BOOL => Ok(Elem::Bool),
        St::F64 => Err("float64".into()),
        St::BF16 => Err("bfloat16".into()),
        other => Err(format!("{other:?}").to_lowercase()),
    }
}

fn pack_dtype(elem: Elem) -> DType {
    match elem {
        Elem::Float32 => DType::F32,
        Elem::Float16 => DType::F16,
        Elem::Int64 => DType::I64,
        Elem::Int32 => DType::I32,
        Elem::Uint8 => DType::U8,
        Elem::Bool => DType::Bool(BoolStore::Native),
        // `pytorch_elem` and `safetensors_elem` never give one: checkpoints hold no strings.
        Elem::String => unreachable!("a checkpoint tensor of strings"),
    }
}

/// The burnpack bytes of the plan. Each tensor is read (and transposed) only when the writer
/// reaches it.
fn convert(plan: &Plan, checkpoint: &Checkpoint, input: &Path) -> Result<Vec<u8>> {
    let mut tensors = Vec::with_capacity(plan.entries.len());
    for entry in &plan.entries {
        let read = checkpoint
            .readers
            .get(&entry.source)
            .cloned()
            .with_context(|| format!("tensor `{}` has no data", entry.source))?;
        let (source, elem, shape, transpose) =
            (entry.source.clone(), entry.dtype, entry.shape.clone(), entry.transpose);
        let byte_len = entry.elements() * elem.byte_size();
        let provider = move || -> std::result::Result<Bytes, burn_pack::Error> {
            let fail = |message: String| burn_pack::Error::IoError(format!("tensor `{source}`: {message}"));
            let mut data = read().map_err(|e| fail(e.to_string()))?;
            if data.len() != byte_len {
                return Err(fail(format!(
                    "{shape:?} of {elem} needs {byte_len} bytes, the file holds {}",
                    data.len()
                )));
            }
            if transpose {
                // The entry's shape is already swapped: the source is [shape[1], shape[0]].
                data = transpose_2d(&data, shape[1], shape[0], elem.byte_size())
                    .map_err(|e| fail(e.to_string()))?;
            }
            if elem == Elem::Bool {
                data.iter_mut().for_each(|b| *b = u8::from(*b != 0));
            }
            Ok(Bytes::from_bytes_vec(data))
        };
        tensors.push(burn_pack::Tensor::deferred(
            entry.target.clone(),
            pack_dtype(elem),
            entry.shape.clone(),
            None,
            byte_len,
            provider,
        ));
    }
    let source = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let writer = burn_pack::Writer::new(tensors)
        .with_metadata("format", "burnpack")
        .with_metadata("producer", "brasa import")
        .with_metadata("version", env!("CARGO_PKG_VERSION"))
        .with_metadata("source", &source);
    let bytes = writer
        .into_bytes()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("converting {}", input.display()))?;
    Ok(bytes.to_vec())
}

/// Write next to the target, then rename: a reader never sees half a file, and a failed write
/// leaves whatever was there.
fn write_atomically(output: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let name = output.file_name().with_context(|| format!("{} has no file name", output.display()))?;
    let tmp = output.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let written =
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display())).and_then(|()| {
            std::fs::rename(&tmp, output)
                .with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))
        });
    if written.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    written
}

/// Generate a burn module from an ONNX graph (burn-onnx), weights as burnpack beside it.
/// With `brasa_kernels`, operators brasa has a faster CPU kernel for call it
/// ([`crate::onnx_kernels`]); without, the module uses burn's operators only.
pub fn onnx(input: &Path, out: &Path, brasa_kernels: bool) -> Result<()> {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{} has no file name", input.display()))?;
    let input_text = input.to_str().context("the ONNX path must be UTF-8")?;
    let out_text = out.to_str().context("the output path must be UTF-8")?;
    if !input.is_file() {
        bail!("{} is not a file", input.display());
    }
    std::fs::create_dir_all(out)?;
    // burn-onnx logs every step at DEBUG unless a subscriber is already installed.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        // Colour codes only on a terminal: `brasa build` runs this with stderr piped.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    // It reports an unsupported or malformed graph by panicking: catch the message, quietly,
    // and return it as an error.
    let message = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = message.clone();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut m) = sink.lock() {
            *m = info.payload_as_str().unwrap_or("unknown error").to_string();
        }
    }));
    let generated = std::panic::catch_unwind(|| {
        // No loading code in the module: brasa loads weights itself, and the module then needs
        // neither burn-store nor its features in the wasm builds.
        let mut generator = burn_onnx::ModelGen::new();
        generator.input(input_text).out_dir(out_text).load_strategy(burn_onnx::LoadStrategy::None);
        if brasa_kernels {
            generator.register_op_override(crate::onnx_kernels::MaxPool2d);
            generator.register_op_override(crate::onnx_kernels::Conv2d);
        }
        generator.run_from_cli()
    });
    std::panic::set_hook(previous_hook);
    if generated.is_err() {
        let message = message.lock().map(|m| m.clone()).unwrap_or_default();
        bail!("burn-onnx could not import {}: {message}", input.display());
    }
    // burn-onnx names the absolute input path in its header comment: keep only the file name,
    // so the same graph generates the same source wherever it lies (build caches key on it).
    let source = out.join(format!("{stem}.rs"));
    let text = std::fs::read_to_string(&source)?;
    let text = text.replacen(input_text, &format!("{stem}.onnx"), 1);
    let text = if brasa_kernels { fuse_activations(&text) } else { text };
    std::fs::write(&source, saturating_tanh(&text))?;
    let weights = out.join(format!("{stem}.bpk"));
    let summary = brasa::inspect_weights(&std::fs::read(&weights)?)?;
    println!(
        "generated {} and {} ({} tensors, {} parameters)",
        out.join(format!("{stem}.rs")).display(),
        weights.display(),
        summary.tensors.len(),
        summary.parameters
    );
    Ok(())
}

/// Validate a burnpack file and print what it holds: each tensor's name, shape and dtype.
/// Every `Tanh` node through `brasa::ops::tanh`, which saturates on WebGPU where WGSL's `tanh`
/// gives NaN for large inputs (silero-vad's LSTM state). burn-onnx's op overrides do not reach
/// inside `If`/`Loop` bodies, where silero's LSTM sits, so the line burn-onnx generates for each
/// Tanh node, `let y = x.tanh();` (or `x.clone().tanh()`), is rewritten instead.
fn saturating_tanh(source: &str) -> String {
    static TANH: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"let (\w+) = (\w+(?:\.clone\(\))?)\.tanh\(\);").expect("a valid pattern")
    });
    TANH.replace_all(source, "let $1 = brasa::ops::tanh($2);").into_owned()
}

/// A `Relu` or `Clip` right after a `Conv` that brasa's kernel runs
/// ([`crate::onnx_kernels::Conv2d`]) is applied as the convolution stores its result
/// (`forward_relu`, `forward_clip`) instead of in a second pass over the tensor, when nothing
/// else reads the convolution's output. burn-onnx's overrides see one node at a time, so the
/// pair of lines it generates is rewritten here.
fn fuse_activations(source: &str) -> String {
    use regex::Regex;
    use std::sync::LazyLock;
    static CONV: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(\s*)let (\w+) = self\.(\w+)\.forward\((.+)\);$").expect("a valid pattern")
    });
    static RELU: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*let (\w+) = burn::tensor::activation::relu\((\w+)\);$").expect("a valid pattern")
    });
    static CLIP: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\s*let (\w+) = (\w+)\.clamp\(([^,()]+), ([^,()]+)\);$").expect("a valid pattern")
    });
    static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\w+").expect("a valid pattern"));
    let uses = |name: &str| WORD.find_iter(source).filter(|w| w.as_str() == name).count();
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let fused = CONV.captures(lines[i]).and_then(|conv| {
            let next = lines.get(i + 1)?;
            let (indent, value, field, input) = (&conv[1], &conv[2], &conv[3], &conv[4]);
            if !source.contains(&format!("{field}: brasa::ops::Conv2d,")) || uses(value) != 2 {
                return None;
            }
            if let Some(relu) = RELU.captures(next).filter(|r| &r[2] == value) {
                return Some(format!("{indent}let {} = self.{field}.forward_relu({input});", &relu[1]));
            }
            let clip = CLIP.captures(next).filter(|c| &c[2] == value)?;
            Some(format!(
                "{indent}let {} = self.{field}.forward_clip({input}, {}, {});",
                &clip[1], &clip[3], &clip[4]
            ))
        });
        match fused {
            Some(line) => {
                out.push(line);
                i += 2;
            }
            None => {
                out.push(lines[i].to_string());
                i += 1;
            }
        }
    }
    let mut text = out.join("\n");
    if source.ends_with('\n') {
        text.push('\n');
    }
    text
}

pub fn inspect(weights: &Path) -> Result<()> {
    let bytes = std::fs::read(weights).with_context(|| format!("reading {}", weights.display()))?;
    let summary = brasa::inspect_weights(&bytes)?;
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("reading {}", weights.display()))?;
    let dtypes: HashMap<String, DType> =
        reader.into_tensors().map_err(|e| anyhow!("{e}"))?.into_iter().map(|t| (t.name, t.dtype)).collect();
    let width = summary.tensors.iter().map(|(name, _)| name.len()).max().unwrap_or(0).max(16);
    let shapes: Vec<String> = summary.tensors.iter().map(|(_, shape)| format!("{shape:?}")).collect();
    let shape_width = shapes.iter().map(String::len).max().unwrap_or(0);
    for ((name, _), shape) in summary.tensors.iter().zip(&shapes) {
        let dtype = dtypes.get(name).map_or_else(|| "?".to_string(), |d| dtype_name(*d));
        println!("{name:<width$} {shape:<shape_width$} {dtype}");
    }
    println!(
        "{} tensors, {} parameters, {} bytes, {}",
        summary.tensors.len(),
        summary.parameters,
        summary.bytes,
        summary.dtype
    );
    Ok(())
}

/// `brasa quantize`: f32 weights re-encoded as f16 or q8 (see `brasa::encode_weights`),
/// checked as brasa checks weights before loading, written atomically.
pub fn quantize(input: &Path, dtype: brasa::WeightsDtype, output: &Path) -> Result<()> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let found =
        brasa::inspect_weights(&bytes).with_context(|| format!("checking {}", input.display()))?.dtype;
    if found != brasa::WeightsDtype::F32 {
        bail!("{} holds {found} weights already: quantise the f32 weights they came from", input.display());
    }
    let encoded = brasa::encode_weights(&bytes, dtype)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("quantising {}", input.display()))?;
    let summary = brasa::inspect_weights(&encoded).map_err(|e| anyhow!("{e}"))?;
    write_atomically(output, &encoded)?;
    println!(
        "{} -> {} ({dtype}): {} -> {} bytes ({:.1}%)",
        input.display(),
        output.display(),
        bytes.len(),
        summary.bytes,
        100.0 * summary.bytes as f64 / bytes.len() as f64
    );
    Ok(())
}

/// brasa's name for a burnpack dtype (`float32`, …).
fn dtype_name(dtype: DType) -> String {
    match dtype {
        DType::F64 => "float64".into(),
        DType::F32 | DType::Flex32 => "float32".into(),
        DType::F16 => "float16".into(),
        DType::BF16 => "bfloat16".into(),
        DType::I64 => "int64".into(),
        DType::I32 => "int32".into(),
        DType::I16 => "int16".into(),
        DType::I8 => "int8".into(),
        DType::U64 => "uint64".into(),
        DType::U32 => "uint32".into(),
        DType::U16 => "uint16".into(),
        DType::U8 => "uint8".into(),
        DType::Bool(_) => "bool".into(),
        DType::QFloat(scheme) => match scheme.block_size() {
            Some(block) => format!("q8 (block {:?})", block.as_slice()),
            None => "q8 (per tensor)".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuses_a_relu_or_clip_only_into_brasas_conv_and_only_when_nothing_else_reads_it() {
        let generated = "pub struct Model {
    conv2d1: brasa::ops::Conv2d,
    conv2d2: brasa::ops::Conv2d,
    conv2d3: brasa::ops::Conv2d,
    linear1: Linear,
}
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let conv2d1_out1 = self.conv2d1.forward(x);
        let relu1_out1 = burn::tensor::activation::relu(conv2d1_out1);
        let conv2d2_out1 = self.conv2d2.forward(relu1_out1.clone());
        let clip1_out1 = conv2d2_out1.clamp(0f64, 6f64);
        let conv2d3_out1 = self.conv2d3.forward(relu1_out1);
        let relu2_out1 = burn::tensor::activation::relu(conv2d3_out1.clone());
        let add1_out1 = conv2d3_out1.add(relu2_out1);
        let linear1_out1 = self.linear1.forward(add1_out1);
        let relu3_out1 = burn::tensor::activation::relu(linear1_out1);
        relu3_out1
    }
";
        let fused = super::fuse_activations(generated);
        assert!(fused.contains("let relu1_out1 = self.conv2d1.forward_relu(x);"), "{fused}");
        assert!(
            fused.contains("let clip1_out1 = self.conv2d2.forward_clip(relu1_out1.clone(), 0f64, 6f64);"),
            "{fused}"
        );
        // conv2d3's output is read twice; linear1 is no brasa conv.
        assert!(fused.contains("let conv2d3_out1 = self.conv2d3.forward(relu1_out1);"), "{fused}");
        assert!(fused.contains("let relu3_out1 = burn::tensor::activation::relu(linear1_out1);"), "{fused}");
        assert_eq!(fused.lines().count(), generated.lines().count() - 2);
    }

    #[test]
    fn every_generated_tanh_saturates() {
        let generated = "        let tanh13_out1 = split7_out3.tanh();\n        let tanh14_out1 = add21_out1.clone().tanh();\n        let y = x.tanh_shrink();\n";
        let rewritten = super::saturating_tanh(generated);
        assert_eq!(rewritten.matches("brasa::ops::tanh(").count(), 2, "{rewritten}");
        assert!(rewritten.contains("let tanh14_out1 = brasa::ops::tanh(add21_out1.clone());"));
        assert!(!rewritten.contains(".tanh()"));
        assert!(rewritten.contains("x.tanh_shrink()"));
    }
}
