//! Verdict tests: built packets through BPF_PROG_TEST_RUN, one per branch of the program.
use farm_tests::{fixtures::*, harness::Harness, have_root, packet::*};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

#[test]
fn loads_and_passes_the_verifier() {
    if !have_root("loads_and_passes_the_verifier") {
        return;
    }
    let mut h = Harness::new(config()).expect("load");
    let pkt = tcp(CLIENT4.into(), 40000, OTHER4.into(), 80);
    let out = h.run(&pkt).unwrap();
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.packet, pkt);
}
