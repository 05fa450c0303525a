//! The data-plane fuzzer's short run (`farm_tests::fuzz`): tens of thousands of random and
//! mutated frames through the XDP program, each against the userspace model of it.
//! `cargo xtask soak --frames N` runs as many as asked. Needs root: run it with
//! `cargo test --release -p farm-tests --test fuzz -- --include-ignored`.
use farm_tests::fuzz;

#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn the_program_does_what_its_model_says_with_any_frame() {
    let report = fuzz::run(40_000, 1, |_| {}).expect("fuzz the XDP program");
    eprintln!("{}", report.summary());
    assert!(
        report.mismatches == 0,
        "{} mismatches between the program and its model; the first:\n{}",
        report.mismatches,
        report.described.join("\n")
    );
    // Every way out was taken, so none of the checks above held for want of frames.
    for outcome in [
        "Pass Accepted",
        "Drop NotOwner",
        "Drop LeaseExpired",
        "Drop NoService",
        "Tx ArpReplies",
        "Tx NdReplies",
        "Drop Malformed",
        "Pass Malformed (no VIP)",
        "Pass Passed (no VIP)",
        "Pass Passed",
    ] {
        assert!(
            report.outcomes.contains_key(outcome),
            "no frame came out {outcome}: {}",
            report.summary()
        );
    }
}
