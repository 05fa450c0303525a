//! The owner table's double buffer, written through the map's memory, over a sequence of
//! installs: what packets then read (`Dataplane::row`) is exactly the table installed,
//! its buckets in handover marked and their handovers in the map, whatever the half
//! held before.
use farm_common::{HANDOVER, Handover, NO_OWNER};
use farm_tests::{fixtures, harness::Harness};
use farm_userspace::handover::Moving;

/// A pseudo-random table: owner of (slot, bucket) by a small hash of `seed`.
fn table(h: &Harness, seed: u32) -> Vec<Vec<u16>> {
    (0..h.rules.slots.len())
        .map(|s| {
            (0..h.cfg.cluster.buckets)
                .map(|b| {
                    let x = (b ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(0x85eb_ca6b) >> 29;
                    if x == 7 { NO_OWNER } else { (x as u16 + s as u16) % 4 + 1 }
                })
                .collect()
        })
        .collect()
}

#[test]
#[ignore = "needs root: loads the XDP program and its maps"]
fn every_install_reads_back_exactly() {
    let mut h = Harness::new(fixtures::config()).expect("load the program");
    let seeds = [1u32, 2, 2, 3, 1, 4, 4, 5];
    for seed in seeds {
        let rows = table(&h, seed);
        // A handover for every bucket whose owner the previous seed's table differs in.
        let before = table(&h, seed - 1);
        let mut moving = Moving::new();
        for (slot, (row, was)) in rows.iter().zip(&before).enumerate() {
            for (b, (&new, &old)) in row.iter().zip(was).enumerate() {
                if new != old && new != NO_OWNER && seed % 2 == 0 {
                    moving.insert((slot, b as u32), Handover { old, new, ..Default::default() });
                }
            }
        }
        h.dataplane.install(&rows, &moving).unwrap();
        for (slot, row) in rows.iter().enumerate() {
            let marked: Vec<u16> = (0..row.len() as u32)
                .map(|b| if moving.contains_key(&(slot, b)) { HANDOVER } else { row[b as usize] })
                .collect();
            assert!(h.dataplane.marked_row(slot).unwrap() == marked, "seed {seed}, slot {slot}");
        }
        assert_eq!(h.dataplane.moving().unwrap(), moving, "seed {seed}");
    }
}
