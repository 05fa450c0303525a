//! The health checkers' I/O: one task per checker, each running its check every
//! interval with its timeout and handing the result to the agent's loop, which gives it
//! to the core (`Input::Check`). A check never blocks the loop; a command that hangs is
//! killed at its timeout, and no command outlives the agent (killed when its task is
//! dropped, and by the kernel if the agent itself dies).
use std::{net::SocketAddr, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
    sync::mpsc,
    task::JoinHandle,
    time::timeout,
};

use super::core::Input;
use crate::config::{CheckKind, Checker, Config};

/// The most of an HTTP answer read: the status line and enough of a body to look for
/// the expected text.
const MAX_ANSWER: u64 = 64 * 1024;

type Result_ = (u64, usize, usize, bool, String);

/// The running checkers of a configuration.
pub struct Checkers {
    tasks: Vec<JoinHandle<()>>,
    /// What runs: each service's checkers, to notice a reload that changes them.
    running: Option<Vec<Vec<Checker>>>,
    /// Counts restarts, so a result of a checker gone with a reload is not taken.
    generation: u64,
    tx: mpsc::UnboundedSender<Result_>,
    rx: mpsc::UnboundedReceiver<Result_>,
}

impl Checkers {
    pub fn new() -> Checkers {
        let (tx, rx) = mpsc::unbounded_channel();
        Checkers { tasks: vec![], running: None, generation: 0, tx, rx }
    }

    /// Runs exactly `cfg`'s checkers: restarts them all when a reload changed any.
    pub fn follow(&mut self, cfg: &Config) {
        let wanted: Vec<Vec<Checker>> = cfg.services.iter().map(|s| s.health.clone()).collect();
        if self.running.as_ref() == Some(&wanted) {
            return;
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.generation += 1;
        for (service, checkers) in wanted.iter().enumerate() {
            for (checker, spec) in checkers.iter().enumerate() {
                let (tx, spec, generation) = (self.tx.clone(), spec.clone(), self.generation);
                self.tasks.push(tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_millis(spec.interval_ms));
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        every.tick().await;
                        let (ok, reason) = run(&spec).await;
                        if tx.send((generation, service, checker, ok, reason)).is_err() {
                            return;
                        }
                    }
                }));
            }
        }
        self.running = Some(wanted);
    }

    /// The next result of a running checker, as the core's input.
    pub async fn next(&mut self) -> Input {
        loop {
            let Some((generation, service, checker, ok, reason)) = self.rx.recv().await else {
                // This value holds a sender: the channel never closes.
                std::future::pending::<()>().await;
                continue;
            };
            if generation == self.generation {
                return Input::Check { service, checker, ok, reason };
            }
        }
    }
}

impl Drop for Checkers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One check, within its timeout: whether it passed, and what it saw.
pub async fn run(spec: &Checker) -> (bool, String) {
    let limit = Duration::from_millis(spec.timeout_ms);
    let outcome = match &spec.kind {
        CheckKind::Tcp { address } => timeout(limit, tcp(*address)).await,
        CheckKind::Http { address, path, status, body } => {
            timeout(limit, http(*address, path, *status, body.as_deref())).await
        }
        CheckKind::Exec { command } => return exec(command, limit).await,
    };
    outcome.unwrap_or_else(|_| (false, format!("no answer within {} ms", spec.timeout_ms)))
}

async fn tcp(address: SocketAddr) -> (bool, String) {
    match TcpStream::connect(address).await {
        Ok(_) => (true, format!("connected to {address}")),
        Err(e) => (false, format!("connect to {address}: {e}")),
    }
}

async fn http(
    address: SocketAddr,
    path: &str,
    (low, high): (u16, u16),
    body: Option<&str>,
) -> (bool, String) {
    let mut stream = match TcpStream::connect(address).await {
        Ok(s) => s,
        Err(e) => return (false, format!("connect to {address}: {e}")),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: farm-health\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return (false, format!("send the request to {address}: {e}"));
    }
    let mut answer = Vec::new();
    if let Err(e) = stream.take(MAX_ANSWER).read_to_end(&mut answer).await {
        return (false, format!("read the answer from {address}: {e}"));
    }
    judge_http(&answer, (low, high), body)
}

/// An HTTP answer against what a healthy one has: a status in range, and `body`.
fn judge_http(answer: &[u8], (low, high): (u16, u16), body: Option<&str>) -> (bool, String) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else {
        return (false, "the answer is not HTTP".into());
    };
    if !(low..=high).contains(&status) {
        return (false, format!("HTTP {status}, want {low}-{high}"));
    }
    match body {
        Some(want) if !text.split_once("\r\n\r\n").is_some_and(|(_, b)| b.contains(want)) => {
            (false, format!("HTTP {status}, but the body lacks {want:?}"))
        }
        _ => (true, format!("HTTP {status}")),
    }
}

/// Runs `command` in a process group of its own, so that at the timeout the whole
/// group is killed: a script's children too, not just the script.
async fn exec(command: &[String], limit: Duration) -> (bool, String) {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: setpgid and prctl are async-signal-safe. The child leads a group of its
    // own, and the kernel kills it if the agent dies, whatever kills the agent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setpgid(0, 0) != 0 || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return (false, format!("run {}: {e}", command[0])),
    };
    let group = child.id().map(|pid| pid as libc::pid_t);
    let out = match timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return (false, format!("wait for {}: {e}", command[0])),
        Err(_) => {
            if let Some(group) = group {
                // SAFETY: kill(2) on the group this check started and still owns.
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
            return (false, format!("no answer within {} ms", limit.as_millis()));
        }
    };
    let first = |bytes: &[u8]| String::from_utf8_lossy(bytes).lines().next().map(str::to_owned);
    let said = first(&out.stdout).or_else(|| first(&out.stderr)).unwrap_or_default();
    match out.status.code() {
        Some(0) => (true, if said.is_empty() { "exit 0".into() } else { said }),
        Some(code) => (false, format!("exit {code}: {said}")),
        None => (false, format!("killed by a signal: {said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_http_answers() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(judge_http(ok, (200, 399), Some("ok")), (true, "HTTP 200".into()));
        let down = b"HTTP/1.0 503 Service Unavailable\r\n\r\n";
        assert_eq!(judge_http(down, (200, 399), None), (false, "HTTP 503, want 200-399".into()));
        let body = judge_http(ok, (200, 200), Some("ready")).1;
        assert_eq!(body, "HTTP 200, but the body lacks \"ready\"");
        assert!(!judge_http(b"SSH-2.0-OpenSSH\r\n", (200, 399), None).0);
    }

    /// Processes whose command line is `cmdline` (its words joined by NULs).
    fn running(cmdline: &str) -> usize {
        let dirs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
        dirs.filter(|d| {
            std::fs::read(d.path().join("cmdline")).unwrap_or_default() == cmdline.as_bytes()
        })
        .count()
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_at_its_timeout_with_its_children() {
        // A script whose child hangs: a sleep no other process here runs.
        let seconds = 100_000 + std::process::id();
        let marker = format!("sleep\0{seconds}\0");
        let script = format!("sleep {seconds} & wait");
        let spec = Checker {
            kind: CheckKind::Exec { command: vec!["sh".into(), "-c".into(), script] },
            interval_ms: 1000,
            timeout_ms: 100,
            rise: 1,
            fall: 1,
        };
        assert_eq!(run(&spec).await, (false, "no answer within 100 ms".to_string()));
        // Killed on the spot; gone once the kernel has reaped it.
        for _ in 0..100 {
            if running(&marker) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(running(&marker), 0, "the hung command still runs");
        let echo = Checker {
            kind: CheckKind::Exec {
                command: vec!["sh".into(), "-c".into(), "echo fine; exit 3".into()],
            },
            ..spec
        };
        assert_eq!(run(&echo).await, (false, "exit 3: fine".to_string()));
    }
}
