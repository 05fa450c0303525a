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
    #[error("this farm binary was built without its XDP program (AYA_BUILD_SKIP); rebuild with `cargo xtask build`")]
    NotBuilt,
    #[error("bpf object load (maps: bpf_map_create/bpf_obj_get): {0:#}")]
    Object(#[from] EbpfError),
    #[error("the object has no XDP program {PROGRAM_NAME}")]
    NoProgram,
    #[error("bpf_prog_load {PROGRAM_NAME} (verifier): {0:#}")]
    Program(#[from] ProgramError),
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
