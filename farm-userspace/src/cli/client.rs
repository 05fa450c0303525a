//! `CLIENT[:PORT]` as `farm lookup` takes it: `198.18.1.1`, `198.18.1.1:5000`,
//! `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:5000`.
use std::net::{IpAddr, SocketAddr};

/// The client's address and source port, if one was given.
pub fn parse(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Ok((sock.ip(), Some(sock.port())));
    }
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    bare.parse::<IpAddr>().map(|ip| (ip, None)).map_err(|_| {
        format!("{text:?} is not a client address: give IP or IP:PORT (IPv6 as 2001:db8::1 or [2001:db8::1]:PORT)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, Option<u16>) {
        let (ip, port) = parse(text).unwrap();
        (ip.to_string(), port)
    }

    #[test]
    fn addresses_with_and_without_ports() {
        assert_eq!(ok("198.18.1.1"), ("198.18.1.1".into(), None));
        assert_eq!(ok("198.18.1.1:5000"), ("198.18.1.1".into(), Some(5000)));
        assert_eq!(ok("2001:db8::1"), ("2001:db8::1".into(), None));
        assert_eq!(ok("[2001:db8::1]"), ("2001:db8::1".into(), None));
        assert_eq!(ok("[2001:db8::1]:5000"), ("2001:db8::1".into(), Some(5000)));
        assert_eq!(ok("::ffff:198.18.1.1"), ("::ffff:198.18.1.1".into(), None));
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "",
            "web1",
            "198.18.1",
            "198.18.1.1:70000",
            "198.18.1.1:",
            "2001:db8::1:5000:x",
            "[2001:db8::1",
            "[198.18.1.1]:80",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("is not a client address"), "{bad}: {err}");
        }
    }
}
