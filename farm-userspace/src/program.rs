//! The XDP program as built by build.rs, and loading it into the kernel (verifier
//! included) with its maps sized for the configured bucket count.
use std::path::Path;

use aya::{Ebpf, EbpfError, EbpfLoader, programs::ProgramError, programs::Xdp};
use farm_common::{ALL_MAPS, MAP_OWNERS, PROGRAM_NAME, owner_table_entries};

/// The eBPF object; empty when the crate was built with `AYA_BUILD_SKIP=1`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/farm-xdp"));

/// The benchmark's yardstick (farm-ebpf's `baseline`): count and pass.
#[cfg(feature = "bench")]
pub static BASELINE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/farm-baseline"));

#[derive(Debug, thiserror::Error)]
pub enum ProgramLoadError {
    #[error(
        "this farm binary was built without its XDP program (AYA_BUILD_SKIP); rebuild with `cargo xtask build`"
    )]
    NotBuilt,
    #[error("bpf object load (maps: bpf_map_create/bpf_obj_get): {0:#}")]
    Object(#[from] EbpfError),
    #[error("the object has no XDP program {PROGRAM_NAME}")]
    NoProgram,
    #[error(
        "bpf_prog_load {PROGRAM_NAME}: the verifier refused it ({io_error}): {reason}; RUST_LOG=debug shows its whole log"
    )]
    Verifier { io_error: std::io::Error, reason: String },
    #[error("bpf_prog_load {PROGRAM_NAME}: {0}")]
    Program(ProgramError),
}

impl From<ProgramError> for ProgramLoadError {
    /// A verifier log runs to thousands of lines: the error keeps the one that says why,
    /// the debug log keeps the rest.
    fn from(e: ProgramError) -> Self {
        match e {
            ProgramError::LoadError { io_error, verifier_log } => {
                let log = verifier_log.to_string();
                log::debug!("verifier log:\n{log}");
                ProgramLoadError::Verifier { io_error, reason: verifier_reason(&log).to_string() }
            }
            other => ProgramLoadError::Program(other),
        }
    }
}

/// Loads the program and creates its maps, pinning them in `pin_dir` when given (a map
/// already pinned there is reused, which is how a restarted agent keeps its state).
pub fn load(bucket_count: u32, pin_dir: Option<&Path>) -> Result<Ebpf, ProgramLoadError> {
    if OBJECT.is_empty() {
        return Err(ProgramLoadError::NotBuilt);
    }
    let mut loader = EbpfLoader::new();
    loader.map_max_entries(MAP_OWNERS, owner_table_entries(bucket_count));
    if let Some(dir) = pin_dir {
        for name in ALL_MAPS {
            loader.map_pin_path(name, dir.join(name));
        }
    }
    let mut ebpf = loader.load(OBJECT)?;
    xdp(&mut ebpf)?.load()?;
    Ok(ebpf)
}

/// The farm XDP program inside a loaded object.
pub fn xdp(ebpf: &mut Ebpf) -> Result<&mut Xdp, ProgramLoadError> {
    let prog = ebpf.program_mut(PROGRAM_NAME).ok_or(ProgramLoadError::NoProgram)?;
    Ok(prog.try_into()?)
}

/// The verifier's own words at the end of its log: the lines after the last numbered
/// instruction, less its statistics.
fn verifier_reason(log: &str) -> &str {
    let stats = ["verification time", "stack depth", "processed "];
    log.lines()
        .rev()
        .take_while(|l| !l.starts_with(|c: char| c.is_ascii_digit()))
        .filter(|l| !l.trim().is_empty() && !stats.iter().any(|s| l.starts_with(s)))
        .last()
        .unwrap_or("no reason given")
}

#[cfg(test)]
mod tests {
    use super::verifier_reason;

    #[test]
    fn keeps_the_verifiers_reason() {
        let log = "0: (bf) r6 = r1\n3554: (71) r3 = *(u8 *)(r3 +0)\ninvalid access to packet, off=0 size=1\nR3 offset is outside of the packet\nverification time 10875 usec\nstack depth 128\nprocessed 1838 insns\n";
        assert_eq!(verifier_reason(log), "invalid access to packet, off=0 size=1");
        assert_eq!(verifier_reason(""), "no reason given");
    }
}
