//! Test support for farm: packet building, the BPF_PROG_TEST_RUN harness, the standard
//! fixture configuration and the verdict cases run against it, and farms of network
//! namespaces, with what their agents serve over HTTP as Prometheus and a browser see it,
//! long-lived connections through them, and the chaos soak that hits such a farm for
//! minutes on end.
pub mod agents;
pub mod bench;
pub mod browser;
pub mod cases;
pub mod chaos;
pub mod conns;
pub mod farm;
pub mod fixtures;
pub mod fuzz;
pub mod harness;
pub mod held;
pub mod netns;
pub mod package;
pub mod packet;
pub mod scale;
pub mod scrape;
pub mod serial;
pub mod sim;
pub mod traffic;
