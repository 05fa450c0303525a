//! The agents' HTTP listener as Prometheus and a browser meet it, from inside a node's
//! namespace (it listens on the node's loopback): one plain HTTP/1.0 GET, the text
//! exposition read back into samples, and `promtool check metrics`, Prometheus' own lint.
use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use farm_userspace::config::DEFAULT_LISTEN;

use crate::netns::in_ns;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` from the agent listening on the default address in namespace `ns`: the
/// status code and the body.
pub fn get(ns: &str, path: &str) -> Result<(u16, String)> {
    request(ns, "GET", path)
}

/// `method path` (with no body) to the agent listening on the default address in
/// namespace `ns`: the status code and the body.
pub fn request(ns: &str, method: &str, path: &str) -> Result<(u16, String)> {
    let request =
        format!("{method} {path} HTTP/1.0\r\nHost: {DEFAULT_LISTEN}\r\nContent-Length: 0\r\n\r\n");
    in_ns(ns, move || fetch(DEFAULT_LISTEN, &request))?
}

fn fetch(address: SocketAddr, request: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)
        .with_context(|| format!("connect to {address}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(request.as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").context("no end of the headers")?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).context("no status")?;
    Ok((status, body.to_string()))
}

/// One sample of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a text exposition (label values with no `"`, `\` or `,` in them, as
/// farm's are).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            Some(Sample { name: name.into(), labels, value: value.parse().ok()? })
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include `with`.
pub fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| with.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v)))
        .map(|s| s.value)
        .sum()
}

/// `promtool check metrics` on `text`: its complaints, if it has any.
pub fn promtool(text: &str) -> Result<()> {
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run promtool (Debian's prometheus package; `cargo xtask setup` installs it)")?;
    lint.stdin.take().context("stdin")?.write_all(text.as_bytes())?;
    let out = lint.wait_with_output()?;
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !said.trim().is_empty() {
        bail!("promtool check metrics: {}", said.trim());
    }
    Ok(())
}

/// `promtool check rules` on a rule group recording each of `queries`: whether each is
/// PromQL, as Prometheus parses it. `dir` holds the file while it runs.
pub fn promtool_queries(queries: &[String], dir: &std::path::Path) -> Result<()> {
    let mut rules = String::from("groups:\n  - name: farm\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(query)?;
        rules += &format!("      - record: farm:query_{i}\n        expr: {quoted}\n");
    }
    let file = dir.join("queries.rules.yml");
    std::fs::write(&file, rules)?;
    let out = Command::new("promtool").arg("check").arg("rules").arg(&file).output()?;
    if !out.status.success() {
        bail!("promtool check rules: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
    Ok(())
}
