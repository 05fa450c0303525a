//! `cargo xtask setup`: check each thing the build and the tests need, install what is
//! missing. Idempotent; when nothing is missing it only probes, in about a second.
use anyhow::Result;

use crate::{bpffs, linker, packages, toolchain};

/// Install everything missing. `verbose` prints a line for each thing found in place
/// too; otherwise only what was installed is printed, so other tasks stay quiet.
pub fn setup(verbose: bool) -> Result<()> {
    let report = Report { verbose };
    packages::packages(&report)?;
    let nightly = toolchain::nightly(&report)?;
    linker::bpf_linker(&report, &nightly)?;
    bpffs::bpffs(&report)
}

/// The one line per thing checked.
pub struct Report {
    verbose: bool,
}

impl Report {
    pub fn ok(&self, thing: &str, detail: &str) {
        if self.verbose {
            match detail {
                "" => println!("{thing}: ok"),
                _ => println!("{thing}: ok ({detail})"),
            }
        }
    }

    /// Announces an install, which may take a while, before it starts.
    pub fn doing(&self, thing: &str, what: &str) {
        println!("{thing}: {what}...");
    }

    /// `outcome` is what changed: "installed", "mounted".
    pub fn done(&self, thing: &str, outcome: &str) {
        println!("{thing}: {outcome}");
    }
}

/// Installing packages and mounting need root; probing does not, so only the step that
/// would change something asks.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
