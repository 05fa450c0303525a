//! Reading a configuration file: YAML text to the validated model, or the one reason
//! (with file, line and field) it is refused. Errors come in three passes: serde_yaml's
//! (syntax, unknown fields, wrong types, which it locates itself), repeated keys, then
//! the checks of values and cross-references, which `Lines` locates.
use std::path::Path;

use super::{
    Config,
    agent::agent,
    check::Ctx,
    cluster::cluster,
    http::http,
    lines::{Lines, parent},
    owners::static_owners,
    raw::RawConfig,
    services::{services, vips},
};

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub reason: String,
}

/// What `field` says when the error is about the file as a whole.
const WHOLE_FILE: &str = "(file)";

impl ConfigError {
    /// Keeps the error on one line whatever text the file put in a key or value.
    pub(super) fn new(file: &str, line: usize, field: &str, reason: String) -> ConfigError {
        ConfigError {
            file: one_line(file),
            line,
            field: one_line(field),
            reason: one_line(&reason),
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n")
}

/// Parses and validates `text`; `file` is only used to name it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| serde_error(file, e))?;
    let ctx = Ctx { file, lines: Lines::of(text) };
    if let Some((key, line)) = ctx.lines.duplicate_key() {
        let reason = "this key appears twice in its mapping; keep one".to_owned();
        return Err(ConfigError::new(file, line, key, reason));
    }
    let cluster = cluster(raw.cluster, &ctx)?;
    let vips = vips(raw.vips, &ctx)?;
    let services = services(raw.services.unwrap_or_default(), &cluster.peers, &vips, &ctx)?;
    let static_owners = raw
        .static_owners
        .map(|owners| static_owners(owners, &cluster.peers, cluster.buckets, &ctx))
        .transpose()?;
    let http = http(raw.http, &ctx)?;
    let agent = agent(raw.agent, &ctx)?;
    Ok(Config { cluster, vips, services, static_owners, http, agent })
}

/// Reads and parses the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            &file,
            0,
            WHOLE_FILE,
            format!(
                "cannot read it ({e}); check the path and that the file is readable UTF-8 text"
            ),
        )
    })?;
    parse(&text, &file)
}

fn serde_error(file: &str, err: serde_path_to_error::Error<serde_yaml::Error>) -> ConfigError {
    let full = err.path().to_string();
    // p2e writes `?` for a key it never got to read (a syntax error, a key of the wrong
    // type); the mapping around it is the field to name.
    let mut path = full.as_str();
    while path == "?" || path.ends_with(".?") {
        path = parent(path).unwrap_or_default();
    }
    let err = err.into_inner();
    // Errors about the whole document (empty text) have no location.
    let line = err.location().map_or(1, |l| l.line());
    let field = if path.is_empty() || path == "." { WHOLE_FILE } else { path };
    ConfigError::new(file, line, field, serde_reason(&err, path))
}

/// serde_yaml's message without what the error's line and field already say: it
/// appends " at line L column C" and prefixes the path of the node it was reading
/// (`path` or one of its ancestors).
fn serde_reason(err: &serde_yaml::Error, path: &str) -> String {
    let mut text = err.to_string();
    if let Some(at) = err.location() {
        text = text.replacen(&format!(" at line {} column {}", at.line(), at.column()), "", 1);
    }
    let mut node = Some(path);
    while let Some(prefix) = node.filter(|p| !p.is_empty()) {
        if let Some(rest) = text.strip_prefix(&format!("{prefix}: ")) {
            return rest.to_owned();
        }
        node = parent(prefix);
    }
    text
}
