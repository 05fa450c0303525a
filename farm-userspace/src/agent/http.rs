//! The agent's HTTP listener (`http.listen`): `/metrics` in Prometheus' text format and
//! `/`, the status page. Read-only: nothing served here changes the agent (any other
//! method than GET or HEAD is refused, any other path is not found). Each request asks
//! the agent's loop for a snapshot, which costs it a few map reads, and renders it on a
//! blocking thread, so a scrape never holds up a heartbeat or the lease.
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use anyhow::{Context, Result};
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use log::warn;
use tokio::sync::{mpsc, oneshot};

use super::{
    metrics::{self, Instruments},
    page::{self, Sample},
    snapshot::Snapshot,
};

/// A request for a snapshot, and where it goes (or why none could be taken).
pub type Asked = oneshot::Sender<Result<Box<Snapshot>, String>>;

struct Shared {
    to_loop: mpsc::Sender<Asked>,
    instruments: Instruments,
    /// The counters of the page served last: the next page's rates are against them.
    last: Mutex<Option<Sample>>,
}

/// Binds `listen` and serves it; the loop answers the snapshot requests that come out
/// of the receiver.
pub fn serve(listen: SocketAddr, instruments: Instruments) -> Result<mpsc::Receiver<Asked>> {
    let bound = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .with_context(|| {
            format!(
                "listen on {listen} for the metrics and status page (http.listen): free that port, or set http.listen to another address or `off`"
            )
        })?;
    let (to_loop, asked) = mpsc::channel(16);
    let shared = Arc::new(Shared { to_loop, instruments, last: Mutex::new(None) });
    let app = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(scrape))
        .with_state(shared);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(bound, app).await {
            warn!("the metrics and status page listener on {listen} stopped: {e}");
        }
    });
    Ok(asked)
}

impl Shared {
    async fn snapshot(&self) -> Result<Box<Snapshot>, Response> {
        let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
        let (tx, rx) = oneshot::channel();
        let stopping = || unavailable("the farm agent is stopping".into());
        self.to_loop.send(tx).await.map_err(|_| stopping())?;
        rx.await.map_err(|_| stopping())?.map_err(unavailable)
    }
}

/// `render` on a blocking thread.
async fn off_the_loop<T: Send + 'static>(
    render: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(render).await.map_err(|e| {
        (StatusCode::INTERNAL_SERVER_ERROR, format!("rendering failed: {e}")).into_response()
    })
}

async fn scrape(State(shared): State<Arc<Shared>>) -> Response {
    let answer = async {
        let snap = shared.snapshot().await?;
        let instruments = shared.instruments.clone();
        off_the_loop(move || metrics::exposition(&instruments, &snap)).await
    };
    match answer.await {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(response) => response,
    }
}

async fn status_page(State(shared): State<Arc<Shared>>) -> Response {
    let answer = async {
        let snap = shared.snapshot().await?;
        let sample = Sample::of(&snap);
        let before = shared.last.lock().expect("not poisoned").replace(sample);
        off_the_loop(move || page::render(&snap, before.as_ref())).await
    };
    match answer.await {
        Ok(html) => Html(html).into_response(),
        Err(response) => response,
    }
}
