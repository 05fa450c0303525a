//! The agent's event history: what it decided and why (every note of its core, and its
//! own start), the newest `KEPT` of them, each with the wall-clock time and a sequence
//! number. `farm events` reads it through the control socket, and `--follow` asks again
//! for what came after the last it printed; the status page shows the newest.
//!
//! Ignored datagrams are heartbeat anomalies worth seeing, but a flood of forged ones
//! must not push everything else out: one a second is kept, and it says how many were
//! left out before it (`farm status` and the metrics count every one).
use std::{
    collections::VecDeque,
    time::{Duration, Instant, SystemTime},
};

use log::Level;
use serde::{Deserialize, Serialize};

use super::note::Note;

/// Entries kept: hours of a busy farm's changes, a few hundred kilobytes.
pub const KEPT: usize = 1000;
/// At most one ignored datagram per this long goes in.
const IGNORED_EVERY: Duration = Duration::from_secs(1);

/// One thing the agent did, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Counts up from 1 over the agent's life; `farm events --follow` asks for those
    /// after the last it has.
    pub seq: u64,
    /// RFC 3339, UTC, to the millisecond.
    pub time: String,
    /// error, warn, info or debug: the level the log line has.
    pub level: String,
    /// A word for what happened (`peer-failed`, `installed`, `fenced`, ...).
    pub kind: String,
    /// The log line.
    pub message: String,
}

pub struct History {
    entries: VecDeque<Entry>,
    next: u64,
    /// When an ignored datagram last went in, and how many were left out since.
    ignored: Option<(Instant, u64)>,
}

impl Default for History {
    fn default() -> History {
        History { entries: VecDeque::with_capacity(KEPT), next: 1, ignored: None }
    }
}

impl History {
    /// Records `note`, taken at `now` when the wall clock read `wall`.
    pub fn note(&mut self, note: &Note, now: Instant, wall: SystemTime) {
        let mut message = note.to_string();
        if let Note::Ignored { .. } = note {
            match self.ignored {
                Some((at, left_out)) if now < at + IGNORED_EVERY => {
                    self.ignored = Some((at, left_out + 1));
                    return;
                }
                Some((_, left_out)) if left_out > 0 => {
                    message += &format!(" ({left_out} more ignored since the last one shown)");
                }
                _ => {}
            }
            self.ignored = Some((now, 0));
        }
        self.record(wall, note.level(), note.kind(), message);
    }

    pub fn record(&mut self, wall: SystemTime, level: Level, kind: &str, message: String) {
        if self.entries.len() == KEPT {
            self.entries.pop_front();
        }
        let time =
            jiff::Timestamp::try_from(wall).map_or_else(|_| "-".into(), |t| format!("{t:.3}"));
        let level = level.as_str().to_ascii_lowercase();
        self.entries.push_back(Entry { seq: self.next, time, level, kind: kind.into(), message });
        self.next += 1;
    }

    /// The entries after `after` (every one kept for `None`), oldest first.
    pub fn since(&self, after: Option<u64>) -> Vec<Entry> {
        let after = after.unwrap_or(0);
        self.entries.iter().filter(|e| e.seq > after).cloned().collect()
    }

    /// The newest `count` entries, newest first.
    pub fn latest(&self, count: usize) -> Vec<Entry> {
        self.entries.iter().rev().take(count).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::membership::Change;

    fn ignored() -> Note {
        Note::Ignored { why: "from 198.18.0.99:7400: not signed with the shared key".into() }
    }

    #[test]
    fn entries_carry_the_time_level_kind_and_line() {
        let (mut h, now) = (History::default(), Instant::now());
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        h.note(
            &Note::Membership(Change::PeerFailed { id: 3, silent: Duration::from_millis(312) }),
            now,
            wall,
        );
        let want = Entry {
            seq: 1,
            time: "2023-11-14T22:13:20.123Z".into(),
            level: "warn".into(),
            kind: "peer-failed".into(),
            message: "node 3 failed: no heartbeat for 312 ms".into(),
        };
        assert_eq!(h.since(None), [want]);
    }

    #[test]
    fn the_history_keeps_the_newest_and_answers_from_a_sequence_number() {
        let (mut h, now, wall) = (History::default(), Instant::now(), SystemTime::now());
        for i in 0..KEPT + 5 {
            h.record(wall, Level::Info, "steered", format!("step {i}"));
        }
        let all = h.since(None);
        assert_eq!((all.len(), all[0].seq, all[KEPT - 1].seq), (KEPT, 6, KEPT as u64 + 5));
        let after: Vec<u64> = h.since(Some(KEPT as u64 + 3)).iter().map(|e| e.seq).collect();
        assert_eq!(after, [KEPT as u64 + 4, KEPT as u64 + 5]);
        let latest: Vec<u64> = h.latest(2).iter().map(|e| e.seq).collect();
        assert_eq!(latest, [KEPT as u64 + 5, KEPT as u64 + 4]);
        h.note(&Note::NobodyOwns, now, wall);
        assert!(h.since(Some(KEPT as u64 + 5))[0].message.contains("no node owns a bucket"));
    }

    #[test]
    fn a_flood_of_ignored_datagrams_keeps_one_a_second() {
        let (mut h, start, wall) = (History::default(), Instant::now(), SystemTime::now());
        for ms in 0..2500 {
            h.note(&ignored(), start + Duration::from_millis(ms), wall);
        }
        let kept: Vec<String> = h.since(None).into_iter().map(|e| e.message).collect();
        assert_eq!(kept.len(), 3, "{kept:#?}");
        assert!(!kept[0].contains("more ignored"));
        assert!(kept[1].ends_with(
            "not signed with the shared key (999 more ignored since the last one shown)"
        ));
        assert!(kept[2].ends_with("(999 more ignored since the last one shown)"));
    }
}
