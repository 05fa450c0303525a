//! Whether xtask runs as root. xtask builds farm, so it cannot use farm's own check.

/// Installing packages, mounting and the tests that load XDP or make network namespaces
/// need root; probing and building do not, so only what needs it asks.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
