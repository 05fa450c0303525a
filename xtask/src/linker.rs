//! bpf-linker, which rustc calls to link the eBPF crate. It reads the bitcode the
//! nightly emits, so it must be linked against the nightly's LLVM major. Debian has no
//! LLVM that new, so it is built against the nightly's own shared libLLVM.
use std::{
    fs, io,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, anyhow};

use crate::{
    process::{output, quietly, which},
    report::Report,
    toolchain::{Nightly, nightly_cmd},
};

pub fn bpf_linker(report: &Report, nightly: &Nightly) -> Result<()> {
    let major = nightly.llvm_major;
    let why = match usable(major) {
        Ok(path) => {
            report.ok("bpf-linker", &format!("LLVM {major}, {}", path.display()));
            return Ok(());
        }
        Err(why) => why,
    };
    report.doing(
        "bpf-linker",
        &format!("{why}; building it against the nightly's LLVM {major}, about a minute"),
    );
    let prefix = llvm_prefix(nightly)?;
    quietly(
        nightly_cmd("cargo")
            .args(["install", "bpf-linker", "--locked", "--no-default-features"])
            .args(["--features", &format!("llvm-{major}")])
            // The same version may be installed already, linked against a libLLVM
            // that is gone or of another major: rebuild it anyway.
            .arg("--force")
            .env("LLVM_PREFIX", &prefix),
        "cargo install bpf-linker",
        "check the network to crates.io and the build errors above",
    )?;
    let path = usable(major)
        .map_err(|why| anyhow!("bpf-linker was built but {why}: put ~/.cargo/bin first in PATH"))?;
    report.done("bpf-linker", &format!("installed (LLVM {major}, {})", path.display()));
    Ok(())
}

/// The bpf-linker on PATH if it runs and is linked against LLVM `major`; otherwise why not.
fn usable(major: u32) -> Result<PathBuf, String> {
    let path = which("bpf-linker").ok_or("not on PATH")?;
    let shown = path.display();
    if !Command::new(&path).arg("--version").output().is_ok_and(|out| out.status.success()) {
        return Err(format!("{shown} does not run"));
    }
    let ldd = output(Command::new("ldd").arg(&path)).map_err(|e| format!("{e:#}"))?;
    match String::from_utf8_lossy(&ldd.stdout).lines().find_map(llvm_major) {
        Some(linked) if linked == major => Ok(path),
        Some(linked) => Err(format!("{shown} is linked against LLVM {linked}")),
        // Statically linked: its LLVM cannot be told, so it cannot be trusted.
        None => Err(format!("{shown} has no shared libLLVM to check")),
    }
}

/// The LLVM major of an `ldd` line that names a libLLVM: `libLLVM.so.22.1-rust-1.97.0-nightly`
/// (Rust's), `libLLVM-14.so.1` (Debian's).
fn llvm_major(line: &str) -> Option<u32> {
    let name = line.split_whitespace().next()?;
    let version = name.strip_prefix("libLLVM.so.").or_else(|| name.strip_prefix("libLLVM-"))?;
    version.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// An `LLVM_PREFIX` for bpf-linker's build: a lib/ holding the nightly's shared libLLVM under
/// the name the build links with (`libLLVM.so`) and the soname it loads at run time.
/// bpf-linker keeps an rpath to that lib/, so it lives at a stable path outside any build
/// tree, one per nightly release (the soname names the release too).
fn llvm_prefix(nightly: &Nightly) -> Result<PathBuf> {
    let rust_lib = nightly.sysroot.join("lib");
    // The real library's file name is its soname; `libLLVM-NN-rust-*.so` beside it is a
    // linker script.
    let libllvm = fs::read_dir(&rust_lib)
        .with_context(|| format!("cannot list {}: reinstall the nightly", rust_lib.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("libLLVM.so."))
        })
        .with_context(|| {
            format!(
                "the nightly ships no libLLVM.so.* in {}: install a nightly that does",
                rust_lib.display()
            )
        })?;
    let prefix = PathBuf::from(format!("/opt/farm/llvm-{}", nightly.release));
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib)
        .with_context(|| format!("cannot create {}: rerun as root", lib.display()))?;
    let soname = libllvm.file_name().expect("found by its file name");
    for name in [Path::new("libLLVM.so"), Path::new(soname)] {
        replace_symlink(&libllvm, &lib.join(name)).with_context(|| {
            format!(
                "cannot link {} to {}: rerun as root",
                lib.join(name).display(),
                libllvm.display()
            )
        })?;
    }
    Ok(prefix)
}

/// Points `link` at `target`, replacing a link left by an earlier nightly of the same release.
fn replace_symlink(target: &Path, link: &Path) -> io::Result<()> {
    match fs::remove_file(link) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    symlink(target, link)
}

#[cfg(test)]
mod tests {
    use super::llvm_major;

    #[test]
    fn reads_the_llvm_major_from_ldd_lines() {
        let rust = "\tlibLLVM.so.22.1-rust-1.97.0-nightly => /opt/farm/llvm-1.97.0-nightly/lib/libLLVM.so.22.1-rust-1.97.0-nightly (0x00007f)";
        assert_eq!(llvm_major(rust), Some(22));
        assert_eq!(
            llvm_major("\tlibLLVM-14.so.1 => /lib/x86_64-linux-gnu/libLLVM-14.so.1 (0x00007f)"),
            Some(14)
        );
        assert_eq!(llvm_major("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)"), None);
    }
}
