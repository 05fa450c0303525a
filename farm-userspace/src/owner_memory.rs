//! The owner table's map, mapped into this process: `FARM_OWNERS` is created
//! BPF_F_MMAPABLE (`farm_common::OWNERS_MAP_FLAGS`), so a table is written with plain
//! 8-byte stores, one per chunk, instead of one `bpf(BPF_MAP_UPDATE_ELEM)` per chunk.
//! The program reads each chunk with one 8-byte load, so a chunk is never seen half
//! written; which half packets read is switched afterwards through the control map.
use std::{
    io,
    os::fd::AsFd,
    os::fd::AsRawFd,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::maps::MapData;
use farm_common::OwnerChunk;

pub struct OwnerMemory {
    base: *mut AtomicU64,
    entries: usize,
    bytes: usize,
}

// SAFETY: the mapping is owned by this value alone and every access is atomic.
unsafe impl Send for OwnerMemory {}

impl OwnerMemory {
    /// Maps all of `map`'s values, read and write.
    pub fn map(map: &MapData) -> io::Result<OwnerMemory> {
        let entries = map.info().map_err(io::Error::other)?.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let bytes = (entries * size_of::<OwnerChunk>()).next_multiple_of(page);
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh shared mapping of the map's value area, which the kernel sizes
        // to max_entries values rounded up to pages; unmapped in Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnerMemory { base: base.cast(), entries, bytes })
    }

    fn slot(&self, index: u32) -> &AtomicU64 {
        let index = index as usize;
        assert!(index < self.entries, "owner chunk {index} beyond the map's {}", self.entries);
        // SAFETY: in bounds (checked above) of a live mapping of 8-byte aligned values.
        unsafe { &*self.base.add(index) }
    }

    pub fn store(&self, index: u32, chunk: OwnerChunk) {
        let mut bytes = [0u8; 8];
        for (i, owner) in chunk.iter().enumerate() {
            bytes[2 * i..2 * i + 2].copy_from_slice(&owner.to_ne_bytes());
        }
        self.slot(index).store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
    }

    pub fn load(&self, index: u32) -> OwnerChunk {
        let bytes = self.slot(index).load(Ordering::Relaxed).to_ne_bytes();
        std::array::from_fn(|i| u16::from_ne_bytes([bytes[2 * i], bytes[2 * i + 1]]))
    }
}

impl Drop for OwnerMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.bytes) };
    }
}
