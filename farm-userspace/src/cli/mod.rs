//! The commands of `farm` beside the agent. The read commands (stats, buckets, lookup,
//! status) read the maps pinned under /sys/fs/bpf/farm/IFACE, so they answer whether or
//! not an agent runs (status adds what the agent says when it does); `steer` asks the
//! agent to drain, undrain or reweigh this node. Each command's file turns what it read into text or JSON with pure
//! functions; `target` is the one I/O edge they share.
pub mod buckets;
pub mod client;
pub mod events;
pub mod grid;
pub mod keygen;
pub mod lookup;
pub mod manual;
pub mod slots;
pub mod stats;
pub mod status;
pub mod steer;
pub mod table;
pub mod target;
