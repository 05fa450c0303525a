//! The `vips:` and `services:` sections, and the data plane's limits they must fit:
//! table slots (one per VIP and one per service) and service-map entries (one per port).
use std::{collections::BTreeMap, net::IpAddr};

use farm_common::{LIMBO_SLOT, MAX_VIPS};

use super::{
    Affinity, ConfigError, DefaultAction, Peer, PortRange, Service, Vip,
    check::Ctx,
    cluster::known_node,
    health,
    ranges::{Claim, claim, overlap},
    raw::{RawService, RawVip},
};

pub(super) fn vips(raw: Vec<RawVip>, ctx: &Ctx) -> Result<Vec<Vip>, ConfigError> {
    ctx.count("vips", raw.len(), 1..=MAX_VIPS)?;
    let vips = raw
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            Ok(Vip {
                address: ip(ctx, &format!("vips[{i}].address"), &v.address)?,
                default: v.default.unwrap_or(DefaultAction::Drop),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    ctx.unique("vips", "address", vips.iter().map(|v| v.address))?;
    Ok(vips)
}

fn ip(ctx: &Ctx, field: &str, text: &str) -> Result<IpAddr, ConfigError> {
    text.parse().map_err(|_| {
        ctx.error(
            field,
            format!("{text:?} is not an IP address; write e.g. 198.18.0.100 or 2001:db8::100"),
        )
    })
}

pub(super) fn services(
    raw: Vec<RawService>,
    peers: &[Peer],
    vips: &[Vip],
    ctx: &Ctx,
) -> Result<Vec<Service>, ConfigError> {
    let slots = raw.len() + vips.len();
    if slots > LIMBO_SLOT as usize {
        return Err(ctx.error(
            "services",
            format!(
                "{} services and {} VIPs need {slots} table slots, one each; at most {LIMBO_SLOT} fit",
                raw.len(),
                vips.len()
            ),
        ));
    }
    let mut claims = Vec::new();
    let mut services = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let at = format!("services[{i}]");
        let (service, ports) = service(ctx, &at, s, peers, vips)?;
        claims.push(ports);
        services.push(service);
    }
    ctx.unique("services", "name", services.iter().map(|s| s.name.as_str()))?;
    distinct_ports(ctx, &services, claims)?;
    Ok(services)
}

/// The service, and its port list as claims for the overlap and size checks.
fn service(
    ctx: &Ctx,
    at: &str,
    raw: RawService,
    peers: &[Peer],
    vips: &[Vip],
) -> Result<(Service, Vec<Claim>), ConfigError> {
    let name = ctx.name(&format!("{at}.name"), raw.name)?;
    let vip = declared_vip(ctx, &format!("{at}.vip"), &raw.vip, vips)?;
    let field = format!("{at}.ports");
    if raw.ports.is_empty() {
        return Err(ctx.error(&field, "is empty; list at least one port, e.g. [80]"));
    }
    let claims = raw
        .ports
        .iter()
        .enumerate()
        .map(|(j, item)| claim(ctx, format!("{field}[{j}]"), item, "port", 1..=u16::MAX.into()))
        .collect::<Result<Vec<_>, _>>()?;
    let weights = weights(ctx, at, raw.weights.unwrap_or_default(), peers)?;
    let affinity = raw.affinity.unwrap_or(Affinity::ClientIp);
    let health = health::checkers(ctx, at, raw.health)?;
    let failback = health::failback(ctx, at, affinity, raw.failback, raw.failback_delay_ms)?;
    let service = Service {
        name,
        vip,
        protocol: raw.protocol,
        // Claims were bounded to u16 just above.
        ports: claims
            .iter()
            .map(|c| PortRange { first: c.first as u16, last: c.last as u16 })
            .collect(),
        affinity,
        weights,
        health,
        failback,
    };
    Ok((service, claims))
}

fn declared_vip(ctx: &Ctx, field: &str, text: &str, vips: &[Vip]) -> Result<IpAddr, ConfigError> {
    let address = ip(ctx, field, text)?;
    if vips.iter().any(|v| v.address == address) {
        return Ok(address);
    }
    let declared: Vec<String> = vips.iter().map(|v| v.address.to_string()).collect();
    Err(ctx.error(
        field,
        format!(
            "{address} is not in vips; declare it there or use one of: {}",
            declared.join(", ")
        ),
    ))
}

fn weights(
    ctx: &Ctx,
    at: &str,
    raw: BTreeMap<u64, u64>,
    peers: &[Peer],
) -> Result<BTreeMap<u16, u32>, ConfigError> {
    raw.into_iter()
        .map(|(node, weight)| {
            let field = format!("{at}.weights.{node}");
            Ok((known_node(ctx, &field, node, peers)?, ctx.number(&field, weight, 0..=1000)?))
        })
        .collect()
}

/// Each (VIP, protocol, port) belongs to one service (the data plane has a rule byte for
/// every port of every VIP, so there is no limit on how many).
fn distinct_ports(
    ctx: &Ctx,
    services: &[Service],
    claims: Vec<Vec<Claim>>,
) -> Result<(), ConfigError> {
    // Ordered, so that of several overlaps the same one is always reported.
    let mut groups: BTreeMap<(IpAddr, u8), Vec<Claim>> = BTreeMap::new();
    for (service, ports) in services.iter().zip(claims) {
        groups.entry((service.vip, service.protocol.number())).or_default().extend(ports);
    }
    for claims in groups.values() {
        if let Some((earlier, later)) = overlap(claims) {
            return Err(ctx.error(
                &later.field,
                format!(
                    "ports {later} overlap {earlier} at {} (same vip and protocol); each port may belong to one service only",
                    earlier.field
                ),
            ));
        }
    }
    Ok(())
}
