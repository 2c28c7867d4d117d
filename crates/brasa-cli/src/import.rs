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
    let text = if brasa_kernels { fuse_epilogues(&text) } else { text };
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

/// Element-wise steps right after a `Conv` that brasa's kernel runs
/// ([`crate::onnx_kernels::Conv2d`]) are applied as the convolution stores its result instead
/// of in passes of their own over the tensor (what onnxruntime's graph optimiser does too):
/// `Mul` and `Add` by one-element constants (`scale`, `shift`), `Relu`, `Clip`, and hard-swish as exporters
/// spell it out (`x · Clip(x + c, 0, 6) / d`), each only when nothing else reads the value it
/// takes. A `Relu` or `Clip` alone becomes `forward_relu`/`forward_clip`; longer chains
/// `forward_fused` with a [`brasa::ops::ConvEpilogue`] (PP-LCNet: convolution, affine,
/// hard-swish, affine; 8 passes per block before). burn-onnx's overrides see one node at a
/// time, so the statements it generates are rewritten here.
fn fuse_epilogues(source: &str) -> String {
    use regex::Regex;
    use std::sync::LazyLock;
    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).expect("a valid pattern")
    }
    // Constants broadcast the way burn-onnx broadcasts a `[1]` initializer to rank 4.
    const WIDE: &str = r"\((\w+)\)\.unsqueeze_dims\(&\[0isize, 1isize, 2isize\]\)";
    static CONV: LazyLock<Regex> = LazyLock::new(|| re(r"^let (\w+) = self\.(\w+)\.forward\((.+)\);$"));
    static CONST: LazyLock<Regex> = LazyLock::new(|| re(r"^let (\w+) = (self\.\w+\.val\(\));$"));
    static MUL: LazyLock<[Regex; 2]> = LazyLock::new(|| {
        [
            re(&format!(r"^let (\w+) = {WIDE}\.mul\((\w+)\);$")),
            re(&format!(r"^let (\w+) = (\w+)\.mul\({WIDE}\);$")),
        ]
    });
    static ADD: LazyLock<[Regex; 2]> = LazyLock::new(|| {
        [
            re(&format!(r"^let (\w+) = {WIDE}\.add\((\w+)\);$")),
            re(&format!(r"^let (\w+) = (\w+)\.add\({WIDE}\);$")),
        ]
    });
    static RELU: LazyLock<Regex> =
        LazyLock::new(|| re(r"^let (\w+) = burn::tensor::activation::relu\((\w+)\);$"));
    static CLIP: LazyLock<Regex> =
        LazyLock::new(|| re(r"^let (\w+) = (\w+)\.clamp\(([^,()]+), ([^,()]+)\);$"));
    static SWISH_ADD: LazyLock<Regex> =
        LazyLock::new(|| re(&format!(r"^let (\w+) = (\w+)\.clone\(\)\.add\({WIDE}\);$")));
    static SWISH_MUL: LazyLock<Regex> = LazyLock::new(|| re(r"^let (\w+) = (\w+)\.mul\((\w+)\);$"));
    static SWISH_DIV: LazyLock<Regex> =
        LazyLock::new(|| re(&format!(r"^let (\w+) = (\w+)\.div\({WIDE}\);$")));
    static WORD: LazyLock<Regex> = LazyLock::new(|| re(r"\w+"));
    static SPACE: LazyLock<Regex> = LazyLock::new(|| re(r"\s+"));

    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for word in WORD.find_iter(source) {
        *counts.entry(word.as_str()).or_default() += 1;
    }
    let uses = |name: &str| counts.get(name).copied().unwrap_or(0);
    // Statements: a `let` and its continuation lines, whitespace normalised; other lines alone.
    struct Item {
        lines: Vec<String>,
        text: Option<String>,
    }
    let mut items: Vec<Item> = Vec::new();
    let mut open: Option<Vec<String>> = None;
    for line in source.lines() {
        match open.as_mut() {
            Some(lines) => lines.push(line.to_string()),
            None if line.trim_start().starts_with("let ") => open = Some(vec![line.to_string()]),
            None => items.push(Item { lines: vec![line.to_string()], text: None }),
        }
        if open.is_some() && line.trim_end().ends_with(';') {
            let lines = open.take().unwrap_or_default();
            let joined = SPACE.replace_all(lines.join(" ").trim(), " ").replace(" .", ".").replace("( ", "(");
            items.push(Item { lines, text: Some(joined) });
        }
    }
    if let Some(lines) = open {
        items.extend(lines.into_iter().map(|l| Item { lines: vec![l], text: None }));
    }
    let text = |i: usize| items.get(i).and_then(|item| item.text.as_deref()).unwrap_or("");

    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut i = 0;
    while i < items.len() {
        let conv =
            CONV.captures(text(i)).filter(|c| source.contains(&format!("{}: brasa::ops::Conv2d,", &c[2])));
        let Some(conv) = conv else {
            out.extend(items[i].lines.iter().cloned());
            i += 1;
            continue;
        };
        let (field, input) = (conv[2].to_string(), conv[3].to_string());
        let mut current = conv[1].to_string();
        let mut steps: Vec<String> = Vec::new();
        // Constants loaded since the last step taken: `let k = self.constantN.val();`.
        let mut loaded = std::collections::HashMap::<String, String>::new();
        let (mut j, mut end) = (i + 1, i + 1);
        // The constant `name` stands for, if loaded just before and read once.
        let constant = |loaded: &std::collections::HashMap<String, String>, name: &str| {
            loaded.get(name).filter(|_| uses(name) == 2).cloned()
        };
        loop {
            let t = text(j);
            if let Some(c) = CONST.captures(t) {
                loaded.insert(c[1].to_string(), c[2].to_string());
                j += 1;
                continue;
            }
            let once = uses(&current) == 2;
            let mut step = None;
            for (regexes, op) in [(&*MUL, "scale"), (&*ADD, "shift")] {
                for (n, r) in regexes.iter().enumerate() {
                    let Some(c) = r.captures(t) else { continue };
                    let (k, value) = if n == 0 { (&c[2], &c[3]) } else { (&c[3], &c[2]) };
                    if once
                        && value == current
                        && let Some(k) = constant(&loaded, k)
                    {
                        step = Some((c[1].to_string(), format!(".{op}({k})"), j + 1));
                    }
                }
            }
            if step.is_none() && once {
                if let Some(c) = RELU.captures(t).filter(|c| c[2] == current) {
                    step = Some((c[1].to_string(), ".relu()".to_string(), j + 1));
                } else if let Some(c) = CLIP.captures(t).filter(|c| c[2] == current) {
                    step = Some((c[1].to_string(), format!(".clip({}, {})", &c[3], &c[4]), j + 1));
                }
            }
            // Hard-swish: `a = x.clone().add(c)`, `g = a.clamp(lo, hi)`, `m = x.mul(g)`, then
            // (a constant loaded, perhaps) `d = m.div(k)`; `x` read by the first and third alone.
            if step.is_none()
                && uses(&current) == 3
                && let Some(a) = SWISH_ADD.captures(t).filter(|c| c[2] == current && uses(&c[1]) == 2)
                && let Some(add) = constant(&loaded, &a[3])
                && let Some(g) = CLIP.captures(text(j + 1)).filter(|c| c[2] == a[1] && uses(&c[1]) == 2)
                && let Some(m) = SWISH_MUL
                    .captures(text(j + 2))
                    .filter(|c| c[2] == current && c[3] == g[1] && uses(&c[1]) == 2)
            {
                let mut d = j + 3;
                let mut div_loaded = loaded.clone();
                while let Some(c) = CONST.captures(text(d)) {
                    div_loaded.insert(c[1].to_string(), c[2].to_string());
                    d += 1;
                }
                if let Some(div) = SWISH_DIV.captures(text(d)).filter(|c| c[2] == m[1])
                    && let Some(k) = constant(&div_loaded, &div[3])
                {
                    step = Some((
                        div[1].to_string(),
                        format!(".hard_swish({add}, {}, {}, {k})", &g[3], &g[4]),
                        d + 1,
                    ));
                    loaded = div_loaded;
                }
            }
            let Some((value, call, next)) = step else { break };
            current = value;
            steps.push(call);
            j = next;
            end = next;
        }
        if steps.is_empty() {
            out.extend(items[i].lines.iter().cloned());
            i += 1;
            continue;
        }
        let indent: String = items[i].lines[0].chars().take_while(|c| c.is_whitespace()).collect();
        let call = match steps.as_slice() {
            [relu] if relu == ".relu()" => format!("forward_relu({input})"),
            [clip] if clip.starts_with(".clip(") => {
                format!("forward_clip({input}, {}", &clip[".clip(".len()..])
            }
            _ => format!("forward_fused({input}, brasa::ops::ConvEpilogue::new(){})", steps.concat()),
        };
        out.push(format!("{indent}let {current} = self.{field}.{call};"));
        // Constants loaded inside the chain but read by no step stay.
        for item in &items[i + 1..end] {
            if let Some(c) = CONST.captures(item.text.as_deref().unwrap_or(""))
                && !out.last().is_some_and(|l| l.contains(&c[2]))
            {
                out.extend(item.lines.iter().cloned());
            }
        }
        i = end;
    }
    let mut text = out.join("\n");
    if source.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Validate a burnpack file and print what it holds: each tensor's name, shape and dtype.
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
        let fused = super::fuse_epilogues(generated);
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

    /// PP-LCNet's block as burn-onnx 0.22 writes it: convolution, affine, hard-swish spelled
    /// out, affine, then the next convolution; the chain becomes one `forward_fused`, the
    /// constants it reads move into it, and a chain whose value is read twice stops there.
    #[test]
    fn fuses_affine_and_hard_swish_chains_into_brasas_conv() {
        let generated = "pub struct Submodule1 {
    conv2d2: brasa::ops::Conv2d,
    conv2d3: brasa::ops::Conv2d,
}
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let conv2d2_out1 = self.conv2d2.forward(x);
        let constant131_out1 = self.constant131.val();
        let mul1_out1 = (constant131_out1)
            .unsqueeze_dims(&[0isize, 1isize, 2isize])
            .mul(conv2d2_out1);
        let constant132_out1 = self.constant132.val();
        let add1_out1 = mul1_out1
            .add((constant132_out1).unsqueeze_dims(&[0isize, 1isize, 2isize]));
        let constant236_out1 = self.constant236.val();
        let add2_out1 = add1_out1
            .clone()
            .add((constant236_out1).unsqueeze_dims(&[0isize, 1isize, 2isize]));
        let clip1_out1 = add2_out1.clamp(0f64, 6f64);
        let mul2_out1 = add1_out1.mul(clip1_out1);
        let constant235_out1 = self.constant235.val();
        let div1_out1 = mul2_out1
            .div((constant235_out1).unsqueeze_dims(&[0isize, 1isize, 2isize]));
        let constant187_out1 = self.constant187.val();
        let mul3_out1 = (constant187_out1)
            .unsqueeze_dims(&[0isize, 1isize, 2isize])
            .mul(div1_out1);
        let constant188_out1 = self.constant188.val();
        let add3_out1 = mul3_out1
            .add((constant188_out1).unsqueeze_dims(&[0isize, 1isize, 2isize]));
        let conv2d3_out1 = self.conv2d3.forward(add3_out1);
        let constant133_out1 = self.constant133.val();
        let mul4_out1 = (constant133_out1)
            .unsqueeze_dims(&[0isize, 1isize, 2isize])
            .mul(conv2d3_out1);
        let constant9_out1 = self.constant9.val();
        let add4_out1 = mul4_out1.add(constant9_out1.clone());
        let other = mul4_out1.add(constant9_out1);
        add4_out1
    }
";
        let fused = super::fuse_epilogues(generated);
        let want = "        let add3_out1 = self.conv2d2.forward_fused(x, brasa::ops::ConvEpilogue::new()\
            .scale(self.constant131.val()).shift(self.constant132.val())\
            .hard_swish(self.constant236.val(), 0f64, 6f64, self.constant235.val())\
            .scale(self.constant187.val()).shift(self.constant188.val()));";
        assert!(fused.contains(want), "{fused}");
        // The next chain: the multiply joins; the add's constant is no `[1]` broadcast, and
        // `mul4_out1` is read twice anyway: it stops.
        assert!(
            fused.contains("        let mul4_out1 = self.conv2d3.forward_fused(add3_out1, brasa::ops::ConvEpilogue::new().scale(self.constant133.val()));"),
            "{fused}"
        );
        assert!(fused.contains("        let constant9_out1 = self.constant9.val();"), "{fused}");
        assert!(fused.contains("        let other = mul4_out1.add(constant9_out1);"), "{fused}");
        for gone in
            ["constant131_out1", "mul1_out1", "clip1_out1", "div1_out1", "constant188_out1", "conv2d3_out1"]
        {
            assert!(!fused.contains(gone), "{gone} left in {fused}");
        }
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
