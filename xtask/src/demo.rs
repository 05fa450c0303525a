//! `cargo xtask demo`: a three-node farm run by `farm agent` in network namespaces, with
//! real traffic, a failure and a return (farm-tests' farm-demo binary).
use anyhow::Result;

use crate::{cargo, process::run};

pub fn demo() -> Result<()> {
    cargo::build()?;
    run(
        cargo::cargo().args(["run", "--release", "-q", "-p", "farm-tests", "--bin", "farm-demo"]),
        "the demo",
        "see its output above",
    )
}
