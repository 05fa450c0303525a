//! What a reload may change: the settings the data plane was loaded with, and this
//! node's own place in the farm, take a restart (and so do the agent's HTTP listener and
//! its claim on the CPU and memory, made once at its start); everything else a running
//! agent takes.
use super::{Agent, Config, Http};

/// Why the agent cannot take `new` in place of `old` without a restart, if it cannot:
/// the field, its old and its new value.
pub fn needs_restart(old: &Config, new: &Config) -> Option<String> {
    let (o, n) = (&old.cluster, &new.cluster);
    let fixed = [
        ("cluster.node_id", o.node_id.to_string(), n.node_id.to_string()),
        ("cluster.interface", o.interface.clone(), n.interface.clone()),
        ("cluster.buckets", o.buckets.to_string(), n.buckets.to_string()),
        ("cluster.l2_mode", format!("{:?}", o.l2_mode), format!("{:?}", n.l2_mode)),
        (
            "cluster.cluster_mac",
            format!("{:02x?}", o.cluster_mac),
            format!("{:02x?}", n.cluster_mac),
        ),
        (
            "cluster.peers[].address of this node",
            old.this_node().address.to_string(),
            new.this_node().address.to_string(),
        ),
        ("http.listen", listen(&old.http), listen(&new.http)),
        ("agent.realtime_priority", priority(&old.agent), priority(&new.agent)),
        ("agent.lock_memory", old.agent.lock_memory.to_string(), new.agent.lock_memory.to_string()),
    ];
    fixed.into_iter().find(|(_, was, is)| was != is).map(|(field, was, is)| {
        format!("{field} changed from {was} to {is}, which needs a restart of the agent")
    })
}

fn listen(http: &Http) -> String {
    http.listen.map_or("off".into(), |a| a.to_string())
}

fn priority(agent: &Agent) -> String {
    agent.realtime_priority.map_or("off".into(), |p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  peers:\n    - {id: 1, address: \"198.18.0.1:7400\"}\n    - {id: 2, address: \"198.18.0.2:7400\"}\nvips:\n  - address: 198.18.0.100\n";

    #[test]
    fn fixed_fields_need_a_restart_and_the_rest_does_not() {
        let old = crate::config::parse(BASE, "t.yaml").unwrap();
        let reweighed = BASE.replace("198.18.0.2:7400\"}", "198.18.0.2:7400\", weight: 3}");
        let new = crate::config::parse(&reweighed, "t.yaml").unwrap();
        assert_eq!(needs_restart(&old, &new), None);
        let moved = BASE.replace("interface: eth0", "interface: eth1");
        let new = crate::config::parse(&moved, "t.yaml").unwrap();
        assert_eq!(
            needs_restart(&old, &new).as_deref(),
            Some("cluster.interface changed from eth0 to eth1, which needs a restart of the agent")
        );
        let off = crate::config::parse(&format!("{BASE}http:\n  listen: off\n"), "t.yaml").unwrap();
        assert_eq!(
            needs_restart(&old, &off).as_deref(),
            Some(
                "http.listen changed from 127.0.0.1:9740 to off, which needs a restart of the agent"
            )
        );
        let unlocked =
            crate::config::parse(&format!("{BASE}agent:\n  lock_memory: false\n"), "t.yaml")
                .unwrap();
        assert_eq!(
            needs_restart(&old, &unlocked).as_deref(),
            Some(
                "agent.lock_memory changed from true to false, which needs a restart of the agent"
            )
        );
    }
}
