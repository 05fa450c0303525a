//! Ctrl-C would end the bench without running the namespace guard's `Drop`, leaving
//! `farmbench-<pid>` behind. SIGINT and SIGTERM are blocked in the calling thread (and in
//! every thread it starts after) and one thread waits for them instead: it removes the
//! namespace and exits as the signal would have.
use std::{process::Command, thread};

use anyhow::{Result, ensure};

pub fn delete_on_signal(ns: &str) -> Result<()> {
    // SAFETY: plain libc calls on a local, initialised signal set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        ensure!(rc == 0, "pthread_sigmask: {}", std::io::Error::from_raw_os_error(rc));
        set
    };
    let ns = ns.to_owned();
    thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: sigwait reads the set and writes the signal number.
        unsafe { libc::sigwait(&set, &mut signal) };
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        std::process::exit(128 + signal);
    });
    Ok(())
}
