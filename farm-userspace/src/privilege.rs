//! Whether this process runs as root: the one check for what needs it, in farm (loading
//! XDP, reading the pinned maps) and in its tests, demo and benchmark.

/// Whether the effective user is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Ok as root; otherwise an error that says what needs root and what to do.
/// `what` names the task and why it needs root: "loading XDP (CAP_BPF and CAP_NET_ADMIN)".
pub fn require_root(what: &str) -> Result<(), NotRoot> {
    match is_root() {
        true => Ok(()),
        false => Err(NotRoot(what.to_string())),
    }
}

/// What needed root, when this process is not root.
#[derive(Debug, thiserror::Error)]
#[error("{0} needs root: rerun as root")]
pub struct NotRoot(pub String);
