//! Headless Chromium (Debian's `chromium`) run in a node's namespace, so that it reaches
//! the agent's page on the node's loopback: the DOM after the page loaded, or a
//! screenshot. Each run gets a profile directory of its own, and a home in it, so that
//! nothing is left outside the test's directory.
use std::{
    io::Read,
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::netns::command_in;

/// Longest a page load may take (Chromium starts in a second or two).
const TIMEOUT: Duration = Duration::from_secs(90);

pub struct Browser {
    ns: String,
    /// Where profiles go; the caller removes it.
    dir: PathBuf,
}

impl Browser {
    pub fn new(ns: &str, dir: &Path) -> Browser {
        Browser { ns: ns.into(), dir: dir.into() }
    }

    /// The DOM of `url` once loaded, as Chromium serializes it.
    pub fn dom(&self, url: &str) -> Result<String> {
        let out = self.run(&["--dump-dom", url])?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// A PNG of `url` in a window `width` x `height`, written to `png`.
    pub fn screenshot(&self, url: &str, png: &Path, width: u32, height: u32) -> Result<()> {
        let shot = format!("--screenshot={}", png.display());
        let size = format!("--window-size={width},{height}");
        self.run(&[&shot, &size, "--hide-scrollbars", url])?;
        let bytes = std::fs::read(png).with_context(|| format!("read {}", png.display()))?;
        anyhow::ensure!(bytes.starts_with(b"\x89PNG"), "{} is no PNG", png.display());
        Ok(())
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let profile = self.dir.join(format!("chromium-{}", RUNS.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&profile)?;
        let mut chromium = command_in(&self.ns, "chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .env("HOME", &profile)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("run chromium (Debian's chromium package; `cargo xtask setup` installs it)")?;
        // Read on a thread, so that a large DOM never fills the pipe while this one waits.
        let mut stdout = chromium.stdout.take().context("stdout")?;
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).map(|_| out)
        });
        let end = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = chromium.try_wait()? {
                break status;
            }
            if Instant::now() > end {
                let _ = chromium.kill();
                let _ = chromium.wait();
                bail!("chromium {args:?} did not finish within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = reader.join().map_err(|_| anyhow::anyhow!("reading chromium's output"))??;
        if !status.success() {
            bail!("chromium {args:?} failed: {status}");
        }
        Ok(out)
    }
}
