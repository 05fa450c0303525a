//! The per-(bucket, node) score of weighted rendezvous hashing, in integers.
//!
//! Weighted rendezvous gives a bucket to the node with the smallest `-ln(u) / weight`,
//! `u` a uniform hash of (bucket, node) in (0, 1]: node i then wins with probability
//! `weight_i / total`, and a node's entry or exit changes no other pair's order. The
//! logarithm is a fixed-point `-log2` (the base does not change the order) from a table
//! built at compile time and linear interpolation, so no floating point is involved and
//! every machine computes the same bits.

use farm_common::{avalanche, mix};

/// Fractional bits of a cost: `-log2(u)` lies in [0, 32], so it fits a u32.
const FRAC_BITS: u32 = 26;
/// The table holds log2(1 + i / 2^TABLE_BITS); interpolation between entries is exact
/// to about 1e-7, far finer than any difference that could decide a bucket.
const TABLE_BITS: u32 = 10;
const LOG2_TABLE: [u32; (1 << TABLE_BITS) + 1] = log2_table();

/// A node's hash state for this table: the seed and the node id, mixed once.
pub(super) fn node_salt(seed: u32, id: u16) -> u32 {
    mix(seed, u32::from(id))
}

/// `-log2(u)` in fixed point for the pair (bucket, node): lower is preferred.
pub(super) fn cost(salt: u32, bucket: u32) -> u32 {
    let h = avalanche(mix(salt, bucket) ^ 8);
    (32 << FRAC_BITS) - log2(u64::from(h) + 1)
}

/// log2(x) for x in [1, 2^32], with FRAC_BITS fractional bits.
fn log2(x: u64) -> u32 {
    let whole = 63 - x.leading_zeros();
    // The bits below the leading one, as a 64-bit fraction of [1, 2).
    let fraction = (x << x.leading_zeros()) << 1;
    let index = (fraction >> (64 - TABLE_BITS)) as usize;
    let between = (fraction << TABLE_BITS) >> 32;
    let (low, high) = (LOG2_TABLE[index], LOG2_TABLE[index + 1]);
    let step = (u64::from(high - low) * between) >> 32;
    (whole << FRAC_BITS) + low + step as u32
}

const fn log2_table() -> [u32; (1 << TABLE_BITS) + 1] {
    let mut table = [0; (1 << TABLE_BITS) + 1];
    let mut i = 0;
    while i < 1 << TABLE_BITS {
        table[i] = log2_mantissa((1 << 62) + ((i as u128) << (62 - TABLE_BITS)));
        i += 1;
    }
    table[1 << TABLE_BITS] = 1 << FRAC_BITS;
    table
}

/// log2(m / 2^62) for m in [2^62, 2^63), one bit per squaring: squaring doubles the
/// logarithm, and when the square reaches 2 the next bit is 1.
const fn log2_mantissa(mut m: u128) -> u32 {
    let mut bits = 0;
    let mut k = 0;
    while k < FRAC_BITS {
        m = (m * m) >> 62;
        bits <<= 1;
        if m >= 1 << 63 {
            m >>= 1;
            bits |= 1;
        }
        k += 1;
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_is_exact_on_powers_of_two_and_close_between() {
        for k in 0..=32 {
            assert_eq!(log2(1 << k), k << FRAC_BITS);
        }
        // log2(3) = 1.584962500721156, log2(10) = 3.321928094887362, times 2^26.
        for (x, exact) in
            [(3, 106_365_033), (10, 222_930_821), (u64::from(u32::MAX), 2_147_483_648)]
        {
            assert!(log2(x).abs_diff(exact) <= 2, "log2({x}) = {}", log2(x));
        }
    }

    #[test]
    fn log2_never_decreases() {
        let mut last = 0;
        for x in (1..1 << 20).chain((1 << 32) - (1 << 20)..=1 << 32) {
            assert!(log2(x) >= last, "log2({x})");
            last = log2(x);
        }
    }
}
