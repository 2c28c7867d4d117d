//! `brasa`: import weights, run a model natively, and serve the demo.

mod build;
mod import;
mod mapping;
mod onnx_crate;
mod onnx_kernels;
mod registry;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "brasa", version, about = "Serve Burn models in browsers and at the edge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a PyTorch state dict (.pth) into burnpack weights for a brasa model.
    /// Convert a PyTorch state dict (.pth, .pt, .bin) or a .safetensors file into burnpack
    /// weights for any model: rename, transpose and drop tensors as a mapping says
    /// (`--map FILE`, `--rename`, `--transpose`, `--drop`).
    Import(import::ImportArgs),
    /// Turn an ONNX graph into a burn module (Rust source) and its burnpack weights, with
    /// burn-onnx: writes `<name>.rs` and `<name>.bpk` to `--out`. The module depends on
    /// `burn` and `brasa` (for brasa's CPU kernels).
    ImportOnnx {
        /// The ONNX file.
        input: PathBuf,
        /// Output folder.
        #[arg(short, long)]
        out: PathBuf,
        /// Generate burn's operators only, without brasa's CPU kernels.
        #[arg(long)]
        burn_ops: bool,
    },
    /// Re-encode f32 burnpack weights as f16 (every float tensor) or q8 (int8 with one f32
    /// scale per block of at most 64 values, burn's Q8S scheme, for float tensors of 2+
    /// dimensions and 1,024+ elements; the rest stays f32). brasa's builds load either.
    Quantize {
        /// The f32 burnpack file.
        input: PathBuf,
        /// The encoding: f16 or q8 (f32 copies).
        #[arg(long)]
        dtype: brasa::WeightsDtype,
        /// Where to write the result.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Describe a burnpack weights file (tensors, shapes, dtypes, parameter count) after
    /// validating it.
    Inspect {
        /// The burnpack file.
        weights: PathBuf,
    },
    /// Turn a Burn crate that implements `brasa::Model` into a model package: the CPU and
    /// WebGPU wasm builds of that model alone, JS glue, `model.json`, `index.js` and
    /// TypeScript types. Cached: an unchanged model builds in seconds.
    Build {
        /// The model crate's folder (its Cargo.toml names the type in
        /// `[package.metadata.brasa] model = "crate::Type"`).
        #[arg(value_name = "CRATE", required_unless_present = "onnx", conflicts_with = "onnx")]
        crate_dir: Option<PathBuf>,
        /// Build from an ONNX file instead: the model crate is generated with burn-onnx (and
        /// brasa's operator overrides); its weights are written as `weights.bpk`.
        #[arg(long, requires = "name")]
        onnx: Option<PathBuf>,
        /// The model's name, with --onnx (`[a-z0-9-]`).
        #[arg(long)]
        name: Option<String>,
        /// Output folder: the package (replaced whole, never half-written).
        #[arg(short, long)]
        out: PathBuf,
        /// Builds to make: cpu (simd128, one thread), cpu-relaxed (relaxed SIMD),
        /// cpu-threads and cpu-threads-relaxed (wasm threads: pages that are cross-origin
        /// isolated; need `rustup component add rust-src`), webgpu. Default: all of them.
        #[arg(long = "backend", value_delimiter = ',', default_values_t = build::BUILDS.map(String::from))]
        backends: Vec<String>,
        /// Which builds to optimise with wasm-opt: none, cpu (the default of release builds;
        /// the WebGPU build takes minutes) or all. Test builds default to none.
        #[arg(long)]
        opt: Option<String>,
        /// Cargo profile of the wasm builds: `release` (thin LTO: smallest and fastest, a
        /// WebGPU build links in minutes) or `test` (no LTO: links in seconds, a larger wasm
        /// with the same numerics; what brasa's own test runs use).
        #[arg(long, default_value = "release", value_parser = ["release", "test"])]
        profile: String,
    },
    /// Manage a static model registry (a folder any static host or CDN can serve).
    Registry {
        /// The registry's root folder.
        #[arg(long, default_value = "registry")]
        registry: PathBuf,
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
    /// Serve a folder over HTTP with the headers brasa's pages need (cross-origin isolation,
    /// wasm MIME type).
    Serve {
        /// The folder to serve.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port; 0 picks a free one.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

fn main() -> ExitCode {
    // `brasa build` runs rustc through this binary in relaxed-SIMD builds (RUSTC_WRAPPER).
    if let Some(code) = build::rustc_wrapper() {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(args) => import::run(&args),
        Command::ImportOnnx { input, out, burn_ops } => import::onnx(&input, &out, !burn_ops),
        Command::Inspect { weights } => import::inspect(&weights),
        Command::Quantize { input, dtype, out } => import::quantize(&input, dtype, &out),
        Command::Build { crate_dir, onnx, name, out, backends, opt, profile } => {
            let onnx = onnx.zip(name);
            let opt = opt.unwrap_or_else(|| if profile == "test" { "none" } else { "cpu" }.into());
            build::build(&build::BuildOptions { crate_dir, onnx, out, backends, opt, profile })
        }
        Command::Registry { registry, command } => registry::run(&registry, command),
        Command::Serve { dir, host, port } => serve::run(&dir, &host, port),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
