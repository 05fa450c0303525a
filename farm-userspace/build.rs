//! Builds the XDP program (farm-ebpf, for bpfel-unknown-none with the nightly) so the
//! `farm` binary can embed it. `AYA_BUILD_SKIP=1` skips that for work on pure userspace
//! logic; the binary then says the program is missing when asked to load it.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    for object in ["farm-xdp", "farm-baseline"] {
        if skip && !out_dir.join(object).exists() {
            fs::write(out_dir.join(object), b"")?;
        }
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../farm-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package { name: "farm-ebpf", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}
