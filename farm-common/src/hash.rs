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

/// The flow hash: the address as two 64-bit halves and the port, each folded in with a
/// multiply by an odd constant, then murmur3's 64-bit finaliser so every input bit
/// reaches the top 32 bits that `bucket_of` uses. Five multiplies where a 32-bit murmur
/// over five words takes fifteen: this runs for every packet for a VIP. `port` is 0 when
/// the affinity mode ignores it and for fragments.
#[inline(always)]
pub fn flow_hash(addr: &Addr, port: u16, seed: u32) -> u32 {
    let high = (addr[0] as u64) << 32 | addr[1] as u64;
    let low = (addr[2] as u64) << 32 | addr[3] as u64;
    let mut h = (seed as u64 ^ 0x9e37_79b9_7f4a_7c15 ^ high).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ low).wrapping_mul(0x94d0_49bb_1331_11eb);
    h = (h ^ port as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 32) as u32
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
    core::array::from_fn(|i| {
        u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
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
    const GOLDEN: [u32; 4] = [3_263_188_775, 2_776_513_223, 3_590_613_693, 3_496_487_598];

    /// Neighbouring clients (one subnet, one client's ports) spread evenly: 100 a bucket
    /// on average, none far from it.
    #[test]
    fn neighbours_spread_evenly() {
        const BUCKETS: u32 = 4096;
        let spread = |hashes: &mut dyn Iterator<Item = u32>| {
            let mut counts = [0u32; BUCKETS as usize];
            for h in hashes {
                counts[bucket_of(h, BUCKETS) as usize] += 1;
            }
            (*counts.iter().min().unwrap(), *counts.iter().max().unwrap())
        };
        let subnet = 0xc612_0000u32;
        let (min, max) =
            spread(&mut (0..409_600u32).map(|i| flow_hash(&v4_addr(subnet + i), 0, 7)));
        assert!(min > 55 && max < 150, "addresses: {min}..{max}");
        let one = v4_addr(subnet + 1);
        let (min, max) = spread(&mut (0..409_600u32).map(|i| flow_hash(&one, i as u16, i >> 16)));
        assert!(min > 55 && max < 150, "ports: {min}..{max}");
    }

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
