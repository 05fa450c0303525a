//! The shared key that signs heartbeats: the whole content of `cluster.key_file`, the
//! same on every node. A relative path is taken from the configuration file's directory.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use log::warn;

/// Shorter keys are refused: HMAC-SHA256 is only as strong as its key.
const MIN_KEY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{0}: cluster.key_file is not set, and the agent signs heartbeats with a shared key: make one with `farm keygen /etc/farm/key`, copy it to every node and name it in cluster.key_file"
    )]
    NotSet(String),
    #[error("read key file {path} (cluster.key_file): {error}")]
    Read { path: String, error: std::io::Error },
    #[error(
        "key file {path} holds {len} bytes, fewer than {MIN_KEY}: make a longer one with `farm keygen --force {path}`"
    )]
    Short { path: String, len: usize },
}

pub fn read(config: &Path, key_file: Option<&Path>) -> Result<Vec<u8>, KeyError> {
    let key_file = key_file.ok_or_else(|| KeyError::NotSet(config.display().to_string()))?;
    let path: PathBuf = match config.parent() {
        Some(dir) if key_file.is_relative() => dir.join(key_file),
        _ => key_file.to_path_buf(),
    };
    read_file(&path)
}

/// The key in `path`, whole, refused when short and warned about when every user may read it.
pub fn read_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let shown = path.display().to_string();
    let key = std::fs::read(path).map_err(|error| KeyError::Read { path: shown.clone(), error })?;
    if key.len() < MIN_KEY {
        return Err(KeyError::Short { path: shown, len: key.len() });
    }
    // Its group may read it: that is how the packaged agent, user `farm`, does.
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o007 != 0) {
        warn!("key file {shown} can be read by every user: `chmod o= {shown}`");
    }
    Ok(key)
}
