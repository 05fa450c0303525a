//! Builds the XDP programs (farm-ebpf's binaries, for bpfel-unknown-none with the nightly
//! and `-Z build-std=core`) so the `farm` binary can embed them. `AYA_BUILD_SKIP=1` skips
//! that for work on pure userspace logic; the binary then says the program is missing
//! when asked to load it.
//!
//! This is what aya-build does, plus one flag it has no way to pass:
//! `allows-misaligned-mem-access`. Packet headers sit at any alignment; without the flag
//! LLVM splits every load it cannot prove aligned into single bytes, and with typed
//! (aligned) loads instead it may infer contradictory alignments and drop code paths.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

const PROGRAMS: [&str; 2] = ["farm-xdp", "farm-baseline"];

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    for dir in ["../farm-ebpf", "../farm-common"] {
        println!("cargo:rerun-if-changed={}", manifest.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!("cargo:warning=AYA_BUILD_SKIP is set: the farm binary will have no XDP program");
        for program in PROGRAMS {
            fs::write(out_dir.join(program), b"")?;
        }
        return Ok(());
    }
    let target_dir = ebpf_target_dir(&out_dir);
    build(&manifest.join("../farm-ebpf"), &target_dir)?;
    for program in PROGRAMS {
        let built = target_dir.join("bpfel-unknown-none/release").join(program);
        fs::copy(&built, out_dir.join(program))
            .with_context(|| format!("copy {}", built.display()))?;
    }
    Ok(())
}

/// Where the eBPF crate builds: one directory beside the profile's `build/`, not one per
/// run of this script. Cargo runs it once for each variant of farm-userspace it builds
/// (`cargo build`, the tests' `bench` feature, clippy's own), and the program, always the
/// same release build, then compiles once for all of them. In an unknown layout, OUT_DIR.
fn ebpf_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is PROFILE_DIR/build/farm-userspace-HASH/out.
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .filter(|_| out_dir.ancestors().nth(2).and_then(Path::file_name) == Some("build".as_ref()));
    profile_dir.unwrap_or(out_dir).join("ebpf-target")
}

fn build(crate_dir: &Path, target_dir: &Path) -> anyhow::Result<()> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    let flags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".into(),
        "-Clink-arg=--btf".into(),
        "-Ctarget-feature=+allows-misaligned-mem-access".into(),
    ]
    .join("\x1f");
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build", "--bins", "--release"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(crate_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags);
    // The outer build's compiler settings are for the host with stable Rust, not ours.
    for key in ["RUSTC", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS", "CARGO_TARGET_DIR"] {
        cmd.env_remove(key);
    }
    let out = cmd.output().context("run `rustup run nightly cargo build` for farm-ebpf (is rustup installed? `cargo xtask setup`)")?;
    if !out.status.success() {
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            println!("cargo:warning={line}");
        }
        bail!(
            "building the XDP program failed (see the warnings above); `cargo xtask setup` installs the nightly's rust-src and bpf-linker"
        );
    }
    Ok(())
}
