//! The flow hash: client address (and, in `client-ip-port` mode, source port) plus the
//! cluster seed, reduced to a bucket. Pure integer arithmetic over a fixed number of words
//! so the eBPF verifier accepts it and every node computes the same value.

/// An address as the data plane handles it: the four 32-bit words of its 16 bytes,
/// each read big-endian (IPv4 as `::ffff:a.b.c.d`, so `[0, 0, 0xffff, a.b.c.d]`). Words,
/// not bytes, because the XDP program loads and hashes whole words.
pub type Addr = [u32; 4];

/// One murmur3 round for a 32-bit word. Multiplications and shifts only: BPF has no
/// rotate instruction, `rotate_left` lowers to two shifts and an or. Public so the
/// bucket assignment's per-(bucket, node) scores use the same mixing.
#[inline(always)]
pub fn mix(h: u32, k: u32) -> u32 {
    let k = k.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
    (h ^ k).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

/// murmur3's finaliser: spreads every input bit over the whole word, so the top bits
/// that `bucket_of` keeps depend on all of the key.
#[inline(always)]
pub fn avalanche(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// murmur3_32 over the address words and the port. `port` is 0 when the affinity mode
/// ignores it and for fragments.
#[inline(always)]
pub fn flow_hash(addr: &Addr, port: u16, seed: u32) -> u32 {
    let mut h = seed;
    h = mix(h, addr[0]);
    h = mix(h, addr[1]);
    h = mix(h, addr[2]);
    h = mix(h, addr[3]);
    h = mix(h, port as u32);
    avalanche(h ^ 20)
}

/// Maps a hash onto `0..bucket_count` by multiply-and-shift (Lemire's reduction): no
/// division on the per-packet path, and uniform for any bucket count, not just powers of 2.
#[inline(always)]
pub fn bucket_of(hash: u32, bucket_count: u32) -> u32 {
    ((hash as u64 * bucket_count as u64) >> 32) as u32
}

/// An IPv4 address (its big-endian value) in the data plane's form: `::ffff:a.b.c.d`.
#[inline(always)]
pub fn v4_addr(v4: u32) -> Addr {
    [0, 0, 0xffff, v4]
}

/// An IPv6 address's 16 bytes in the data plane's form.
#[inline(always)]
pub fn v6_addr(b: [u8; 16]) -> Addr {
    core::array::from_fn(|i| u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values: a change to the hash re-buckets every client of every running
    /// farm, so it must be a deliberate one.
    #[test]
    fn golden_vectors() {
        let a = v4_addr(u32::from_be_bytes([198, 18, 0, 1]));
        let got = [
            flow_hash(&a, 0, 0),
            flow_hash(&a, 40000, 0),
            flow_hash(&a, 0, 0x5eed),
            flow_hash(&v6_addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 0, 7),
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
    fn v4_is_the_mapped_v6_form() {
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1];
        assert_eq!(v4_addr(u32::from_be_bytes([198, 18, 0, 1])), v6_addr(mapped));
    }

    #[test]
    fn port_and_seed_change_the_hash() {
        let a = v4_addr(u32::from_be_bytes([198, 18, 0, 1]));
        assert_ne!(flow_hash(&a, 1, 0), flow_hash(&a, 2, 0));
        assert_ne!(flow_hash(&a, 0, 1), flow_hash(&a, 0, 2));
    }
}
