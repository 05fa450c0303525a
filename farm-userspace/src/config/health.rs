//! A service's `health:` checkers and its `failback:`. The defaults notice a dead
//! application in about two seconds, where HAProxy's (2 s interval, fall 3) take six:
//! a farm moves the clients of one node only, and a client refused for six seconds is
//! the complaint farms are chosen to answer. A single failed check moves nothing (fall
//! 2), and a checker that passes again needs two checks in a row (rise 2), as HAProxy's.
use std::net::SocketAddr;

use super::{
    Affinity, CheckKind, Checker, ConfigError, Failback,
    check::Ctx,
    ranges::claim,
    raw::{RawChecker, RawFailback},
};

pub const DEFAULT_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 2;
/// How long a better node that came back waits, healthy, before an `active-backup`
/// service returns to it: long enough to see it stay up, short enough that the
/// preferred node serves again within a minute of a restart.
pub const DEFAULT_FAILBACK_DELAY_MS: u64 = 10_000;
/// Checkers a service may have.
const MAX_CHECKERS: u32 = 16;

pub(super) fn checkers(
    ctx: &Ctx,
    at: &str,
    raw: Option<Vec<RawChecker>>,
) -> Result<Vec<Checker>, ConfigError> {
    let raw = raw.unwrap_or_default();
    ctx.count(&format!("{at}.health"), raw.len(), 0..=MAX_CHECKERS)?;
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| checker(ctx, &format!("{at}.health[{i}]"), c))
        .collect()
}

fn checker(ctx: &Ctx, at: &str, raw: RawChecker) -> Result<Checker, ConfigError> {
    let kinds = [raw.tcp.is_some(), raw.http.is_some(), raw.exec.is_some()];
    if kinds.iter().filter(|&&k| k).count() != 1 {
        return Err(ctx.error(
            at,
            "give exactly one of tcp: ADDRESS:PORT, http: ADDRESS:PORT or exec: [COMMAND, ARGS...]",
        ));
    }
    if raw.http.is_none() {
        let http_only = [("path", raw.path.is_some()), ("status", raw.status.is_some())];
        let extra = http_only.into_iter().chain([("body", raw.body.is_some())]).find(|f| f.1);
        if let Some((field, _)) = extra {
            return Err(ctx.error(
                &format!("{at}.{field}"),
                "is for http checkers only; remove it or make the checker http",
            ));
        }
    }
    let kind = match (raw.tcp, raw.http, raw.exec) {
        (Some(address), _, _) => CheckKind::Tcp { address: address_of(ctx, at, "tcp", &address)? },
        (_, Some(address), _) => CheckKind::Http {
            address: address_of(ctx, at, "http", &address)?,
            path: path(ctx, at, raw.path)?,
            status: match raw.status {
                None => (200, 399),
                Some(item) => {
                    let c = claim(ctx, format!("{at}.status"), &item, "status", 100..=599)?;
                    (c.first as u16, c.last as u16)
                }
            },
            body: match raw.body {
                Some(b) if b.is_empty() => {
                    return Err(ctx.error(
                        &format!("{at}.body"),
                        "is empty; give the text a healthy answer holds, or leave body out",
                    ));
                }
                body => body,
            },
        },
        (_, _, Some(command)) => {
            if command.first().is_none_or(|c| c.is_empty()) {
                return Err(ctx.error(
                    &format!("{at}.exec"),
                    "names no command; write it as a list, e.g. [\"/usr/bin/test\", \"-e\", \"/run/web.up\"]",
                ));
            }
            CheckKind::Exec { command }
        }
        (None, None, None) => unreachable!("exactly one kind was checked above"),
    };
    let interval_ms = ctx.optional(
        &format!("{at}.interval_ms"),
        raw.interval_ms,
        DEFAULT_INTERVAL_MS,
        100..=3_600_000,
    )?;
    let timeout_ms = ctx.optional(
        &format!("{at}.timeout_ms"),
        raw.timeout_ms,
        DEFAULT_TIMEOUT_MS.min(interval_ms),
        10..=interval_ms,
    )?;
    Ok(Checker {
        kind,
        interval_ms,
        timeout_ms,
        rise: ctx.optional(&format!("{at}.rise"), raw.rise, DEFAULT_RISE, 1..=100)?,
        fall: ctx.optional(&format!("{at}.fall"), raw.fall, DEFAULT_FALL, 1..=100)?,
    })
}

fn address_of(ctx: &Ctx, at: &str, kind: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ctx.error(
            &format!("{at}.{kind}"),
            format!("{text:?} is not an address:port; write e.g. 127.0.0.1:80 or [::1]:80"),
        )
    })
}

fn path(ctx: &Ctx, at: &str, raw: Option<String>) -> Result<String, ConfigError> {
    let path = raw.unwrap_or_else(|| "/".into());
    let printable = path.chars().all(|c| c.is_ascii_graphic());
    if path.starts_with('/') && printable {
        return Ok(path);
    }
    Err(ctx.error(
        &format!("{at}.path"),
        format!("{path:?} is not a request path; write it as /health, without spaces"),
    ))
}

pub(super) fn failback(
    ctx: &Ctx,
    at: &str,
    affinity: Affinity,
    raw: Option<RawFailback>,
    delay_ms: Option<u64>,
) -> Result<Failback, ConfigError> {
    if affinity != Affinity::ActiveBackup {
        let given = [("failback", raw.is_some()), ("failback_delay_ms", delay_ms.is_some())];
        if let Some((field, _)) = given.into_iter().find(|f| f.1) {
            return Err(ctx.error(
                &format!("{at}.{field}"),
                "is for affinity: active-backup only; remove it or set that affinity",
            ));
        }
    }
    match raw.unwrap_or(RawFailback::Auto) {
        RawFailback::Auto => Ok(Failback::Auto {
            delay_ms: ctx.optional(
                &format!("{at}.failback_delay_ms"),
                delay_ms,
                DEFAULT_FAILBACK_DELAY_MS,
                0..=86_400_000,
            )?,
        }),
        RawFailback::Manual if delay_ms.is_some() => Err(ctx.error(
            &format!("{at}.failback_delay_ms"),
            "is for failback: auto only; with manual, the service returns on `farm failback`",
        )),
        RawFailback::Manual => Ok(Failback::Manual),
    }
}
