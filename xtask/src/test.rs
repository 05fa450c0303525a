//! `cargo xtask test`: the lints, the build and the package, then every test.
//!
//! A test that needs root is ignored with a reason that says so,
//! `#[ignore = "needs root: network namespaces and XDP"]`, so that a plain `cargo test`
//! passes without root and names what did not run. libtest filters tests by name only,
//! so the tests run first as cargo runs them, and their output names every ignored test
//! with its reason. As root, the tests ignored for root then run by name; a test ignored
//! for another reason (a measurement) runs only when asked for.
use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};

use crate::{
    cargo::{HOST_CRATES, cargo},
    lint, package,
    privilege::is_root,
    process::{run, run_echoed},
};

/// How the reason of a test ignored for root starts.
const NEEDS_ROOT: &str = "needs root";

/// `args` go to the test binaries, in both runs.
pub fn test(args: &[String]) -> Result<()> {
    lint::lint()?;
    // The package's tests unpack it and run a farm with what it holds.
    package::package()?;
    let out = run_echoed(
        cargo().args(["test", "--release"]).args(HOST_CRATES).arg("--").args(args),
        "cargo test",
        "see the build errors or failing tests above",
    )?;
    let ignored = Ignored::read(&out)?;
    let count = ignored.for_root;
    if count == 0 {
        return Ok(());
    }
    if !is_root() {
        eprintln!("xtask: {count} tests need root and were not run: rerun as root");
        return Ok(());
    }
    eprintln!("xtask: running the {count} tests that need root");
    let mut cmd = cargo();
    // Doc tests cannot be ignored for root: `--tests` leaves them out.
    cmd.args(["test", "--release", "--tests"]).args(HOST_CRATES).args(["--", "--ignored"]);
    // Exact names, and exact skips for the tests ignored for other reasons: a user's
    // filter, exact here, can then match no more than it did in the first run.
    if !args.iter().any(|arg| arg == "--exact") {
        cmd.arg("--exact");
    }
    cmd.args(&ignored.root);
    for name in &ignored.other {
        cmd.args(["--skip", name]);
    }
    run(cmd.args(args), "cargo test of the tests that need root", "see the failing tests above")
}

/// The ignored tests a run of `cargo test` listed, by name.
#[derive(Debug, Default, PartialEq)]
struct Ignored {
    /// Those ignored because they need root.
    root: BTreeSet<String>,
    /// How many tests that is: a name can be in more than one test binary.
    for_root: usize,
    /// Those ignored for any other reason.
    other: BTreeSet<String>,
}

impl Ignored {
    /// Reads libtest's lines `test NAME ... ignored, REASON`, and checks them against the
    /// ignored counts of its summaries (other output formats list no names).
    fn read(out: &str) -> Result<Ignored> {
        let mut ignored = Ignored::default();
        let (mut listed, mut counted) = (0, 0);
        for line in out.lines() {
            if let Some(summary) = line.strip_prefix("test result: ") {
                counted += summary
                    .split("; ")
                    .find_map(|part| part.strip_suffix(" ignored"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .with_context(|| {
                        format!(
                            "no ignored count in `{line}`: update xtask to this libtest's output"
                        )
                    })?;
            }
            let Some((name, outcome)) =
                line.strip_prefix("test ").and_then(|test| test.split_once(" ... "))
            else {
                continue;
            };
            let Some(reason) = outcome.strip_prefix("ignored") else { continue };
            listed += 1;
            if reason.strip_prefix(", ").is_some_and(|reason| reason.starts_with(NEEDS_ROOT)) {
                ignored.for_root += 1;
                ignored.root.insert(name.to_string());
            } else {
                ignored.other.insert(name.to_string());
            }
        }
        if listed != counted {
            bail!(
                "cargo test counted {counted} ignored tests but named {listed}, so which need root is unknown: pass no --format or --quiet to `cargo xtask test`"
            );
        }
        if let Some(name) = ignored.root.intersection(&ignored.other).next() {
            bail!(
                "two tests named {name} are ignored, one for root and one for another reason: rename one, as the tests that need root are run by name"
            );
        }
        Ok(ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::Ignored;

    fn names(names: &[&str]) -> std::collections::BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn tells_tests_ignored_for_root_from_the_others() {
        let out = "
running 4 tests
test m::rooty ... ignored, needs root: network namespaces
test measure ... ignored, a measurement, not a check
test plain ... ok
test bare ... ignored

test result: ok. 1 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.00s

running 2 tests
test m::rooty ... ignored, needs root: XDP
test src/lib.rs - f (line 3) ... ignored

test result: ok. 0 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s
";
        let ignored = Ignored::read(out).unwrap();
        assert_eq!(ignored.root, names(&["m::rooty"]));
        assert_eq!(ignored.for_root, 2);
        assert_eq!(ignored.other, names(&["bare", "measure", "src/lib.rs - f (line 3)"]));
    }

    #[test]
    fn refuses_output_without_names() {
        let out = "running 2 tests\nii\ntest result: ok. 0 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
        let e = Ignored::read(out).unwrap_err().to_string();
        assert!(e.contains("counted 2 ignored tests but named 0"), "{e}");
    }

    #[test]
    fn refuses_a_name_ignored_for_root_and_for_another_reason() {
        let out = "test t ... ignored, needs root: XDP\ntest t ... ignored, slow\ntest result: ok. 0 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
        assert!(Ignored::read(out).unwrap_err().to_string().contains("two tests named t"));
    }
}
