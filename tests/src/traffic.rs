//! Real servers and clients inside namespaces: a TCP server that answers with its node's
//! name, and clients that connect from chosen source addresses. Every loop is bounded in
//! count and time.
use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use socket2::{Domain, Socket, Type};

use crate::netns::enter;

/// Longest a test server lives, whatever the test does.
const SERVER_LIFETIME: Duration = Duration::from_secs(300);
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// A TCP server in a namespace answering every connection with `reply` and closing.
/// Stops when dropped.
pub struct TcpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    pub fn start(ns: &str, port: u16, reply: String) -> Result<TcpServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ns, flag) = (ns.to_string(), stop.clone());
        let thread = thread::spawn(move || {
            let bound = enter(&ns).map_err(anyhow::Error::from).and_then(|()| {
                let l = TcpListener::bind(("::", port)).context("bind")?;
                l.set_nonblocking(true)?;
                Ok(l)
            });
            let listener = match bound {
                Ok(l) => {
                    let _ = ready_tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let end = Instant::now() + SERVER_LIFETIME;
            while !flag.load(Ordering::Relaxed) && Instant::now() < end {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(reply.as_bytes());
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        ready_rx.recv().context("server thread")??;
        Ok(TcpServer { stop, thread: Some(thread) })
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One client connection: where from, and what the server said (or why nothing).
#[derive(Debug, Clone)]
pub struct Answer {
    pub from: SocketAddr,
    pub reply: Result<String, String>,
}

/// Connects once from `src` (port chosen by the kernel) to `dst` and reads the reply.
pub fn ask_tcp(src: IpAddr, dst: SocketAddr) -> Answer {
    let mut from = SocketAddr::new(src, 0);
    let reply = (|| -> Result<String> {
        let s = Socket::new(Domain::for_address(dst), Type::STREAM, None)?;
        s.bind(&SocketAddr::new(src, 0).into())?;
        from = s.local_addr()?.as_socket().context("local address")?;
        s.connect_timeout(&dst.into(), IO_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        let mut stream: std::net::TcpStream = s.into();
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })()
    .map_err(|e| format!("{e:#}"));
    Answer { from, reply }
}
