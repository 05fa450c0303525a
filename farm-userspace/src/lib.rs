//! The `farm` binary's library: the membership agent, configuration, bucket assignment, the data plane's maps
//! and the loader that puts the XDP program on a NIC.
pub mod agent;
pub mod announce;
pub mod assign;
pub mod classify;
pub mod config;
pub mod dataplane;
pub mod handover;
pub mod jiffies;
pub mod loader;
pub mod neighbour;
pub mod nic;
pub mod owner_memory;
pub mod picture;
pub mod privilege;
pub mod program;
pub mod realtime;
pub mod rules;
pub mod witness;
