//! The YAML configuration: the model every other module uses, and (in `parse`) the
//! reading and validation that refuse a bad file with its line, field and reason.
mod agent;
mod check;
mod cluster;
mod digest;
mod health;
mod http;
mod lines;
mod mac;
mod model;
mod node;
mod owners;
mod parse;
mod ranges;
mod raw;
mod reload;
mod services;
#[cfg(test)]
mod tests;

pub use agent::DEFAULT_REALTIME_PRIORITY;
pub use digest::{cluster_id, shared_digest};
pub use http::DEFAULT_LISTEN;
pub use model::*;
pub use node::found as node_found;
pub use parse::{ConfigError, load, parse};
pub use reload::needs_restart;
