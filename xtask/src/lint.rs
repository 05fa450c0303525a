//! The checks `cargo xtask test` runs before the tests: formatting, clippy, rustdoc. The
//! lints themselves are set in the workspace's Cargo.toml (`[workspace.lints]`).
use anyhow::Result;

use crate::{
    cargo::{HOST_CRATES, cargo},
    process::run,
};

pub fn lint() -> Result<()> {
    run(
        cargo().args(["fmt", "--all", "--check"]),
        "cargo fmt --check",
        "run `cargo fmt --all` and commit the result",
    )?;
    // In the release profile, like the build and the tests: build scripts (the XDP
    // program's build among them) and proc-macros are built once for all three.
    run(
        cargo()
            .args(["clippy", "--release", "--all-targets"])
            .args(HOST_CRATES)
            .args(["--", "-D", "warnings"]),
        "cargo clippy",
        "fix the warnings above, or silence one with #[expect(lint, reason = \"...\")]",
    )?;
    run(
        cargo()
            .args(["doc", "--release", "--no-deps"])
            .args(HOST_CRATES)
            .env("RUSTDOCFLAGS", "-D warnings"),
        "cargo doc",
        "fix the rustdoc warnings above (a [word] in a doc comment is taken for a link: quote it in backticks)",
    )
}
