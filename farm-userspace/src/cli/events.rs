//! `farm events`: the agent's event history through its Unix socket, oldest first, and
//! with `--follow` what comes after, as it comes.
use std::{io::Write, thread, time::Duration};

use anyhow::{Result, bail};
use clap::Args;
use farm_userspace::agent::{
    control::{self, Reply, Request},
    events::Entry,
};

use super::steer::SteerArgs;

pub const JSON_HELP: &str = "JSON (--json): one object a line, {seq (counts up over the agent's life), time \
(RFC 3339, UTC), level (error|warn|info|debug), kind (what happened, in a word: started, peer-failed, \
view-changed, installed, fenced, reloaded, ignored, ...), message (the log line)}.";

/// How often `--follow` asks the agent for what is new.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

#[derive(Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub agent: SteerArgs,
    /// Keep printing events as the agent records them, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object a line instead of text (its fields are listed below).
    #[arg(long)]
    pub json: bool,
}

/// Prints the history to `out`, and with `--follow` what comes after. A reader that
/// went away (`| head`) ends it, with no error.
pub fn run(args: &EventsArgs, out: &mut impl Write) -> Result<()> {
    let iface = args.agent.iface()?;
    let mut last = None;
    loop {
        let entries = match control::ask(&iface, &Request::Events { after: last })? {
            Reply::Events(entries) => entries,
            Reply::Refused(why) => bail!("the agent refused: {why}"),
            Reply::Status(_) | Reply::Done(_) => bail!(
                "the agent answered a request for events with something else: are the agent and this farm the same version?"
            ),
        };
        let text: String = entries.iter().map(|e| line(e, args.json)).collect();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            written => written?,
        }
        if !args.follow {
            return Ok(());
        }
        last = entries.last().map(|e| e.seq).or(last);
        thread::sleep(FOLLOW_EVERY);
    }
}

fn line(e: &Entry, json: bool) -> String {
    match json {
        true => serde_json::to_string(e).expect("plain data") + "\n",
        false => format!("{}  {:<5}  {:<15}  {}\n", e.time, e.level, e.kind, e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_an_event_in_text_or_json() {
        let e = Entry {
            seq: 7,
            time: "2026-11-28T10:34:20.123Z".into(),
            level: "warn".into(),
            kind: "peer-failed".into(),
            message: "node 3 failed: no heartbeat for 312 ms".into(),
        };
        assert_eq!(
            line(&e, false),
            "2026-11-28T10:34:20.123Z  warn   peer-failed      node 3 failed: no heartbeat for 312 ms\n"
        );
        assert_eq!(
            line(&e, true),
            "{\"seq\":7,\"time\":\"2026-11-28T10:34:20.123Z\",\"level\":\"warn\",\"kind\":\"peer-failed\",\"message\":\"node 3 failed: no heartbeat for 312 ms\"}\n"
        );
    }
}
