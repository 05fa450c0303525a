//! The witness's datagram: a node asks for the tie-breaking vote for its view, the
//! witness answers who holds it. Fixed layout, big-endian, signed like a heartbeat
//! (HMAC-SHA256 under the farm's key) but with its own magic, so neither is ever taken
//! for the other.
//!
//! ```text
//! 0   magic "FARW"   4  version   5  kind (1 ask, 2 answer)   6  members (u16)
//! 8   cluster id (u64)            16 node (u16)               18 lease (ms, u32)
//! 22  incarnation (u64)           30 sequence (u64)
//! 38  member ids (u16 each), then the 32-byte tag
//! ```
//! An ask names the asking node's view and the lease it wants; the answer echoes the
//! ask's node, incarnation and sequence, names the view that holds the vote, and grants
//! a lease (0: not to the asker).
use crate::agent::wire::{Fields, MAX_MEMBERS, TAG, WireError, open, seal};

const MAGIC: &[u8; 4] = b"FARW";
const VERSION: u8 = 1;
const HEADER: usize = 38;
pub const MAX_DATAGRAM: usize = HEADER + 2 * MAX_MEMBERS + TAG;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ask = 1,
    Answer = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ballot {
    pub kind: Kind,
    pub cluster: u64,
    /// The asking node (in an answer too).
    pub node: u16,
    pub incarnation: u64,
    pub seq: u64,
    /// Asked for, or granted (0: the vote is another view's).
    pub lease_ms: u32,
    /// The asker's view, or the view holding the vote; ascending.
    pub members: Vec<u16>,
}

/// Whether a datagram claims to be a witness ballot (it may still be bad).
pub fn is_ballot(datagram: &[u8]) -> bool {
    datagram.starts_with(MAGIC)
}

impl Ballot {
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        let members = &self.members[..self.members.len().min(MAX_MEMBERS)];
        let mut out = Vec::with_capacity(HEADER + 2 * members.len() + TAG);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, self.kind as u8]);
        out.extend_from_slice(&(members.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.cluster.to_be_bytes());
        out.extend_from_slice(&self.node.to_be_bytes());
        out.extend_from_slice(&self.lease_ms.to_be_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        for id in members {
            out.extend_from_slice(&id.to_be_bytes());
        }
        seal(key, &mut out);
        out
    }

    /// The signature first (in constant time), then the layout.
    pub fn decode(datagram: &[u8], key: &[u8]) -> Result<Ballot, WireError> {
        parse(open(datagram, key, HEADER..=MAX_DATAGRAM - TAG)?).ok_or(WireError::Malformed)
    }
}

fn parse(body: &[u8]) -> Option<Ballot> {
    let f = Fields(body);
    if &body[..4] != MAGIC || body[4] != VERSION {
        return None;
    }
    let kind = match body[5] {
        1 => Kind::Ask,
        2 => Kind::Answer,
        _ => return None,
    };
    let count = usize::from(f.u16(6)?);
    if body.len() != HEADER + 2 * count {
        return None;
    }
    let members = f.ids(HEADER, count)?;
    Some(Ballot {
        kind,
        cluster: f.u64(8)?,
        node: f.u16(16)?,
        lease_ms: f.u32(18)?,
        incarnation: f.u64(22)?,
        seq: f.u64(30)?,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::wire::Heartbeat;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ask() -> Ballot {
        Ballot {
            kind: Kind::Ask,
            cluster: 0x1122_3344_5566_7788,
            node: 3,
            incarnation: 1_700_000_000_123,
            seq: 9,
            lease_ms: 300,
            members: vec![3, 4],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = ask().encode(KEY);
        assert!(is_ballot(&bytes));
        assert_eq!(bytes.len(), HEADER + 4 + TAG);
        assert_eq!(Ballot::decode(&bytes, KEY), Ok(ask()));
        let answer = Ballot { kind: Kind::Answer, lease_ms: 0, members: vec![], ..ask() };
        assert_eq!(Ballot::decode(&answer.encode(KEY), KEY), Ok(answer));
    }

    #[test]
    fn forged_flipped_and_foreign_datagrams_are_refused() {
        let bytes = ask().encode(KEY);
        assert_eq!(Ballot::decode(&bytes, b"another key"), Err(WireError::Forged));
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Ballot::decode(&bad, KEY).is_err(), "bit {bit}");
        }
        // Signed alike, a ballot is no heartbeat and a heartbeat no ballot.
        assert_eq!(Heartbeat::decode(&bytes, KEY).ok(), None);
        let mut unsorted = ask();
        unsorted.members = vec![4, 3];
        assert_eq!(Ballot::decode(&unsorted.encode(KEY), KEY), Err(WireError::Malformed));
    }
}
