//! The soak's accounts: every UDP number and TCP connection set against the events'
//! windows. A number that reached no node, or a connection no node answered, is
//! explained if it was sent inside a window; a number that reached two nodes only if it
//! was sent inside a partition's window (`split`).
use std::time::Instant;

use super::load::Attempt;

/// One event, from the moment it hit to the moment the farm had settled again.
#[derive(Debug, Clone)]
pub struct Window {
    pub kind: &'static str,
    /// A partition: each side may serve alone.
    pub split: bool,
    pub start: Instant,
    pub end: Instant,
    /// Peers failed, as the agents logged it while the window lasted.
    pub failovers: usize,
}

impl Window {
    fn holds(&self, at: Instant) -> bool {
        self.start <= at && at <= self.end
    }
}

pub struct Ledger<'a> {
    pub windows: &'a [Window],
    /// When each number was sent, by number.
    pub udp: &'a [Instant],
    pub tcp: &'a [Attempt],
}

#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub sent: usize,
    pub twice_explained: usize,
    pub twice_unexplained: usize,
    pub lost_explained: usize,
    pub lost_unexplained: usize,
    pub tcp_tried: usize,
    pub tcp_failed_explained: usize,
    pub tcp_failed_unexplained: usize,
    /// The first few numbers that are not explained, and why: to look into.
    pub unexplained: Vec<String>,
}

/// Examples kept of what is not explained.
const EXAMPLES: usize = 5;

impl Ledger<'_> {
    /// The accounts, given the numbers each node received.
    pub fn summary(&self, received: &[Vec<u64>]) -> Summary {
        let mut reached = vec![0u8; self.udp.len()];
        for numbers in received {
            let mut mine: Vec<u64> = numbers.clone();
            mine.sort_unstable();
            mine.dedup();
            for n in mine {
                if let Some(count) = reached.get_mut(n as usize) {
                    *count = count.saturating_add(1);
                }
            }
        }
        let first = self.udp.first().copied();
        let mut s =
            Summary { sent: self.udp.len(), tcp_tried: self.tcp.len(), ..Summary::default() };
        for (number, (&at, &nodes)) in self.udp.iter().zip(&reached).enumerate() {
            let inside = self.windows.iter().find(|w| w.holds(at));
            let (explained, unexplained, what) = match nodes {
                0 => (&mut s.lost_explained, &mut s.lost_unexplained, "reached no node"),
                1 => continue,
                _ => (&mut s.twice_explained, &mut s.twice_unexplained, "reached two nodes"),
            };
            let explains = inside.is_some_and(|w| nodes == 0 || w.split);
            if explains {
                *explained += 1;
                continue;
            }
            *unexplained += 1;
            if s.unexplained.len() < EXAMPLES {
                let since = first.map_or(0.0, |f| at.duration_since(f).as_secs_f64());
                let during = inside.map_or(String::new(), |w| format!(" during a {}", w.kind));
                s.unexplained.push(format!("number {number} sent at {since:.3} s {what}{during}"));
            }
        }
        for attempt in self.tcp.iter().filter(|a| !a.answered) {
            let overlaps =
                self.windows.iter().any(|w| w.start <= attempt.end && attempt.start <= w.end);
            match overlaps {
                true => s.tcp_failed_explained += 1,
                false => s.tcp_failed_unexplained += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn windows_explain_losses_and_partitions_explain_doubles() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let window = |kind, split, from, to| Window {
            kind,
            split,
            start: at(from),
            end: at(to),
            failovers: 0,
        };
        let windows = [window("kill", false, 100, 200), window("partition", true, 300, 400)];
        // Numbers 0..6 sent at 0, 150, 250, 350, 450 and 150 ms.
        let udp = [at(0), at(150), at(250), at(350), at(450), at(150)];
        let attempt = |from, to, answered| Attempt { start: at(from), end: at(to), answered };
        let tcp = [attempt(50, 120, false), attempt(210, 220, false), attempt(0, 10, true)];
        let ledger = Ledger { windows: &windows, udp: &udp, tcp: &tcp };
        // Node 1: 0, 2, 3; node 2: 3, 4, 5; nobody: 1; twice: 3 (in the partition), 5
        // (during the kill).
        let s = ledger.summary(&[vec![0, 2, 3, 5], vec![3, 4, 5, 4]]);
        assert_eq!(
            s,
            Summary {
                sent: 6,
                twice_explained: 1,
                twice_unexplained: 1,
                lost_explained: 1,
                lost_unexplained: 0,
                tcp_tried: 3,
                tcp_failed_explained: 1,
                tcp_failed_unexplained: 1,
                unexplained: vec![
                    "number 5 sent at 0.150 s reached two nodes during a kill".into()
                ],
            }
        );
    }
}
