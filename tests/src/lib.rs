//! Test support for farm: packet building, the BPF_PROG_TEST_RUN harness, the standard
//! fixture configuration, and farms of network namespaces.
pub mod agents;
pub mod bench;
pub mod farm;
pub mod fixtures;
pub mod harness;
pub mod netns;
pub mod packet;
pub mod traffic;

/// Whether this process may load BPF programs and make namespaces; tests that need it
/// print why they skip instead of failing.
pub fn have_root(test: &str) -> bool {
    let root = farm_userspace::privilege::is_root();
    if !root {
        eprintln!(
            "SKIP {test}: needs root (BPF_PROG_TEST_RUN, network namespaces); run `cargo xtask test` as root"
        );
    }
    root
}
