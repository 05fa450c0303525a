//! The flow hash: client address (and, in `client-ip-port` mode, source port) plus the
//! cluster seed, reduced to a bucket. Pure integer arithmetic over a fixed number of words
//! so the eBPF verifier accepts it and every node computes the same value.

/// One murmur3 round for a 32-bit word. Multiplications and shifts only: BPF has no
/// rotate instruction, `rotate_left` lowers to two shifts and an or.
#[inline(always)]
fn mix(h: u32, k: u32) -> u32 {
    let k = k.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
    (h ^ k).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

/// murmur3's finaliser: spreads every input bit over the whole word, so the top bits
/// that `bucket_of` keeps depend on all of the key.
#[inline(always)]
fn avalanche(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline(always)]
fn word(a: &[u8; 16], i: usize) -> u32 {
    u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]])
}

/// murmur3_32 over the 16 address bytes (IPv4 as `::ffff:a.b.c.d`) and the port.
/// `port` is 0 when the affinity mode ignores it and for fragments.
#[inline(always)]
pub fn flow_hash(addr: &[u8; 16], port: u16, seed: u32) -> u32 {
    let mut h = seed;
    h = mix(h, word(addr, 0));
    h = mix(h, word(addr, 4));
    h = mix(h, word(addr, 8));
    h = mix(h, word(addr, 12));
    h = mix(h, port as u32);
    avalanche(h ^ 20)
}

/// Maps a hash onto `0..bucket_count` by multiply-and-shift (Lemire's reduction): no
/// division on the per-packet path, and uniform for any bucket count, not just powers of 2.
#[inline(always)]
pub fn bucket_of(hash: u32, bucket_count: u32) -> u32 {
    ((hash as u64 * bucket_count as u64) >> 32) as u32
}

/// The 16-byte form an IPv4 address takes in keys and in the hash: `::ffff:a.b.c.d`.
#[inline(always)]
pub fn client_key_v4(v4: [u8; 4]) -> [u8; 16] {
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values: a change to the hash re-buckets every client of every running
    /// farm, so it must be a deliberate one.
    #[test]
    fn golden_vectors() {
        let a = client_key_v4([198, 18, 0, 1]);
        let got = [
            flow_hash(&a, 0, 0),
            flow_hash(&a, 40000, 0),
            flow_hash(&a, 0, 0x5eed),
            flow_hash(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 0, 7),
        ];
        assert_eq!(got, GOLDEN);
    }
    const GOLDEN: [u32; 4] = [3_616_386_280, 355_172_202, 1_560_196_895, 1_896_965_380];

    #[test]
    fn bucket_is_in_range_and_spans_it() {
        for count in [1u32, 3, 4096, 65536] {
            assert_eq!(bucket_of(0, count), 0);
            assert_eq!(bucket_of(u32::MAX, count), count - 1);
        }
    }

    #[test]
    fn port_and_seed_change_the_hash() {
        let a = client_key_v4([198, 18, 0, 1]);
        assert_ne!(flow_hash(&a, 1, 0), flow_hash(&a, 2, 0));
        assert_ne!(flow_hash(&a, 0, 1), flow_hash(&a, 0, 2));
    }
}
