//! netlab-runtime: everything in netlab that touches the kernel. No Rhai in here.

pub mod addr;
pub mod backend;
pub mod error;
pub mod exec;
pub mod firewall;
pub mod iptables;
pub mod lab;
pub mod link;
pub mod model;
pub mod names;
pub mod neigh;
pub mod node;
pub mod nsenter;
pub mod outcome;
pub mod packages;
pub mod ping;
pub mod render;
pub mod route;
pub mod sandbox;
pub mod service;
pub mod snapshot;
pub mod sockets;
pub mod sysctl;

pub use error::{Error, ErrorClass, Result};
pub use lab::{Lab, LabOptions};
pub use names::{LinkName, NodeName};
pub use node::Node;

/// Enters netlab's sandbox (see sandbox.rs), after reading what only the machine's
/// own namespace shows (the neighbour table's limit, see neigh.rs).
pub fn enter_sandbox() -> Result<()> {
    neigh::remember_capacity();
    sandbox::enter()
}
