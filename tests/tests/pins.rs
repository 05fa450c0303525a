//! Pins left by a farm whose maps have another layout (another version of farm, or one
//! from before layouts had versions): the agent's start replaces them, and the read
//! commands refuse them with what to do, rather than misread them.
use std::{path::Path, sync::Mutex, time::Duration};

use aya::maps::{Array, Map, MapData};
use farm_common::{LAYOUT_VERSION, MAP_META, NO_OWNER};
use farm_tests::{
    farm::{NsFarm, Ownership, failure},
    netns::in_ns,
};
use farm_userspace::{
    config,
    dataplane::Dataplane,
    loader::{adopt_or_attach, pin_dir},
    rules,
};

/// What this process logs at warning level or above.
struct Warnings(Mutex<Vec<String>>);

impl log::Log for Warnings {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            self.0.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

static WARNINGS: Warnings = Warnings(Mutex::new(Vec::new()));

/// The layout version pinned in `dir`, as any farm reads it.
fn meta(dir: &Path) -> Array<MapData, u32> {
    let data = MapData::from_pin(dir.join(MAP_META)).expect("open the pinned FARM_META");
    Map::from_map_data(data).unwrap().try_into().unwrap()
}

/// `farm load` on one node (a file with no static table), whose data plane is then
/// marked (every bucket its own, a lease that never ends) and its pins altered by
/// `tamper`. A read command must refuse them saying `layout_said`, and the agent's
/// `adopt_or_attach` must replace them with a fresh, fenced program of this layout.
fn replaced_and_refused(tamper: impl FnOnce(&Path), layout_said: &str) {
    let _ = log::set_logger(&WARNINGS).map(|()| log::set_max_level(log::LevelFilter::Warn));
    let farm = NsFarm::new(1, 1, 64, Ownership::Agents { weights: vec![1] }).expect("farm");
    let node = &farm.nodes[0];
    let (config, iface) = (node.config.to_str().unwrap(), node.host.iface.clone());
    farm.farm(node, &["load", "--config", config]).expect("farm load");
    let dir = pin_dir(&iface);
    let cfg = config::load(&node.config).unwrap();
    let slots = rules::rules(&cfg).slots.len();
    let mut dp = Dataplane::open_pinned(&dir).expect("this farm's own pins");
    dp.install(&vec![vec![node.id; 64]; slots], &Default::default()).unwrap();
    dp.renew_lease(None).unwrap();
    drop(dp);
    tamper(&dir);

    let err = failure(node, &["status", "--config", config]);
    let said = format!(
        "the program pinned in {} has layout {layout_said}, this farm's is {LAYOUT_VERSION}",
        dir.display()
    );
    assert!(err.contains(&said), "{err:?} should say {said:?}");
    assert!(
        err.ends_with(&format!("run `farm unload --iface {iface}` and load it again")),
        "{err}"
    );

    let dp = in_ns(&node.host.ns.name, move || adopt_or_attach(&cfg)).unwrap().expect("replaced");
    let replacing = format!("{said}: replacing it");
    assert!(WARNINGS.0.lock().unwrap().contains(&replacing), "no warning {replacing:?}");
    assert_eq!(meta(&dir).get(&0, 0).unwrap(), LAYOUT_VERSION, "the new pins' layout");
    assert_eq!(dp.lease().unwrap(), Some(Duration::ZERO), "a fresh program is fenced");
    let owns_nothing = (0..slots).all(|s| dp.row(s).unwrap().iter().all(|&o| o == NO_OWNER));
    assert!(owns_nothing, "and owns nothing");
    farm.farm(node, &["status", "--config", config]).expect("the new pins are readable");
}

#[test]
#[ignore = "needs root: network namespaces, XDP, bpffs"]
fn pins_of_another_layout_are_replaced_by_the_agent_and_refused_by_reads() {
    let other = LAYOUT_VERSION + 98;
    replaced_and_refused(|dir| meta(dir).set(0, other, 0).unwrap(), &other.to_string());
}

#[test]
#[ignore = "needs root: network namespaces, XDP, bpffs"]
fn pins_with_no_layout_are_replaced_by_the_agent_and_refused_by_reads() {
    replaced_and_refused(|dir| std::fs::remove_file(dir.join(MAP_META)).unwrap(), "none");
}
