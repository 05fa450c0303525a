//! The cluster MAC: the address every node answers ARP/ND for a VIP with. Derived from
//! the cluster name so that two farms on one segment differ without anyone choosing.
use super::L2Mode;

/// `03:bf:` (multicast) or `02:bf:` (unicast) followed by the 32-bit FNV-1a hash of
/// `name`, big-endian.
pub(super) fn derive(name: &str, mode: L2Mode) -> [u8; 6] {
    let [h0, h1, h2, h3] = fnv1a32(name.as_bytes()).to_be_bytes();
    [first_octet(mode), 0xbf, h0, h1, h2, h3]
}

/// The first octet of a derived MAC: locally administered, group bit as `mode` needs.
fn first_octet(mode: L2Mode) -> u8 {
    match mode {
        L2Mode::Multicast => 0x03,
        L2Mode::Unicast => 0x02,
    }
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| (hash ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Reads `aa:bb:cc:dd:ee:ff` and checks that its group bit suits `mode`; the error is
/// the reason to show.
pub(super) fn parse(text: &str, mode: L2Mode) -> Result<[u8; 6], String> {
    let mac = octets(text).ok_or_else(|| {
        format!("{text:?} is not a MAC address; write 6 hex octets like \"03:bf:c6:12:00:64\"")
    })?;
    let group = mac[0] & 1 == 1;
    match (mode, group) {
        (L2Mode::Multicast, false) => Err(format!(
            "{text} is unicast but l2_mode is multicast; the first octet must be odd, e.g. 03"
        )),
        (L2Mode::Unicast, true) => Err(format!(
            "{text} is multicast but l2_mode is unicast; the first octet must be even, e.g. 02"
        )),
        _ => Ok(mac),
    }
}

fn octets(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0; 6];
    let mut parts = text.split(':');
    for octet in &mut mac {
        // from_str_radix alone would also take a sign, as in "+3".
        let part =
            parts.next().filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))?;
        *octet = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn derived_mac_carries_the_mode_and_the_name_hash() {
        assert_eq!(derive("foobar", L2Mode::Multicast), [0x03, 0xbf, 0xbf, 0x9c, 0xf9, 0x68]);
        assert_eq!(derive("foobar", L2Mode::Unicast), [0x02, 0xbf, 0xbf, 0x9c, 0xf9, 0x68]);
        // The value examples/farm.yaml and docs/config.md quote.
        assert_eq!(derive("demo", L2Mode::Multicast), [0x03, 0xbf, 0xae, 0xfd, 0x35, 0x36]);
    }

    #[test]
    fn parses_six_hex_octets_with_the_right_group_bit() {
        assert_eq!(
            parse("03:BF:00:11:22:ff", L2Mode::Multicast),
            Ok([3, 0xbf, 0, 0x11, 0x22, 0xff])
        );
        assert_eq!(parse("02:bf:00:11:22:33", L2Mode::Unicast), Ok([2, 0xbf, 0, 0x11, 0x22, 0x33]));
        for bad in [
            "03:bf:00:11:22",
            "03:bf:00:11:22:33:44",
            "03-bf-00-11-22-33",
            "3:bf:0:11:22:33",
            "03:bf:00:11:22:+3",
        ] {
            assert!(parse(bad, L2Mode::Multicast).unwrap_err().contains("not a MAC"), "{bad}");
        }
        assert!(parse("02:bf:00:11:22:33", L2Mode::Multicast).unwrap_err().contains("odd"));
        assert!(parse("03:bf:00:11:22:33", L2Mode::Unicast).unwrap_err().contains("even"));
    }
}
