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
//! 98  member ids (u16 each), then acks (node u16, seq u64 each), then the 32-byte tag
//! ```
//! Flags: 1 drained, 2 a reply (sent back at once to one peer's heartbeat, so that the
//! peer's acknowledgement comes a round trip after its heartbeat, not an interval).
use hmac::{Hmac, Mac};
use sha2::Sha256;

const MAGIC: &[u8; 4] = b"FARM";
/// 2: the services' bitmaps (health, drain, active-backup).
const VERSION: u8 = 2;
const HEADER: usize = 98;
const ACK: usize = 10;
const TAG: usize = 32;
/// No override: the node's weights are the configuration's.
const NO_WEIGHT: u32 = u32::MAX;
const FLAG_DRAINED: u8 = 1;
const FLAG_REPLY: u8 = 2;

/// The most members a view can hold (the data plane's node ids are u16, but a farm is a
/// few dozen nodes; this bounds the datagram to well under one Ethernet frame).
pub const MAX_MEMBERS: usize = 256;
/// The largest datagram a valid heartbeat makes.
pub const MAX_DATAGRAM: usize = HEADER + (2 + ACK) * MAX_MEMBERS + TAG;

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
    /// The sender's own state of each service.
    pub services: ServiceBits,
    /// The ids in the sender's view, ascending.
    pub members: Vec<u16>,
    /// For each peer the sender hears: (its id, the sequence number of its newest
    /// heartbeat the sender received).
    pub acks: Vec<(u16, u64)>,
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
        let mut out = Vec::with_capacity(HEADER + 2 * members.len() + ACK * acks.len() + TAG);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, self.kind as u8, self.phase as u8]);
        let flags = [(self.drained, FLAG_DRAINED), (self.reply, FLAG_REPLY)];
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
        for id in members {
            out.extend_from_slice(&id.to_be_bytes());
        }
        for (id, seq) in acks {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
        }
        let tag = mac(key, &out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        out
    }

    /// Checks the signature first (in constant time), then the layout: a datagram that
    /// is not signed with `key` is `Forged` whatever it holds.
    pub fn decode(datagram: &[u8], key: &[u8]) -> Result<Heartbeat, WireError> {
        if datagram.len() < HEADER + TAG || datagram.len() > MAX_DATAGRAM {
            return Err(WireError::Length(datagram.len()));
        }
        let (body, tag) = datagram.split_at(datagram.len() - TAG);
        mac(key, body).verify_slice(tag).map_err(|_| WireError::Forged)?;
        parse(body).ok_or(WireError::Malformed)
    }
}

fn mac(key: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

fn parse(body: &[u8]) -> Option<Heartbeat> {
    let u16_at = |at: usize| Some(u16::from_be_bytes(body.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?));
    if &body[..4] != MAGIC || body[4] != VERSION || body[7] & !(FLAG_DRAINED | FLAG_REPLY) != 0 {
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
    let count = usize::from(u16_at(18)?);
    let acked = usize::from(u16_at(64)?);
    if body.len() != HEADER + 2 * count + ACK * acked {
        return None;
    }
    let members: Vec<u16> = (0..count).map(|i| u16_at(HEADER + 2 * i)).collect::<Option<_>>()?;
    if !members.is_sorted_by(|a, b| a < b) {
        return None;
    }
    let at = |i: usize| HEADER + 2 * count + ACK * i;
    let acks: Vec<(u16, u64)> =
        (0..acked).map(|i| Some((u16_at(at(i))?, u64_at(at(i) + 2)?))).collect::<Option<_>>()?;
    let weight = u32_at(60)?;
    let words = [0, 1, 2, 3].map(|i| u64_at(66 + 8 * i));
    Some(Heartbeat {
        kind,
        cluster: u64_at(8)?,
        node: u16_at(16)?,
        incarnation: u64_at(20)?,
        seq: u64_at(28)?,
        epoch: u64_at(36)?,
        view: u64_at(44)?,
        phase,
        config: u64_at(52)?,
        weight: (weight != NO_WEIGHT).then_some(weight),
        drained: body[7] & FLAG_DRAINED != 0,
        reply: body[7] & FLAG_REPLY != 0,
        services: ServiceBits::from_words([words[0]?, words[1]?, words[2]?, words[3]?]),
        members,
        acks,
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
            services: ServiceBits { unhealthy: 1, drained: 4, active: 1 << 61, takes_back: 2 },
            members: vec![1, 2, 5],
            acks: vec![(1, 40), (5, 9)],
        }
    }

    #[test]
    fn round_trip() {
        let hb = heartbeat();
        let bytes = hb.encode(KEY);
        assert_eq!(bytes.len(), HEADER + 6 + 20 + TAG);
        assert_eq!(Heartbeat::decode(&bytes, KEY), Ok(hb));
        let plain = Heartbeat {
            weight: None,
            drained: false,
            reply: false,
            kind: Kind::Leave,
            acks: vec![],
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
        let bad_ones = [&body[..body.len() - 2], &unsorted, &version, &cut_ack, &[0u8; HEADER][..]];
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
