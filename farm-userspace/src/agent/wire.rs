//! The heartbeat datagram: what an agent tells its peers every tick, and how it is
//! signed. Fixed layout, big-endian, versioned; HMAC-SHA256 over everything before the
//! tag. Pure, so every way a datagram can be bad is tested without a network.
//!
//! ```text
//! 0   magic "FARM"        4   version      5  kind        6  phase     7  flags
//! 8   cluster id (u64)    16  node (u16)   18 members (u16)
//! 20  incarnation (u64)   28  sequence (u64)
//! 36  epoch (u64)         44  view digest (u64)          52 config digest (u64)
//! 60  weight override (u32, u32::MAX = none)               64 acks (u16)
//! 66  services, four bitmaps of u64 (bit i: service i of the file): unhealthy,
//!     drained, active, takes back
//! 98  votes' epoch (u64)  106 votes (u16)  108 apart reports (u16)
//! 110 member ids (u16 each), then the votes' ids (u16 each), then acks (node u16, seq
//!     u64 each), then apart reports (node u16, served ms u32, owned u32 each), then
//!     the 32-byte tag
//! ```
//! The votes are those of the sender's last install (`quorum`), with that install's
//! epoch; an apart report is what the sender did while it had failed that node (see
//! `apart`).
//! Flags: 1 drained, 2 a reply (sent back at once to one peer's heartbeat, so that the
//! peer's acknowledgement comes a round trip after its heartbeat, not an interval), 4 an
//! ask (answer at once: the sender holds a stale acknowledgement from the receiver; an
//! agent from before the flag counts it malformed, and misses only that answer).
use hmac::{Hmac, Mac};
use sha2::Sha256;

const MAGIC: &[u8; 4] = b"FARM";
/// 2: the services' bitmaps (health, drain, active-backup). 3: the votes and the
/// apart reports (quorum).
const VERSION: u8 = 3;
const HEADER: usize = 110;
const ACK: usize = 10;
const REPORT: usize = 10;
pub(crate) const TAG: usize = 32;
/// No override: the node's weights are the configuration's.
const NO_WEIGHT: u32 = u32::MAX;
const FLAG_DRAINED: u8 = 1;
const FLAG_REPLY: u8 = 2;
const FLAG_ASK: u8 = 4;

/// The most members a view can hold (the data plane's node ids are u16, but a farm is a
/// few dozen nodes; this bounds the datagram to well under one Ethernet frame).
pub const MAX_MEMBERS: usize = 256;
/// The largest datagram a valid heartbeat makes.
pub const MAX_DATAGRAM: usize = HEADER + (2 + 2 + ACK + REPORT) * MAX_MEMBERS + TAG;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// "I am alive, and this is the view I hold."
    Alive = 1,
    /// "I am leaving now: take my buckets without waiting for my heartbeats to stop."
    Leave = 2,
}

/// Where a node is in installing the table of its view (see `membership`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Holds the view, has not yet seen every member agree on it.
    Proposed = 0,
    /// Has given up the buckets the view moves away from it.
    Released = 1,
    /// Owns the view's table.
    Installed = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub kind: Kind,
    pub cluster: u64,
    pub node: u16,
    /// Chosen afresh each time the agent (re)joins; a larger one supersedes.
    pub incarnation: u64,
    /// Counts up within an incarnation: a repeat or an older one is a replay.
    pub seq: u64,
    pub epoch: u64,
    pub view: u64,
    pub phase: Phase,
    pub config: u64,
    /// `farm weight N` on that node: its weight in every table, instead of the file's.
    pub weight: Option<u32>,
    pub drained: bool,
    /// Sent back at once to one peer's heartbeat (and not itself answered).
    pub reply: bool,
    /// Asks for an answer at once, reply or not: the newest acknowledgement the sender
    /// holds from the receiver dates a heartbeat before a lost one (see `core`).
    pub ask: bool,
    /// The sender's own state of each service.
    pub services: ServiceBits,
    /// The ids in the sender's view, ascending.
    pub members: Vec<u16>,
    /// For each peer the sender hears: (its id, the sequence number of its newest
    /// heartbeat the sender received).
    pub acks: Vec<(u16, u64)>,
    /// The epoch of the sender's last install and the ids of its votes, ascending.
    pub votes_epoch: u64,
    pub votes: Vec<u16>,
    /// What the sender did while it had failed each of these nodes, lately.
    pub apart: Vec<ApartReport>,
}

/// What a node did while it had failed a peer: how long it owned buckets then, and the
/// most it owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApartReport {
    pub peer: u16,
    pub served_ms: u32,
    pub owned: u32,
}

/// A node's state of each service, one bit per service (bit `i`: service `i` of the
/// file; a file has at most 62).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ServiceBits {
    /// Failing its health checks.
    pub unhealthy: u64,
    /// Drained on this node by the operator (`farm drain --service`).
    pub drained: u64,
    /// Serving this active-backup service (it owns its whole table).
    pub active: u64,
    /// May take this active-backup service back from a worse node serving it: its
    /// failback delay has passed, or `farm failback` was run on it.
    pub takes_back: u64,
}

impl ServiceBits {
    pub fn words(&self) -> [u64; 4] {
        [self.unhealthy, self.drained, self.active, self.takes_back]
    }

    fn from_words([unhealthy, drained, active, takes_back]: [u64; 4]) -> ServiceBits {
        ServiceBits { unhealthy, drained, active, takes_back }
    }
}

/// Whether bit `i` of `bits` is set.
pub fn bit(bits: u64, i: usize) -> bool {
    i < 64 && bits >> i & 1 == 1
}

/// Why a datagram was not taken as a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("datagram of {0} bytes is no heartbeat")]
    Length(usize),
    #[error("bad signature (forged, or signed with another key)")]
    Forged,
    #[error("signed, but not a heartbeat of this version")]
    Malformed,
}

impl Heartbeat {
    /// The datagram: the fields, then their HMAC-SHA256 under `key`.
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        let members = &self.members[..self.members.len().min(MAX_MEMBERS)];
        let acks = &self.acks[..self.acks.len().min(MAX_MEMBERS)];
        let votes = &self.votes[..self.votes.len().min(MAX_MEMBERS)];
        let apart = &self.apart[..self.apart.len().min(MAX_MEMBERS)];
        let size =
            HEADER + 2 * (members.len() + votes.len()) + ACK * acks.len() + REPORT * apart.len();
        let mut out = Vec::with_capacity(size + TAG);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, self.kind as u8, self.phase as u8]);
        let flags = [(self.drained, FLAG_DRAINED), (self.reply, FLAG_REPLY), (self.ask, FLAG_ASK)];
        out.push(flags.iter().filter(|(on, _)| *on).map(|(_, bit)| bit).sum());
        out.extend_from_slice(&self.cluster.to_be_bytes());
        out.extend_from_slice(&self.node.to_be_bytes());
        out.extend_from_slice(&(members.len() as u16).to_be_bytes());
        for word in [self.incarnation, self.seq, self.epoch, self.view, self.config] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(&self.weight.unwrap_or(NO_WEIGHT).to_be_bytes());
        out.extend_from_slice(&(acks.len() as u16).to_be_bytes());
        for word in self.services.words() {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(&self.votes_epoch.to_be_bytes());
        out.extend_from_slice(&(votes.len() as u16).to_be_bytes());
        out.extend_from_slice(&(apart.len() as u16).to_be_bytes());
        for id in members.iter().chain(votes) {
            out.extend_from_slice(&id.to_be_bytes());
        }
        for (id, seq) in acks {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
        }
        for r in apart {
            out.extend_from_slice(&r.peer.to_be_bytes());
            out.extend_from_slice(&r.served_ms.to_be_bytes());
            out.extend_from_slice(&r.owned.to_be_bytes());
        }
        seal(key, &mut out);
        out
    }

    /// Checks the signature first (in constant time), then the layout: a datagram that
    /// is not signed with `key` is `Forged` whatever it holds.
    pub fn decode(datagram: &[u8], key: &[u8]) -> Result<Heartbeat, WireError> {
        parse(open(datagram, key, HEADER..=MAX_DATAGRAM - TAG)?).ok_or(WireError::Malformed)
    }
}

/// Appends the signature of everything in `out`.
pub(crate) fn seal(key: &[u8], out: &mut Vec<u8>) {
    let tag = mac(key, out).finalize().into_bytes();
    out.extend_from_slice(&tag);
}

/// The body of a signed datagram whose body is `body` bytes long: the length first, then
/// the signature (in constant time), so a datagram not signed with `key` is `Forged`
/// whatever it holds.
pub(crate) fn open<'a>(
    datagram: &'a [u8],
    key: &[u8],
    body: std::ops::RangeInclusive<usize>,
) -> Result<&'a [u8], WireError> {
    let len = datagram.len();
    if len < TAG || !body.contains(&(len - TAG)) {
        return Err(WireError::Length(len));
    }
    let (body, tag) = datagram.split_at(len - TAG);
    mac(key, body).verify_slice(tag).map_err(|_| WireError::Forged)?;
    Ok(body)
}

fn mac(key: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

/// Big-endian reads at an offset of a datagram's body, `None` past its end, for the
/// heartbeat's and the witness ballot's parsers.
pub(crate) struct Fields<'a>(pub &'a [u8]);

impl Fields<'_> {
    pub fn u16(&self, at: usize) -> Option<u16> {
        Some(u16::from_be_bytes(self.0.get(at..at + 2)?.try_into().ok()?))
    }

    pub fn u32(&self, at: usize) -> Option<u32> {
        Some(u32::from_be_bytes(self.0.get(at..at + 4)?.try_into().ok()?))
    }

    pub fn u64(&self, at: usize) -> Option<u64> {
        Some(u64::from_be_bytes(self.0.get(at..at + 8)?.try_into().ok()?))
    }

    /// `n` node ids from `from`, which must ascend.
    pub fn ids(&self, from: usize, n: usize) -> Option<Vec<u16>> {
        let ids: Vec<u16> = (0..n).map(|i| self.u16(from + 2 * i)).collect::<Option<_>>()?;
        ids.is_sorted_by(|a, b| a < b).then_some(ids)
    }
}

fn parse(body: &[u8]) -> Option<Heartbeat> {
    let f = Fields(body);
    if &body[..4] != MAGIC
        || body[4] != VERSION
        || body[7] & !(FLAG_DRAINED | FLAG_REPLY | FLAG_ASK) != 0
    {
        return None;
    }
    let kind = match body[5] {
        1 => Kind::Alive,
        2 => Kind::Leave,
        _ => return None,
    };
    let phase = match body[6] {
        0 => Phase::Proposed,
        1 => Phase::Released,
        2 => Phase::Installed,
        _ => return None,
    };
    let count = usize::from(f.u16(18)?);
    let acked = usize::from(f.u16(64)?);
    let (voters, reports) = (usize::from(f.u16(106)?), usize::from(f.u16(108)?));
    if body.len() != HEADER + 2 * (count + voters) + ACK * acked + REPORT * reports {
        return None;
    }
    let members = f.ids(HEADER, count)?;
    let votes = f.ids(HEADER + 2 * count, voters)?;
    let at = |i: usize| HEADER + 2 * (count + voters) + ACK * i;
    let acks: Vec<(u16, u64)> =
        (0..acked).map(|i| Some((f.u16(at(i))?, f.u64(at(i) + 2)?))).collect::<Option<_>>()?;
    let at = |i: usize| at(acked) + REPORT * i;
    let apart: Vec<ApartReport> = (0..reports)
        .map(|i| {
            Some(ApartReport {
                peer: f.u16(at(i))?,
                served_ms: f.u32(at(i) + 2)?,
                owned: f.u32(at(i) + 6)?,
            })
        })
        .collect::<Option<_>>()?;
    let weight = f.u32(60)?;
    let words = [0, 1, 2, 3].map(|i| f.u64(66 + 8 * i));
    Some(Heartbeat {
        kind,
        cluster: f.u64(8)?,
        node: f.u16(16)?,
        incarnation: f.u64(20)?,
        seq: f.u64(28)?,
        epoch: f.u64(36)?,
        view: f.u64(44)?,
        phase,
        config: f.u64(52)?,
        weight: (weight != NO_WEIGHT).then_some(weight),
        drained: body[7] & FLAG_DRAINED != 0,
        reply: body[7] & FLAG_REPLY != 0,
        ask: body[7] & FLAG_ASK != 0,
        services: ServiceBits::from_words([words[0]?, words[1]?, words[2]?, words[3]?]),
        members,
        acks,
        votes_epoch: f.u64(98)?,
        votes,
        apart,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn heartbeat() -> Heartbeat {
        Heartbeat {
            kind: Kind::Alive,
            cluster: 0x1122_3344_5566_7788,
            node: 2,
            incarnation: 1_700_000_000_123,
            seq: 42,
            epoch: 7,
            view: 0xdead_beef,
            phase: Phase::Released,
            config: 0xc0ff_ee00,
            weight: Some(3),
            drained: true,
            reply: true,
            ask: true,
            services: ServiceBits { unhealthy: 1, drained: 4, active: 1 << 61, takes_back: 2 },
            members: vec![1, 2, 5],
            acks: vec![(1, 40), (5, 9)],
            votes_epoch: 6,
            votes: vec![1, 2, 3, 5],
            apart: vec![ApartReport { peer: 3, served_ms: 1500, owned: 384 }],
        }
    }

    #[test]
    fn round_trip() {
        let hb = heartbeat();
        let bytes = hb.encode(KEY);
        assert_eq!(bytes.len(), HEADER + 6 + 8 + 20 + 10 + TAG);
        assert_eq!(Heartbeat::decode(&bytes, KEY), Ok(hb));
        let plain = Heartbeat {
            weight: None,
            drained: false,
            reply: false,
            ask: false,
            kind: Kind::Leave,
            acks: vec![],
            votes: vec![],
            apart: vec![],
            services: ServiceBits::default(),
            ..heartbeat()
        };
        assert_eq!(Heartbeat::decode(&plain.encode(KEY), KEY), Ok(plain));
    }

    #[test]
    fn another_key_is_forged() {
        let bytes = heartbeat().encode(KEY);
        assert_eq!(Heartbeat::decode(&bytes, b"another key"), Err(WireError::Forged));
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = heartbeat().encode(KEY);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Heartbeat::decode(&bad, KEY), Err(WireError::Forged), "bit {bit}");
        }
    }

    #[test]
    fn signed_nonsense_is_malformed() {
        let signed = |body: &[u8]| {
            let mut d = body.to_vec();
            d.extend_from_slice(&mac(KEY, body).finalize().into_bytes());
            d
        };
        let good = heartbeat().encode(KEY);
        let body = &good[..good.len() - TAG];
        let mut unsorted = body.to_vec();
        unsorted[HEADER..HEADER + 4].copy_from_slice(&[0, 5, 0, 1]);
        let mut cut_ack = body[..body.len() - 1].to_vec();
        cut_ack[65] = 2;
        let mut version = body.to_vec();
        version[4] = 9;
        let mut unsorted_votes = body.to_vec();
        unsorted_votes[HEADER + 6..HEADER + 10].copy_from_slice(&[0, 3, 0, 2]);
        let mut cut_report = body[..body.len() - 1].to_vec();
        cut_report[109] = 2;
        let bad_ones = [
            &body[..body.len() - 2],
            &unsorted,
            &version,
            &cut_ack,
            &unsorted_votes,
            &cut_report,
            &[0u8; HEADER][..],
        ];
        for bad in bad_ones {
            assert_eq!(Heartbeat::decode(&signed(bad), KEY), Err(WireError::Malformed));
        }
        assert_eq!(Heartbeat::decode(&good[..HEADER], KEY), Err(WireError::Length(HEADER)));
    }

    proptest! {
        #[test]
        fn random_datagrams_never_pass(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            prop_assert!(Heartbeat::decode(&bytes, KEY).is_err());
        }
    }
}
