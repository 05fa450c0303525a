//! `farm keygen`: the shared key that signs heartbeats, made once on one node and copied
//! to the others. It is readable by its owner and by the group of its directory, so the
//! agent reads it as the package runs it (user `farm`, and /etc/farm's group is `farm`)
//! and no other user does.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use clap::Args;

/// Bytes of key: HMAC-SHA256's own block of strength.
const KEY_BYTES: usize = 32;

#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the key (the configuration's cluster.key_file).
    #[arg(default_value = "/etc/farm/key")]
    pub file: PathBuf,
    /// Replace a key that is there (then copy the new one to every node).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &KeygenArgs) -> Result<String> {
    let file = &args.file;
    if file.exists() && !args.force {
        bail!(
            "{} exists, and every node must hold the same key: copy that one to the other nodes, or pass --force to make a new one (and copy it to every node)",
            file.display()
        );
    }
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let group = fs::metadata(dir)
        .with_context(|| format!("{} has no directory to go in: create it first", file.display()))?
        .gid();
    let mut key = [0u8; KEY_BYTES];
    random(&mut key).context("read random bytes from the kernel (getrandom)")?;
    // Written beside the file and renamed over it, so that an agent reloading meanwhile
    // reads the old key or the new one, never part of one.
    let temp =
        dir.join(format!(".{}.new", file.file_name().context("no file name")?.to_string_lossy()));
    // A temporary file that a crashed keygen left.
    let _ = fs::remove_file(&temp);
    let written = write_key(&temp, &key, group);
    if let Err(e) = written.and_then(|()| fs::rename(&temp, file)) {
        let _ = fs::remove_file(&temp);
        return Err(e)
            .with_context(|| format!("write {}: check the directory is writable", file.display()));
    }
    Ok(format!(
        "wrote a new {KEY_BYTES}-byte key to {}, readable by root and the group of {} alone: copy it to every node with the same mode and group, and name it in cluster.key_file\n",
        file.display(),
        dir.display()
    ))
}

fn write_key(path: &Path, key: &[u8], group: u32) -> io::Result<()> {
    let mut out: File = OpenOptions::new().write(true).create_new(true).mode(0o640).open(path)?;
    std::os::unix::fs::fchown(&out, None, Some(group))?;
    // The mode again: the umask may have taken bits off the one asked for at creation.
    out.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o640))?;
    out.write_all(key)?;
    out.sync_all()
}

fn random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match n {
            n if n > 0 => filled += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
