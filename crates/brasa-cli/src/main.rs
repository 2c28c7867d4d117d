//! `brasa`: import weights, run a model natively, and serve the demo.

mod bench;
mod import;
mod onnx_kernels;
mod predict;
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
    Import {
        /// The architecture the weights are for.
        #[arg(long, default_value = "mnist")]
        model: String,
        /// The PyTorch file to read.
        input: PathBuf,
        /// Where to write the burnpack file.
        #[arg(short, long)]
        output: PathBuf,
    },
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
    /// Describe a burnpack weights file (tensors, shapes, parameter count) after validating it.
    Inspect {
        /// The burnpack file.
        weights: PathBuf,
    },
    /// Run a model natively on images and print its predictions.
    Predict {
        /// The architecture.
        #[arg(long, default_value = "mnist")]
        model: String,
        /// Burnpack weights.
        #[arg(long)]
        weights: PathBuf,
        /// `auto` (GPU when present, else CPU), `cpu` (burn-flex) or `webgpu` (wgpu: Vulkan,
        /// Metal or DX12 natively).
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Invert intensities, for dark digits on a light background.
        #[arg(long)]
        invert: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// PNG images (any size; converted to 28x28 grayscale).
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Measure native CPU latency per batch size (median and p90 ms per call, as JSON).
    Bench {
        /// The architecture.
        #[arg(long, default_value = "mnist")]
        model: String,
        /// Burnpack weights.
        #[arg(long)]
        weights: PathBuf,
        /// Batch sizes.
        #[arg(long = "batch", default_values_t = [1usize, 32])]
        batches: Vec<usize>,
        /// Calls before timing starts.
        #[arg(long, default_value_t = 200)]
        warmup: usize,
        /// Timed calls per batch size.
        #[arg(long, default_value_t = 300)]
        runs: usize,
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import { model, input, output } => import::run(&model, &input, &output),
        Command::ImportOnnx { input, out, burn_ops } => import::onnx(&input, &out, !burn_ops),
        Command::Inspect { weights } => import::inspect(&weights),
        Command::Predict { model, weights, backend, invert, json, images } => {
            predict::run(&model, &weights, &backend, invert, json, &images)
        }
        Command::Bench { model, weights, batches, warmup, runs } => {
            bench::run(&model, &weights, &batches, warmup, runs)
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
