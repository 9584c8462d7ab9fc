//! netlab-runtime: everything in netlab that touches the kernel. No Rhai in here.

pub mod backend;
pub mod error;
pub mod interrupt;
pub mod model;
pub mod names;
pub mod outcome;
pub mod packages;
pub mod ping;
pub mod render;
pub mod service;
pub mod snapshot;

pub use backend::kernel::node::Node;
pub use backend::kernel::{Lab, LabOptions};
pub use error::{Error, ErrorClass, Result};
pub use names::{LinkName, NodeName};

/// Enters netlab's sandbox (see sandbox.rs), after reading what only the machine's
/// own namespace shows (the neighbour table's limit, see neigh.rs; what new
/// namespaces start with, see node.rs).
pub fn enter_sandbox(binds: &backend::kernel::sandbox::Binds) -> Result<()> {
    backend::kernel::neigh::remember_capacity();
    backend::kernel::node::remember_machine_defaults();
    backend::kernel::sandbox::enter(binds)
}
