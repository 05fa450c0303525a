//! Long-lived TCP connections as a user's application holds them: each sends a numbered
//! line every 50 ms to an echo server (`traffic::EchoServer`) and checks the echo, which
//! names the node that holds the connection. What each saw is kept: the nodes that
//! answered, how many lines came back, the longest wait for an echo, and the error that
//! ended it (a reset, a wrong echo, no echo at all). Every loop is bounded in count and
//! time.
use std::{
    io::{BufRead, BufReader, ErrorKind, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::Result;
use socket2::{Domain, Socket, Type};

use crate::{
    farm::NsFarm,
    netns::{enter, wait_for},
    traffic::EchoServer,
};

/// How often each connection sends a line.
pub const EVERY: Duration = Duration::from_millis(50);
/// How long a connection waits for an echo before it counts as dead (far past a stall).
const NO_ECHO: Duration = Duration::from_secs(5);
/// How long a connection lives at most, whatever the test does.
const LIFETIME: Duration = Duration::from_secs(120);

impl NsFarm {
    /// Replaces every node's server on TCP `port` by an echo server naming the node.
    pub fn echo_on(&mut self, port: u16) -> Result<Vec<EchoServer>> {
        (0..self.nodes.len())
            .map(|i| {
                self.stop_server(i, port);
                let node = &self.nodes[i];
                EchoServer::start(&node.host.ns.name, port, node.name.clone())
            })
            .collect()
    }
}

/// What one connection saw so far.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The node names its echoes carried, in order of first appearance.
    pub nodes: Vec<String>,
    /// Lines echoed.
    pub echoed: u64,
    /// The longest wait between a line sent and its echo.
    pub longest: Duration,
    /// Why it ended, if it did before it was closed.
    pub error: Option<String>,
}

/// One connection: where from (the port the kernel gave it, once connected) and what it
/// saw.
pub struct Conn {
    pub from: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl Conn {
    pub fn seen(&self) -> Seen {
        self.seen.lock().expect("seen lock").clone()
    }
}

/// Connections from the client's namespace, one thread each; closed on drop.
pub struct Pool {
    pub conns: Vec<Conn>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Opens one connection from each of `sources` (port 0: the kernel's choice) to `dst`
    /// from namespace `ns`, and waits (at most `settle`) until each has an echo or an
    /// error.
    pub fn open(ns: &str, sources: &[SocketAddr], dst: SocketAddr, settle: Duration) -> Pool {
        let stop = Arc::new(AtomicBool::new(false));
        let (mut conns, mut threads) = (Vec::new(), Vec::new());
        for &src in sources {
            let seen = Arc::new(Mutex::new(Seen::default()));
            let (tx, rx) = std::sync::mpsc::channel();
            let (ns, stop, record) = (ns.to_string(), stop.clone(), seen.clone());
            threads.push(thread::spawn(move || {
                let stream = enter(&ns).map_err(anyhow::Error::from).and_then(|()| {
                    let stream = connect(src, dst)?;
                    let _ = tx.send(stream.local_addr().ok());
                    Ok(stream)
                });
                match stream {
                    Ok(stream) => talk(stream, &stop, &record),
                    Err(e) => {
                        let _ = tx.send(None);
                        record.lock().expect("seen lock").error = Some(format!("{e:#}"));
                    }
                }
            }));
            let from = rx.recv().ok().flatten().unwrap_or(src);
            conns.push(Conn { from, seen });
        }
        let pool = Pool { conns, stop, threads };
        wait_for(settle, || {
            pool.seen().iter().all(|s| s.echoed > 0 || s.error.is_some()).then_some(())
        });
        pool
    }

    /// What each connection saw so far, in the order of `conns`.
    pub fn seen(&self) -> Vec<Seen> {
        self.conns.iter().map(Conn::seen).collect()
    }

    /// Waits (at most `timeout`) until every connection has had `lines` more echoes than
    /// in `since`, or has ended.
    pub fn wait_lines(&self, since: &[Seen], lines: u64, timeout: Duration) {
        wait_for(timeout, || {
            let now = self.seen();
            let done = now
                .iter()
                .zip(since)
                .all(|(s, b)| s.error.is_some() || s.echoed >= b.echoed + lines);
            done.then_some(())
        });
    }

    /// Closes every connection (the client closes: a FIN) and returns what each saw.
    pub fn close(mut self) -> Vec<Seen> {
        self.stop_all();
        self.seen()
    }

    fn stop_all(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn connect(src: SocketAddr, dst: SocketAddr) -> Result<TcpStream> {
    let s = Socket::new(Domain::for_address(dst), Type::STREAM, None)?;
    // A port chosen by the test may be reused at once, as a client reusing its port would.
    s.set_reuse_address(true)?;
    s.bind(&src.into())?;
    s.connect_timeout(&dst.into(), NO_ECHO)?;
    s.set_read_timeout(Some(NO_ECHO))?;
    s.set_tcp_nodelay(true)?;
    Ok(s.into())
}

/// Sends a numbered line every `EVERY` and checks its echo until stopped, `LIFETIME`
/// passes, or the connection fails.
fn talk(stream: TcpStream, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let Ok(read) = stream.try_clone() else { return };
    let (mut write, mut read) = (stream, BufReader::new(read));
    let end = Instant::now() + LIFETIME;
    let mut line = String::new();
    for number in 0u64.. {
        if stop.load(Ordering::Relaxed) || Instant::now() > end {
            return;
        }
        let sent = Instant::now();
        line.clear();
        let echo = write
            .write_all(format!("{number}\n").as_bytes())
            .and_then(|()| read.read_line(&mut line));
        let waited = sent.elapsed();
        let mut s = seen.lock().expect("seen lock");
        s.longest = s.longest.max(waited);
        let (node, got) = line.trim_end().split_once(' ').unwrap_or(("", ""));
        match echo {
            Ok(0) => s.error = Some(format!("closed by the server after {} echoes", s.echoed)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                s.error = Some(format!("no echo within {NO_ECHO:?} after {} echoes", s.echoed))
            }
            Err(e) => s.error = Some(format!("{e} after {} echoes", s.echoed)),
            Ok(_) if got != number.to_string() => {
                s.error = Some(format!("line {number} echoed as {:?}", line.trim_end()))
            }
            Ok(_) => {
                s.echoed += 1;
                if !s.nodes.iter().any(|n| n == node) {
                    s.nodes.push(node.to_string());
                }
            }
        }
        if s.error.is_some() {
            return;
        }
        drop(s);
        // Paces the traffic on purpose: a line every EVERY, as the application sends it.
        thread::sleep(EVERY.saturating_sub(sent.elapsed()));
    }
}
