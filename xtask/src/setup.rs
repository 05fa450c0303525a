//! `cargo xtask setup`: check each thing the build and the tests need, install what is
//! missing. Idempotent; when nothing is missing it only probes, in about a second.
use anyhow::Result;

use crate::{bpffs, linker, lint, package, packages, report::Report, toolchain};

/// Install everything missing. `verbose` prints a line for each thing found in place
/// too; otherwise only what was installed is printed, so other tasks stay quiet.
pub fn setup(verbose: bool) -> Result<()> {
    let report = Report { verbose };
    packages::packages(&report)?;
    let nightly = toolchain::nightly(&report)?;
    lint::tools(&report)?;
    linker::bpf_linker(&report, &nightly)?;
    package::cargo_deb(&report)?;
    bpffs::bpffs(&report)
}
