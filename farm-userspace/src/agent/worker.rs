//! A thread for work too long for the agent's loop (tables, counting kept flows): it
//! runs at the normal scheduler's priority (the loop's real-time one is not passed on,
//! `realtime`), takes only the newest of the jobs waiting, as the loop acts on the
//! newest answer only, and hands its answers back to the loop's select.
use std::sync::mpsc as std_mpsc;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

pub struct Worker<J, R> {
    jobs: std_mpsc::Sender<J>,
    pub done: mpsc::UnboundedReceiver<R>,
}

impl<J: Send + 'static, R: Send + 'static> Worker<J, R> {
    /// Starts the thread `name`, which answers each job with `work`.
    pub fn spawn(name: &str, mut work: impl FnMut(J) -> R + Send + 'static) -> Result<Self> {
        Self::spawn_with(name, || (), move |_, job| work(job))
    }

    /// Starts the thread `name`, which answers each job with `work` on state of its own
    /// (made by `state` on the thread, so that it need not be sent there: open maps).
    pub fn spawn_with<S>(
        name: &str,
        state: impl FnOnce() -> S + Send + 'static,
        mut work: impl FnMut(&mut S, J) -> R + Send + 'static,
    ) -> Result<Self> {
        let (jobs, queue) = std_mpsc::channel::<J>();
        let (tx, done) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut state = state();
                while let Ok(mut job) = queue.recv() {
                    while let Ok(newer) = queue.try_recv() {
                        job = newer;
                    }
                    if tx.send(work(&mut state, job)).is_err() {
                        return;
                    }
                }
            })
            .with_context(|| format!("start the thread {name}"))?;
        Ok(Worker { jobs, done })
    }

    pub fn ask(&self, job: J) {
        // The thread only ends with the agent.
        let _ = self.jobs.send(job);
    }
}
