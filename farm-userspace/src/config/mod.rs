//! The YAML configuration: the model every other module uses, and (in `parse`) the
//! reading and validation that refuse a bad file with its line, field and reason.
mod model;
mod parse;

pub use model::*;
pub use parse::{ConfigError, load, parse};
