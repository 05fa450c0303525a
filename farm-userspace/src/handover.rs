//! Buckets in handover, as the agent decides them and the data plane holds them: which
//! buckets of which slots move between two live nodes, keeping their flows on the old
//! owner (`farm_common::Handover`; the program's side is farm-ebpf's `handover`), and
//! how many flows this node still keeps on the buckets it gave away.
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use farm_common::{
    FlowKey, HANDOVER_ENTRIES, HANDOVER_LEARNING, Handover, MODE_CLIENT_IP_PORT, NO_OWNER,
    NodeConfig, bucket_of, flow_hash, port_rule_parts,
};
use serde::{Deserialize, Serialize};

use crate::{
    classify::{Flow, Route, route},
    config::Protocol,
    rules::Rules,
};

/// The buckets in handover: (slot, bucket) to its handover.
pub type Moving = BTreeMap<(usize, u32), Handover>;

/// Buckets in handover and when each ends, with the soonest end at hand: the agent
/// asks for it at each wake-up (hundreds a second in a big farm), and a move may hand
/// over thousands of buckets.
#[derive(Debug, Clone, Default)]
pub struct Timed {
    by_bucket: BTreeMap<(usize, u32), (Handover, Instant)>,
    soonest: Option<Instant>,
}

impl FromIterator<((usize, u32), (Handover, Instant))> for Timed {
    fn from_iter<I: IntoIterator<Item = ((usize, u32), (Handover, Instant))>>(iter: I) -> Timed {
        let by_bucket: BTreeMap<_, _> = iter.into_iter().collect();
        let soonest = by_bucket.values().map(|(_, until)| *until).min();
        Timed { by_bucket, soonest }
    }
}

impl IntoIterator for Timed {
    type Item = ((usize, u32), (Handover, Instant));
    type IntoIter = std::collections::btree_map::IntoIter<(usize, u32), (Handover, Instant)>;
    fn into_iter(self) -> Self::IntoIter {
        self.by_bucket.into_iter()
    }
}

impl Timed {
    /// (slot, bucket) and its handover and end, in (slot, bucket) order.
    pub fn iter(&self) -> impl Iterator<Item = (&(usize, u32), &(Handover, Instant))> {
        self.by_bucket.iter()
    }

    pub fn get(&self, key: &(usize, u32)) -> Option<&(Handover, Instant)> {
        self.by_bucket.get(key)
    }

    pub fn len(&self) -> usize {
        self.by_bucket.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_bucket.is_empty()
    }

    /// When the soonest handover ends.
    pub fn soonest(&self) -> Option<Instant> {
        self.soonest
    }

    /// When the last handover ends.
    pub fn last(&self) -> Option<Instant> {
        self.by_bucket.values().map(|(_, until)| *until).max()
    }

    /// Ends the handovers whose time is up at `now`; how many ended.
    pub fn expire(&mut self, now: Instant) -> usize {
        if self.soonest.is_none_or(|soonest| soonest > now) {
            return 0;
        }
        let before = self.len();
        *self = std::mem::take(self).into_iter().filter(|(_, (_, until))| *until > now).collect();
        before - self.len()
    }
}

/// Most buckets one move hands over (a drain of one node of three at 4,096 buckets and
/// five slots moves 12,000); those under way from earlier moves go on beside them, up
/// to what a half of `FARM_HANDOVER` holds. Each is a map write at each of the move's
/// three phases, on the agent's loop: at 16,384, some 25 ms a phase here, well inside a
/// lease.
pub const MOST: usize = 16_384;

/// Most buckets in handover at once: what one half of `FARM_HANDOVER` holds.
const HALF: usize = HANDOVER_ENTRIES as usize / 2;

/// A change of table as the handover sees it.
pub struct Change<'a> {
    /// The table of the last install: who holds each bucket's flows.
    pub current: &'a [Vec<u16>],
    /// The table the farm moves to.
    pub next: &'a [Vec<u16>],
    /// The members of the next view: a bucket whose owner is one of them moves for a
    /// planned reason and is handed over; any other owner failed or left.
    pub members: &'a [u16],
    /// This node, and whether it has not installed a table since it last owned nothing
    /// (it started, or was fenced): it does not know who held the buckets it takes, and
    /// hands them over from an unknown old owner.
    pub me: u16,
    pub joining: bool,
    /// The members of the next view not in this node's last install, or there in
    /// another incarnation: joining, as they see themselves.
    pub joiners: &'a [u16],
    /// Whether the change learns UDP flows before its release (`loses_a_node` says it
    /// does not).
    pub learns: bool,
    /// Where the change stands (`farm_common::HANDOVER_LEARNING` and on).
    pub phase: u8,
    /// When handovers that start now end.
    pub until: Instant,
}

/// The handovers after `change`: each earlier one whose bucket keeps its new owner and
/// whose old owner is still a member, and, unless the change loses a node, one for each
/// bucket that moves from a member (keeping its end if the same move was planned
/// before). At most `MOST` new ones; a move of more buckets moves the rest as a
/// failure would.
pub fn plan(earlier: &Timed, change: &Change) -> Timed {
    let (mut out, mut fresh) = (BTreeMap::new(), 0);
    // Both in (slot, bucket) order: walked together, a bucket costs a compare or two
    // (a table may have millions), not a lookup.
    let mut before = earlier.iter().peekable();
    for (slot, row) in change.next.iter().enumerate() {
        let current = change.current.get(slot).filter(|c| c.len() == row.len());
        for (bucket, &new) in row.iter().enumerate() {
            if out.len() == HALF {
                return out.into_iter().collect();
            }
            let key = (slot, bucket as u32);
            while before.next_if(|(k, _)| **k < key).is_some() {}
            let earlier = before.next_if(|(k, _)| **k == key).map(|(_, e)| e);
            if new == NO_OWNER || (earlier.is_none() && current.is_some_and(|c| c[bucket] == new)) {
                continue;
            }
            // Who holds the bucket's new flows: a bucket in handover is its new owner's
            // once released (the new owner may have installed the move though this node
            // did not, a view change overtaking it here), its old owner's before.
            let was = match earlier {
                Some((h, _)) if h.phase == HANDOVER_LEARNING => h.old,
                Some((h, _)) => h.new,
                None => current.map_or(NO_OWNER, |c| c[bucket]),
            };
            // A member, in the incarnation that held the flows: a node back as a new
            // incarnation (it failed, or was fenced) held nothing since.
            let known = |old: u16| change.members.contains(&old) && !change.joiners.contains(&old);
            // An earlier handover whose bucket keeps its new owner goes on, never back
            // to an earlier phase.
            // UDP flows stay only where both nodes learned them for long enough, and
            // both know it: not in a failover, which does not wait to learn, nor for a
            // node joining (a new incarnation), which cannot know who held them: its
            // UDP flows move at once, on both sides.
            let keep_udp = u8::from(change.learns && !change.joiners.contains(&new));
            let (old, phase, keep_udp) = match earlier {
                Some((h, _))
                    if was == new && h.new == new && (known(h.old) || h.old == NO_OWNER) =>
                {
                    (h.old, h.phase.max(change.phase), h.keep_udp)
                }
                // A failover starts no handover (it waits for nothing): its survivors'
                // moves go as the failed node's buckets do.
                _ if was != new && known(was) && change.learns => (was, change.phase, keep_udp),
                // A joining node's, from the table's readiness to its install (which
                // makes it a member of the farm's last install, no longer joining).
                Some((h, _)) if was == NO_OWNER && h.old == NO_OWNER && h.new == new => {
                    (NO_OWNER, change.phase, 0)
                }
                _ if was == NO_OWNER && change.joining && new == change.me => {
                    (NO_OWNER, change.phase, 0)
                }
                _ => continue,
            };
            let until = match earlier {
                Some((h, until)) if (h.old, h.new) == (old, new) => *until,
                _ => change.until,
            };
            let started = earlier.is_none_or(|(e, _)| (e.old, e.new) != (old, new));
            // A move starts while it learns, or not at all: the same first `MOST`
            // buckets on every node, learned alike.
            if started && (fresh == MOST || change.phase != HANDOVER_LEARNING) {
                continue;
            }
            fresh += usize::from(started);
            let h = Handover { old, new, phase, keep_udp, _pad: [0; 2] };
            out.insert(key, (h, until));
        }
    }
    out.into_iter().collect()
}

/// Whether `next` moves a bucket away from a node that is no member of the next view
/// (it failed, was fenced or left): a failover, which must not wait for handovers.
pub fn loses_a_node(current: &[Vec<u16>], next: &[Vec<u16>], members: &[u16]) -> bool {
    current.iter().zip(next).any(|(cur, row)| {
        cur.len() == row.len()
            && cur.iter().zip(row).any(|(&c, &n)| c != n && c != NO_OWNER && !members.contains(&c))
    })
}

/// The buckets `timed` hands from `me` to others.
pub fn given(timed: &Timed, me: u16) -> Vec<(usize, u32)> {
    timed.iter().filter(|(_, (h, _))| h.old == me).map(|(&k, _)| k).collect()
}

/// The handovers as the data plane holds them.
pub fn moving(timed: &Timed) -> Moving {
    timed.iter().map(|(&k, (h, _))| (k, *h)).collect()
}

/// Flows this node keeps on the buckets it gave away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub tcp: usize,
    pub udp: usize,
}

/// A TCP socket of this host's: its addresses and the kernel's state number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
}

/// The kernel's TCP states that hold no connection a client still uses.
const TCP_TIME_WAIT: u8 = 6;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// The flows among `sockets` and `flows` (live UDP flows the program learned, with their
/// holder) that this node (`node.node_id`) keeps on buckets `moving` hands from it to
/// another: its connections there, and the flows it holds there.
pub fn kept(
    moving: &Moving,
    rules: &Rules,
    node: &NodeConfig,
    sockets: &[Socket],
    flows: &[(FlowKey, u16)],
) -> Kept {
    let given = |slot: usize, bucket: u32| {
        moving.get(&(slot, bucket)).is_some_and(|h| h.old == node.node_id)
    };
    let tcp = sockets
        .iter()
        .filter(|s| !matches!(s.state, TCP_TIME_WAIT | TCP_CLOSE | TCP_LISTEN))
        .filter(|s| {
            let flow = Flow {
                vip: s.local.ip(),
                protocol: Protocol::Tcp,
                port: s.local.port(),
                client: s.remote.ip(),
                client_port: s.remote.port(),
            };
            matches!(route(rules, node, &flow), Route::Table { slot, bucket } if given(slot.into(), bucket))
        })
        .count();
    let udp = flows
        .iter()
        .filter(|(_, holder)| *holder == node.node_id)
        .map(|(f, _)| f)
        .filter(|f| {
            let mode = rules
                .ports
                .iter()
                .filter_map(|p| port_rule_parts(p.rule))
                .find(|&(slot, _)| slot == f.slot)
                .map(|(_, mode)| mode);
            let port = if mode == Some(MODE_CLIENT_IP_PORT) { f.client_port } else { 0 };
            let bucket = bucket_of(flow_hash(&f.client, port, node.seed), node.bucket_count);
            given(f.slot.into(), bucket)
        })
        .count();
    Kept { tcp, udp }
}

/// The sockets `/proc/net/tcp` (or `tcp6`, `v6`) lists; lines it cannot read are skipped.
pub fn parse_sockets(text: &str, v6: bool) -> Vec<Socket> {
    text.lines().skip(1).filter_map(|line| socket_line(line, v6)).collect()
}

fn socket_line(line: &str, v6: bool) -> Option<Socket> {
    let mut fields = line.split_whitespace().skip(1);
    let local = proc_addr(fields.next()?, v6)?;
    let remote = proc_addr(fields.next()?, v6)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    Some(Socket { local, remote, state })
}

/// `ADDR:PORT` as /proc/net/tcp prints it: the address as 32-bit words in host order,
/// each in hex, and the port in hex.
fn proc_addr(text: &str, v6: bool) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let ip = match (v6, words.as_slice()) {
        (false, [w]) => IpAddr::from(w.to_ne_bytes()),
        (true, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            // A dual-stack socket's IPv4 connection: the client is an IPv4 address.
            std::net::Ipv6Addr::from(bytes).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_common::HANDOVER_TAKING;
    use std::time::Duration;

    fn change<'a>(current: &'a [Vec<u16>], next: &'a [Vec<u16>], members: &'a [u16]) -> Change<'a> {
        Change {
            current,
            next,
            members,
            me: 1,
            joining: false,
            joiners: &[],
            learns: true,
            phase: HANDOVER_LEARNING,
            until: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn a_bucket_moving_from_a_member_is_handed_over_and_one_from_a_failed_node_is_not() {
        let current = vec![vec![1, 2, 3, 3]];
        let next = vec![vec![1, 1, 1, 2]];
        // Node 3 failed: its buckets move as today. Node 2 is drained: bucket 1 moves.
        let plan = plan(&Timed::default(), &change(&current, &next, &[1, 2]));
        let moving = moving(&plan);
        assert_eq!(moving.keys().copied().collect::<Vec<_>>(), vec![(0, 1)]);
        assert_eq!((moving[&(0, 1)].old, moving[&(0, 1)].new, moving[&(0, 1)].phase), (2, 1, 0));
        assert!(loses_a_node(&current, &next, &[1, 2]));
        assert!(!loses_a_node(&current, &next, &[1, 2, 3]));
    }

    #[test]
    fn a_handover_lasts_while_its_bucket_keeps_its_owner_and_its_old_owner_is_a_member() {
        let (current, next) = (vec![vec![2, 2]], vec![vec![1, 1]]);
        let learning = plan(&Timed::default(), &change(&current, &next, &[1, 2]));
        let first =
            plan(&learning, &Change { phase: HANDOVER_TAKING, ..change(&current, &next, &[1, 2]) });
        assert_eq!(first.len(), 2);
        // A move starts while it learns, or not at all.
        let late = Change { phase: HANDOVER_TAKING, ..change(&current, &next, &[1, 2]) };
        assert!(plan(&Timed::default(), &late).is_empty());
        // The next change leaves both buckets on node 1: both handovers go on, same end.
        let later = Change {
            until: Instant::now() + Duration::from_secs(99),
            ..change(&next, &next, &[1, 2])
        };
        let kept = plan(&first, &later);
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|(k, (_, until))| Some(until) == first.get(k).map(|(_, u)| u)));
        // Node 2 fails: its flows are gone, so are the handovers.
        assert!(plan(&first, &change(&next, &next, &[1])).is_empty());
        // Bucket 0 moves on to node 3: handed over from node 1, node 2's flows lost.
        let again = plan(&first, &change(&next, &[vec![3, 1]], &[1, 2, 3]));
        assert_eq!(again.get(&(0, 0)).map(|(h, _)| h.old), Some(1));
        assert_eq!(again.get(&(0, 1)).map(|(h, _)| h.old), Some(2));
    }

    #[test]
    fn a_joining_node_hands_over_what_it_takes_from_an_unknown_owner() {
        let empty = vec![vec![NO_OWNER; 3]];
        let next = vec![vec![1, 2, 1]];
        let plan =
            plan(&Timed::default(), &Change { joining: true, ..change(&empty, &next, &[1, 2]) });
        let olds: Vec<_> = plan.iter().map(|(k, (h, _))| (k.1, h.old, h.new)).collect();
        assert_eq!(olds, vec![(0, NO_OWNER, 1), (2, NO_OWNER, 1)]);
    }

    #[test]
    fn proc_net_tcp_lines_are_read() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 640012C6:0050 010112C6:9C42 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 20 4 30 10 -1\n";
        let s = parse_sockets(v4, false);
        assert_eq!(s[0].local, "198.18.0.100:80".parse().unwrap());
        assert_eq!(s[0].remote, "198.18.1.1:40002".parse().unwrap());
        assert_eq!(s[0].state, 1);
        let v6 = "header\n   0: B80D0120000000000000000064000000:0050 B80D0120000000000000000001000000:9C42 0A 0:0 0:0 0 0 0 1\n";
        let s = parse_sockets(v6, true);
        assert_eq!(s[0].local, "[2001:db8::64]:80".parse().unwrap());
        assert_eq!(s[0].state, 10);
        assert!(parse_sockets("header\n garbage\n", false).is_empty());
        // ::ffff:198.18.0.100, a dual-stack listener's IPv4 connection.
        let mapped = "header\n   0: 0000000000000000FFFF0000640012C6:0050 0000000000000000FFFF0000010112C6:9C42 01 0:0 0:0 0 0 0 1\n";
        let s = parse_sockets(mapped, true);
        assert_eq!(s[0].local, "198.18.0.100:80".parse().unwrap());
    }
}
