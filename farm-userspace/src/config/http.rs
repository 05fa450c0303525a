//! The `http:` section: where this node's agent serves its Prometheus metrics and its
//! status page, or `off`.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{ConfigError, Http, check::Ctx, raw::RawHttp};

/// Loopback, so that nothing is exposed beyond the host unless the file says so.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9740);
/// What `listen` says to serve nothing.
const OFF: &str = "off";

pub(super) fn http(raw: Option<RawHttp>, ctx: &Ctx) -> Result<Http, ConfigError> {
    let listen = match raw.and_then(|h| h.listen) {
        None => Some(DEFAULT_LISTEN),
        Some(text) if text == OFF => None,
        Some(text) => Some(ctx.socket_address("http.listen", &text, "serve the metrics")?),
    };
    Ok(Http { listen })
}
