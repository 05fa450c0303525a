//! The read commands of `farm` (stats, buckets, lookup, status). They read the maps
//! pinned under /sys/fs/bpf/farm/IFACE, not an agent, so they answer whether or not an
//! agent runs. Each command's file turns what it read into text or JSON with pure
//! functions; `target` is the one I/O edge they share.
pub mod buckets;
pub mod client;
pub mod grid;
pub mod lookup;
pub mod slots;
pub mod stats;
pub mod status;
pub mod table;
pub mod target;
