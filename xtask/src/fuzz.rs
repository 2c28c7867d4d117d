//! `cargo xtask fuzz`: brasa's fuzz targets (`fuzz/`, cargo-fuzz's layout) built with libFuzzer
//! (`libfuzzer-sys`) and the sanitizer-coverage flags cargo-fuzz passes, all of them stable
//! Rust, so neither cargo-fuzz nor a nightly toolchain is needed. They build in a target dir of
//! their own: the instrumented build would otherwise invalidate the shared one's cache.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::paths;
use crate::util::{self, in_root};

/// Every fuzz target: a `[[bin]]` of `fuzz/Cargo.toml` and a seed folder `fuzz/corpus/<target>`.
pub const TARGETS: [&str; 6] = ["manifest", "spec", "resolve", "kserve_json", "kserve_binary", "weights"];

/// What cargo-fuzz passes to rustc (`--sanitizer none`): libFuzzer's coverage feedback
/// (8-bit counters, the PC table, comparison operands) and `cfg(fuzzing)`.
const SANCOV: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing";

/// Seconds per target in `cargo xtask test`: enough to replay the seeds and mutate them a
/// little, so a target that no longer builds or a seed that now fails is caught.
pub const CI_SECONDS: u64 = 15;

/// Build every target; returns the folder holding the binaries.
pub fn build() -> Result<PathBuf> {
    // RUSTFLAGS apply to the `--target` build only, not to build scripts and proc macros.
    let host = host_triple()?;
    let target_dir = paths::home_cache().join("fuzz-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    util::run(
        Command::new(cargo)
            .current_dir(paths::root().join("fuzz"))
            .args(["build", "--locked", "--release", "--bins", "--target", &host, "--target-dir"])
            .arg(&target_dir)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("RUSTFLAGS", SANCOV),
    )?;
    Ok(target_dir.join(host).join("release"))
}

/// Run `targets` (all when empty) for `seconds` each, one after the other. New inputs go to
/// `.cache/fuzz/corpus/<target>` (the committed seeds in `fuzz/corpus/<target>` are only
/// read); a crash, a failed assertion, a timeout or an out-of-memory stops with the input
/// saved under `.cache/fuzz/artifacts/<target>/`.
pub fn run(targets: &[String], seconds: u64, rss_limit_mb: u32) -> Result<()> {
    let targets: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!("unknown fuzz target `{t}`; the targets are {}", TARGETS.join(", "));
            }
        }
        targets.iter().map(String::as_str).collect()
    };
    let bin = build()?;
    for target in targets {
        let work = paths::local_cache().join("fuzz/corpus").join(target);
        let artifacts = paths::local_cache().join("fuzz/artifacts").join(target);
        std::fs::create_dir_all(&work)?;
        std::fs::create_dir_all(&artifacts)?;
        let seeds = paths::root().join("fuzz/corpus").join(target);
        let mut prefix = artifacts.into_os_string();
        prefix.push("/");
        let mut artifact_prefix = std::ffi::OsString::from("-artifact_prefix=");
        artifact_prefix.push(&prefix);
        eprintln!("fuzzing `{target}` for {seconds} s");
        util::run(
            in_root(bin.join(target))
                .arg(format!("-max_total_time={seconds}"))
                .arg(format!("-rss_limit_mb={rss_limit_mb}"))
                // An input that takes seconds is a finding too (quadratic parsing).
                .arg("-timeout=10")
                .arg("-print_final_stats=1")
                .arg(artifact_prefix)
                .arg(&work)
                .arg(&seeds),
        )
        .with_context(|| {
            format!(
                "fuzz target `{target}` failed; the input is in {}, replay it with `{} <file>`, and \
                 add it to the crate's unit tests once fixed",
                prefix.to_string_lossy(),
                bin.join(target).display()
            )
        })?;
    }
    Ok(())
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = util::output(Command::new(rustc).arg("-vV")).context("running `rustc -vV`")?;
    out.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_owned).context("`rustc -vV` names no host")
}
