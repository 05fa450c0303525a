//! `cargo xtask demo`: a demo farm in network namespaces.
use anyhow::Result;

use crate::{cargo, process::run};

/// Until the farm-demo binary exists, the demo is the namespace farm test: it builds a
/// farm of namespaces and shows it at work. When farm-demo lands, run it from here
/// (`cargo::release_dir().join("farm-demo")`) instead; nothing else refers to the demo.
pub fn demo() -> Result<()> {
    cargo::build()?;
    run(
        cargo::cargo().args([
            "test",
            "--release",
            "-p",
            "farm-tests",
            "--test",
            "farm",
            "--",
            "--nocapture",
        ]),
        "the demo",
        "see its output above",
    )
}
