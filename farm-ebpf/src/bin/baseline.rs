//! The benchmark's yardstick: the least an XDP program can do, bump one counter and
//! pass. `cargo xtask bench` reports every farm path as a ratio to this, measured in
//! the same run, so machine noise cancels out. Never attached by farm itself.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::map, macros::xdp, maps::Array, programs::XdpContext};

#[map]
static BASELINE_COUNT: Array<u64> = Array::with_max_entries(1, 0);

#[xdp]
pub fn baseline(_ctx: XdpContext) -> u32 {
    if let Some(n) = BASELINE_COUNT.get_ptr_mut(0) {
        unsafe { *n += 1 };
    }
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
